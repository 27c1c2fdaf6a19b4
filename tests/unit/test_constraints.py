"""Constraint parsing as sites write it, and the requirement an image choice needs."""

import pytest

from cmt_slurm.constraints import (
    And,
    Bracket,
    Feature,
    Group,
    Or,
    Requirement,
    format_expr,
    iter_features,
    parse_constraint,
    requirement_from_constraint,
    split_term,
    tokenize,
)
from cmt_slurm.errors import BadInput
from cmt_slurm.versions import Version

F = Feature

# (constraint as written, AST, requirement (os, libc, image, features))
REAL_WORLD = [
    ("intel&ib", And((F("intel"), F("ib"))), (None, None, None, ("intel", "ib"))),
    ("haswell,ib", And((F("haswell"), F("ib"))), (None, None, None, ("haswell", "ib"))),
    ("[rack1|rack2]*2", Bracket((F("rack1"), F("rack2")), 2), (None, None, None, ())),
    ("os:rocky9&gpu", And((F("os:rocky9"), F("gpu"))), ("rocky9", None, None, ("gpu",))),
    ("(a|b)&c", And((Group(Or((F("a"), F("b")))), F("c"))), (None, None, None, ("c",))),
    ("libc:2.28", F("libc:2.28"), (None, "2.28", None, ())),
    ("os=debian13&libc=2.36", And((F("os=debian13"), F("libc=2.36"))), ("debian13", "2.36", None, ())),
    ("image:rocky9-2026.11", F("image:rocky9-2026.11"), (None, None, "rocky9-2026.11", ())),
    ("image=debian12-b3&ib", And((F("image=debian12-b3"), F("ib"))), (None, None, "debian12-b3", ("ib",))),
    ("gpu.a100*2&os=el9_4", And((F("gpu.a100", 2), F("os=el9_4"))), ("el9_4", None, None, ())),
    ("[rack1*2&rack2*4]", Bracket((And((F("rack1", 2), F("rack2", 4))),)), (None, None, None, ())),
    (
        "[(knl&snc4&flat)*4&haswell*1]",
        Bracket((And((Group(And((F("knl"), F("snc4"), F("flat"))), 4), F("haswell", 1))),)),
        (None, None, None, ()),
    ),
    ("graphics*4", F("graphics", 4), (None, None, None, ())),
    ("intel|amd", Or((F("intel"), F("amd"))), (None, None, None, ())),
    (
        "os:rocky9 & ib & libc:2.34",
        And((F("os:rocky9"), F("ib"), F("libc:2.34"))),
        ("rocky9", "2.34", None, ("ib",)),
    ),
    ("os:rocky9&(ib|opa)", And((F("os:rocky9"), Group(Or((F("ib"), F("opa")))))), ("rocky9", None, None, ())),
    ("(os:rocky9&ib)", Group(And((F("os:rocky9"), F("ib")))), ("rocky9", None, None, ("ib",))),
    ("libc:2.17&libc:2.28", And((F("libc:2.17"), F("libc:2.28"))), (None, "2.28", None, ())),
    ("libc:2.28&libc=2.9", And((F("libc:2.28"), F("libc=2.9"))), (None, "2.28", None, ())),
    ("os:rocky9&os=rocky9", And((F("os:rocky9"), F("os=rocky9"))), ("rocky9", None, None, ())),
    ("ib&ib", And((F("ib"), F("ib"))), (None, None, None, ("ib",))),
    ("OS:rocky9", F("OS:rocky9"), (None, None, None, ("OS:rocky9",))),
    ("osx&libcxx", And((F("osx"), F("libcxx"))), (None, None, None, ("osx", "libcxx"))),
]


@pytest.mark.parametrize(("text", "ast", "req"), REAL_WORLD, ids=[r[0] for r in REAL_WORLD])
def test_real_world_constraints(text: str, ast: object, req: tuple[object, ...]) -> None:
    assert parse_constraint(text) == ast
    r = requirement_from_constraint(text)
    os_, libc, image, features = req
    assert r.os == os_
    assert r.libc == (Version.parse(libc) if isinstance(libc, str) else None)
    assert r.image == image
    assert r.features == features


