"""Properties of the constraint parser: no input breaks it with anything but BadInput; text round-trips."""

from hypothesis import given, settings
from hypothesis import strategies as st

from cmt_slurm.constraints import (
    And,
    Bracket,
    Expr,
    Feature,
    Group,
    Or,
    format_expr,
    parse_constraint,
    requirement_from_constraint,
)
from cmt_slurm.errors import BadInput

# Text made mostly of the characters that matter, so the parser's corners get hit often.
_ALPHABET = st.sampled_from([*list("&,|[]()*0123456789 ab=:.-_\t"), "os:", "libc=", "image:", "2.28"])
constraint_like = st.lists(_ALPHABET, max_size=40).map("".join)


@given(st.one_of(st.text(max_size=60), constraint_like))
@settings(max_examples=400)
def test_any_text_parses_or_raises_bad_input(text: str) -> None:
    for helpers in (False, True):
        try:
            requirement_from_constraint(text, helpers=helpers)
        except BadInput as exc:
            assert exc.message.startswith("constraint ")
            assert "\n" not in exc.message
            assert exc.hint


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.=:-]{0,8}", fullmatch=True)
counts = st.none() | st.integers(min_value=1, max_value=64)


def _canonical(children: st.SearchStrategy[Expr], in_bracket: bool) -> st.SearchStrategy[Expr]:
    """Trees in the shape the parser builds: chains fold left, so only a chain's first item is a chain."""
    primaries: list[st.SearchStrategy[Expr]] = [
        st.builds(Feature, names, counts),
        st.builds(Group, children, counts),
    ]
    if not in_bracket:
        primaries.append(
            st.builds(
                lambda e, c: Bracket(e.items if isinstance(e, Or) else (e,), c),
                _tree(in_bracket=True, depth=2),
                counts,
            )
        )
    primary = st.one_of(*primaries)

    def chain(first: Expr, rest: list[tuple[bool, Expr]]) -> Expr:
        cur = first
        for is_and, item in rest:
            kind = And if is_and else Or
            cur = kind((*cur.items, item)) if isinstance(cur, kind) else kind((cur, item))
        return cur

    return st.builds(chain, primary, st.lists(st.tuples(st.booleans(), primary), max_size=4))


def _tree(in_bracket: bool, depth: int = 3) -> st.SearchStrategy[Expr]:
    leaf: st.SearchStrategy[Expr] = st.builds(Feature, names, counts)
    return st.recursive(leaf, lambda kids: _canonical(kids, in_bracket), max_leaves=depth * 4)


@given(_tree(in_bracket=False))
@settings(max_examples=300)
def test_generated_expressions_round_trip(expr: Expr) -> None:
    text = format_expr(expr)
    assert parse_constraint(text) == expr
    assert format_expr(parse_constraint(text)) == text


@given(constraint_like)
def test_parse_format_parse_is_stable(text: str) -> None:
    try:
        expr = parse_constraint(text)
    except BadInput:
        return
    assert parse_constraint(format_expr(expr)) == expr