def test_left_to_right_like_slurm() -> None:
    # Slurm walks the list in order: a|b&c is (a|b)&c, a&b|c is (a&b)|c.
    assert parse_constraint("a|b&c") == And((Or((F("a"), F("b"))), F("c")))
    assert parse_constraint("a&b|c") == Or((And((F("a"), F("b"))), F("c")))
    assert requirement_from_constraint("a|b&os:rocky9").os == "rocky9"


def test_blank_is_empty_requirement() -> None:
    for text in ("", "   ", "\t\n"):
        r = requirement_from_constraint(text)
        assert r == Requirement()
        assert r.is_empty
    assert not requirement_from_constraint("ib").is_empty


def test_requirement_str() -> None:
    assert str(requirement_from_constraint("ib&libc:2.28&os:rocky9")) == "os=rocky9&libc=2.28&ib"
    assert str(Requirement()) == "(nothing)"


def test_format_expr_canonical() -> None:
    assert format_expr(parse_constraint("a , b")) == "a&b"
    assert format_expr(parse_constraint("[ a | b ]*2")) == "[a|b]*2"
    # A hand-built tree with a chain after the first item needs parentheses to keep its meaning.
    assert format_expr(And((F("c"), Or((F("a"), F("b")))))) == "c&(a|b)"


def test_iter_features_and_split_term() -> None:
    names = [f.name for f in iter_features(parse_constraint("[a|(b&os:x)]*2&c"))]
    assert names == ["a", "b", "os:x", "c"]
    assert split_term("os:rocky9") == ("os", "rocky9")
    assert split_term("libc=2.28") == ("libc", "2.28")
    assert split_term("os=a:b") == ("os", "a:b")
    assert split_term("gpu:a100") is None


def test_tokens_carry_positions() -> None:
    toks = tokenize("a&(b*2)")
    assert [(t.kind.name, t.pos) for t in toks] == [
        ("WORD", 0),
        ("AND", 1),
        ("LPAREN", 2),
        ("WORD", 3),
        ("COUNT", 4),
        ("RPAREN", 6),
        ("END", 7),
    ]
    assert toks[4].count == 2


SYNTAX_ERRORS = [
    ("a&&b", "constraint 'a&&b': column 3: empty term between '&' and '&'"),
    ("a,,b", "constraint 'a,,b': column 3: empty term between ',' and ','"),
    ("a&", "constraint 'a&': column 2: nothing after '&'"),
    ("a|", "constraint 'a|': column 2: nothing after '|'"),
    ("&a", "constraint '&a': column 1: starts with the operator '&'"),
    ("(a", "constraint '(a': column 1: '(' is never closed"),
    ("((a)", "constraint '((a)': column 1: '(' is never closed"),
    ("[a", "constraint '[a': column 1: '[' is never closed"),
    ("a)", "constraint 'a)': column 2: unmatched ')'"),
    ("(a]", "constraint '(a]': column 3: expected ')' to close '(' at column 1, found ']'"),
    ("()", "constraint '()': column 1: empty '()'"),
    ("[]", "constraint '[]': column 1: empty '[]'"),
    ("a&(b|)", "constraint 'a&(b|)': column 5: nothing after '|'"),
    ("[a|[b]]", "constraint '[a|[b]]': column 4: brackets do not nest"),
    ("a*", "constraint 'a*': column 2: bad count '*'"),
    ("a*0", "constraint 'a*0': column 2: bad count '*0'"),
    ("a*x", "constraint 'a*x': column 2: bad count '*x'"),
    ("a*-1", "constraint 'a*-1': column 2: bad count '*-1'"),
    ("a*99999999999", "constraint 'a*99999999999': column 2: bad count '*99999999999'"),
    ("a*2*3", "constraint 'a*2*3': column 4: a second count '*3'"),
    ("*2", "constraint '*2': column 1: count '*2' follows no feature"),
    ("a b", "constraint 'a b': column 3: expected an operator (& , |) before 'b'"),
    ("a(b)", "constraint 'a(b)': column 2: expected an operator (& , |) before '('"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS, ids=[s[0] for s in SYNTAX_ERRORS])
def test_syntax_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        requirement_from_constraint(text)
    assert exc.value.message == message
    assert exc.value.hint
    assert exc.value.details["constraint"] == text


def test_too_deep_and_too_long() -> None:
    with pytest.raises(BadInput, match="nested deeper than 32 levels"):
        parse_constraint("(" * 40 + "a" + ")" * 40)
    with pytest.raises(BadInput, match="characters long"):
        parse_constraint("a&" * 3000 + "a")
    assert parse_constraint("(" * 32 + "a" + ")" * 32) is not None


REFUSED = [
    (
        "os:rocky9|os:debian12",
        "constraint 'os:rocky9|os:debian12': os:rocky9 is under \"|\", "
        "but every node of a job must get the same image",
        "pick one",
    ),
    ("[os:rocky9|ib]", 'os:rocky9 is inside "[...]"', "out of the brackets"),
    ("os:rocky9*2", "os:rocky9 has a node count (os:rocky9*2)", "drop the count"),
    ("(os:rocky9&ib)*2", "os:rocky9 is in a group with a node count (*2)", "drop the count"),
    ("ib|(libc:2.28&a)", 'libc:2.28 is under "|"', "pick one"),
    ("[a*2&image:x*2]", 'image:x is inside "[...]"', "brackets"),
    (
        "os:rocky9&os:debian12",
        "constraint 'os:rocky9&os:debian12': asks for two operating systems (rocky9 and debian12); "
        "a node runs one image",
        "keep one os term",
    ),
    ("image:a&image=b", "asks for two images (a and b)", "keep one image term"),
    ("libc:2.3x", "constraint 'libc:2.3x': libc: \"2.3x\" is not a version like 2.34", "2.17"),
    ("libc:", 'libc: "" is not a version like 2.34', "2.17"),
    ("os:", "constraint 'os:': os: needs a value", "os:rocky9"),
    ("image=Rocky", "image: 'Rocky' is not an image name", "lower-case"),
]


@pytest.mark.parametrize(("text", "message", "hint"), REFUSED, ids=[r[0] for r in REFUSED])
def test_unprovisionable_constraints_are_refused(text: str, message: str, hint: str) -> None:
    with pytest.raises(BadInput) as exc:
        requirement_from_constraint(text)
    assert message in exc.value.message
    assert "\n" not in exc.value.message
    assert exc.value.hint is not None
    assert hint in exc.value.hint


@pytest.mark.parametrize("text", ["os:rocky9&(ib|opa)", "(os:rocky9)", "os:rocky9&[a|b]", "libc:2.28&ib*2"])
def test_helpers_mode_refuses_operators_next_to_changeable_features(text: str) -> None:
    requirement_from_constraint(text)  # fine in prolog mode
    with pytest.raises(BadInput) as exc:
        requirement_from_constraint(text, helpers=True)
    assert "Slurm's helpers plugin refuses" in exc.value.message
    assert exc.value.hint and "& only" in exc.value.hint


def test_helpers_mode_exact_message() -> None:
    with pytest.raises(BadInput) as exc:
        requirement_from_constraint("os:rocky9&(ib|opa)", helpers=True)
    assert exc.value.message == (
        "constraint 'os:rocky9&(ib|opa)': Slurm's helpers plugin refuses ( ) | in a constraint "
        "with a changeable feature (os:rocky9)"
    )


@pytest.mark.parametrize("text", ["os:rocky9&ib,haswell", "(a|b)&c", "[rack1|rack2]*2", ""])
def test_helpers_mode_accepts_plain_and_or_no_changeable(text: str) -> None:
    requirement_from_constraint(text, helpers=True)


def test_control_characters_are_refused() -> None:
    with pytest.raises(BadInput) as exc:
        parse_constraint("os:rocky9\x1b[31m")
    assert exc.value.message == "constraint 'os:rocky9\\x1b[31m': column 10: control character '\\x1b'"
