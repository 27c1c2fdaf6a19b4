"""Slurm 22.05 ``--constraint`` text: a tokenizer, a recursive-descent parser, and the image requirement.

Syntax (as ``sbatch --constraint`` takes it):

- ``&`` and ``,`` are AND, ``|`` is OR. Slurm gives them **equal precedence and evaluates left to right**
  (its feature list is walked in order, each operator combining with the result so far), so ``a|b&c``
  means ``(a|b)&c``. The AST keeps that: ``a|b&c`` is ``And(Or(a, b), c)``.
- ``[a|b]`` is a "matching OR" (all nodes share one alternative); ``[a*2&b*4]`` asks for counts of each.
  Brackets do not nest.
- ``( ... )`` groups; ``*N`` (N >= 1) after a feature, a group or a bracket is a node count.
- A feature word is any run of other characters (``os=debian12``, ``gpu.a100``, ``libc:2.28``). Blanks
  between tokens are ignored; two words side by side are an error (Slurm would read one odd name).

The requirement: ``os:X``/``os=X`` (the image's os tag), ``libc:V``/``libc=V`` (at least glibc V) and
``image:N``/``image=N`` (one catalogue image) are provisioning terms. They must hold on every node of the job,
so they may only be ANDed in: never under ``|``, inside ``[...]`` or under a ``*N`` count (Slurm's helpers
plugin refuses those operators next to a changeable feature, too). Two ``libc`` terms keep the higher one
(both minimums hold exactly when the higher does); two different ``os`` or ``image`` terms are an error.
Plain features ANDed at the top level are kept in ``Requirement.features``; the rest is Slurm's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from .errors import BadInput
from .versions import Version

#: Bounds that keep hostile input cheap and the recursion shallow; real constraints are a few dozen bytes.
MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_COUNT = 2**31 - 1

_OPERATORS = "&,|[]()*"
_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
PROVISIONING_KEYS = ("os", "libc", "image")


# --- AST -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    name: str
    count: int | None = None


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Bracket:
    """``[a|b]``: ``items`` are the alternatives (one item when the inside has no top-level ``|``)."""

    items: tuple[Expr, ...]
    count: int | None = None


@dataclass(frozen=True)
class Group:
    expr: Expr
    count: int | None = None


Expr = Feature | And | Or | Bracket | Group


# --- tokens ----------------------------------------------------------------------------------------


class Tok(Enum):
    WORD = "feature"
    AND = "&"
    OR = "|"
    LBRACK = "["
    RBRACK = "]"
    LPAREN = "("
    RPAREN = ")"
    COUNT = "*N"
    END = "end of text"


@dataclass(frozen=True)
class Token:
    kind: Tok
    text: str
    pos: int  # 0-based offset into the constraint; messages show it 1-based
    count: int = 0


def _error(text: str, pos: int, problem: str, hint: str) -> BadInput:
    return BadInput(
        f"constraint {text!r}: column {pos + 1}: {problem}",
        hint=hint,
        details={"constraint": text, "column": pos + 1},
    )


def tokenize(text: str) -> list[Token]:
    """Split constraint text into tokens; raise ``BadInput`` (with the column) on a malformed count."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "&,":
            tokens.append(Token(Tok.AND, ch, i))
            i += 1
        elif ch in "|[]()":
            tokens.append(Token(Tok(ch), ch, i))
            i += 1
        elif ch == "*":
            j = i + 1
            while j < n and not text[j].isspace() and text[j] not in _OPERATORS:
                j += 1
            digits = text[i + 1 : j]
            if not (digits.isascii() and digits.isdigit()) or int(digits) < 1 or int(digits) > MAX_COUNT:
                shown = f"*{digits}" if digits else "*"
                raise _error(
                    text,
                    i,
                    f"bad count {shown!r}",
                    "a count is * followed by a whole number >= 1, e.g. gpu*2",
                )
            tokens.append(Token(Tok.COUNT, text[i:j], i, int(digits)))
            i = j
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _OPERATORS:
                j += 1
            tokens.append(Token(Tok.WORD, text[i:j], i))
            i = j
    tokens.append(Token(Tok.END, "", n))
    return tokens


# --- parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.in_bracket = False

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: Token, problem: str, hint: str) -> BadInput:
        return _error(self.text, tok.pos, problem, hint)

    def expr(self) -> Expr:
        cur = self.term()
        while True:
            if self.peek().kind in (Tok.WORD, Tok.LPAREN, Tok.LBRACK):
                raise self.fail(
                    self.peek(),
                    f"expected an operator (& , |) before {self.peek().text!r}",
                    "join features with & (and) or | (or); feature names hold no blanks",
                )
            if self.peek().kind not in (Tok.AND, Tok.OR):
                break
            op = self.take()
            nxt = self.term(after=op)
            if op.kind is Tok.AND:
                cur = And((*cur.items, nxt)) if isinstance(cur, And) else And((cur, nxt))
            else:
                cur = Or((*cur.items, nxt)) if isinstance(cur, Or) else Or((cur, nxt))
        return cur

    def term(self, after: Token | None = None) -> Expr:
        tok = self.peek()
        if tok.kind is Tok.WORD:
            self.take()
            return Feature(tok.text, self.count())
        if tok.kind in (Tok.LPAREN, Tok.LBRACK):
            self.take()
            if tok.kind is Tok.LBRACK and self.in_bracket:
                raise self.fail(tok, "brackets do not nest", "use ( ) for grouping inside [ ]")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(tok, f"nested deeper than {MAX_DEPTH} levels", "simplify the constraint")
            was_in_bracket = self.in_bracket
            self.in_bracket = self.in_bracket or tok.kind is Tok.LBRACK
            inner = self.expr()
            close = Tok.RPAREN if tok.kind is Tok.LPAREN else Tok.RBRACK
            end = self.peek()
            if end.kind is not close:
                raise self._unbalanced(tok, end, close)
            self.take()
            self.depth -= 1
            self.in_bracket = was_in_bracket
            count = self.count()
            if tok.kind is Tok.LPAREN:
                return Group(inner, count)
            return Bracket(inner.items if isinstance(inner, Or) else (inner,), count)
        raise self._missing_term(tok, after)

    def count(self) -> int | None:
        if self.peek().kind is not Tok.COUNT:
            return None
        n = self.take().count
        if self.peek().kind is Tok.COUNT:
            raise self.fail(self.peek(), f"a second count {self.peek().text!r}", "give each term one count")
        return n

    def _unbalanced(self, opened: Token, found: Token, close: Tok) -> BadInput:
        if found.kind is Tok.END:
            return self.fail(
                opened,
                f"{opened.text!r} is never closed",
                f"add the matching {close.value!r} or drop this one",
            )
        return self.fail(
            found,
            f"expected {close.value!r} to close {opened.text!r} at column {opened.pos + 1}, "
            f"found {found.text!r}",
            "balance the brackets and parentheses",
        )

    def _missing_term(self, tok: Token, after: Token | None) -> BadInput:
        if tok.kind is Tok.COUNT:
            return self.fail(
                tok, f"count {tok.text!r} follows no feature", "write the count after a name: gpu*2"
            )
        if after is not None:
            if tok.kind in (Tok.AND, Tok.OR):
                return self.fail(
                    tok, f"empty term between {after.text!r} and {tok.text!r}", "remove the doubled operator"
                )
            return self.fail(
                after, f"nothing after {after.text!r}", f"add a feature after {after.text!r} or remove it"
            )
        if tok.kind is Tok.END and self.i == 0:
            return self.fail(tok, "empty constraint", "name at least one feature, e.g. os:rocky9")
        if self.i > 0:  # right after an opening bracket
            opened = self.tokens[self.i - 1]
            if tok.kind is Tok.END:
                close = ")" if opened.kind is Tok.LPAREN else "]"
                return self.fail(opened, f"{opened.text!r} is never closed", f"add the matching {close!r}")
            if tok.kind in (Tok.RPAREN, Tok.RBRACK):
                return self.fail(
                    opened,
                    f"empty {opened.text + tok.text!r}",
                    "put a feature inside, or remove the brackets",
                )
        if tok.kind in (Tok.RPAREN, Tok.RBRACK):
            return self.fail(tok, f"unmatched {tok.text!r}", "remove it or add the opening one")
        return self.fail(
            tok, f"starts with the operator {tok.text!r}", "start with a feature name, e.g. os:rocky9&ib"
        )

    def parse(self) -> Expr:
        result = self.expr()
        tok = self.peek()
        if tok.kind is not Tok.END:
            raise self.fail(tok, f"unmatched {tok.text!r}", "remove it or add the opening one")
        return result


def parse_constraint(text: str) -> Expr:
    """Parse Slurm constraint text into an AST; raise ``BadInput`` naming the column on any syntax error."""
    if len(text) > MAX_LENGTH:
        raise BadInput(
            f"constraint is {len(text)} characters long (at most {MAX_LENGTH})",
            hint="a constraint names a few features; check what generated this one",
        )
    return _Parser(text).parse()


def format_expr(expr: Expr) -> str:
    """Constraint text for ``expr`` that Slurm (and ``parse_constraint``) read back as the same expression."""

    def count(n: int | None) -> str:
        return "" if n is None else f"*{n}"

    def chain(items: tuple[Expr, ...], op: str) -> str:
        # Left-to-right evaluation: only the first item may be a bare chain; later ones need parentheses.
        parts = [fmt(items[0])]
        parts += [f"({fmt(it)})" if isinstance(it, And | Or) else fmt(it) for it in items[1:]]
        return op.join(parts)

    def fmt(e: Expr) -> str:
        if isinstance(e, Feature):
            return e.name + count(e.count)
        if isinstance(e, And):
            return chain(e.items, "&")
        if isinstance(e, Or):
            return chain(e.items, "|")
        if isinstance(e, Group):
            return f"({fmt(e.expr)}){count(e.count)}"
        inner = Or(e.items) if len(e.items) > 1 else e.items[0]
        return f"[{fmt(inner)}]{count(e.count)}"

    return fmt(expr)


def iter_features(expr: Expr) -> Iterator[Feature]:
    """Every feature word in ``expr``, left to right."""
    if isinstance(expr, Feature):
        yield expr
    elif isinstance(expr, And | Or | Bracket):
        for item in expr.items:
            yield from iter_features(item)
    else:
        yield from iter_features(expr.expr)


# --- requirement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What a job needs from the image on its nodes. ``features``: plain features ANDed at the top."""

    os: str | None = None
    libc: Version | None = None
    image: str | None = None
    features: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.os is None and self.libc is None and self.image is None and not self.features

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in (("os", self.os), ("libc", self.libc), ("image", self.image)) if v]
        return "&".join([*parts, *self.features]) or "(nothing)"


def split_term(name: str) -> tuple[str, str] | None:
    """``os:rocky9`` / ``os=rocky9`` -> ``("os", "rocky9")``; ``None`` for a plain feature."""
    for sep in ":=":
        key, found, value = name.partition(sep)
        if found and key in PROVISIONING_KEYS:
            return key, value
    return None


def requirement_from_constraint(text: str) -> Requirement:
    """Parse ``text`` and extract the image requirement; raise ``BadInput`` saying why and what to write.

    Blank text is the empty requirement.
    """
    if not text.strip():
        return Requirement()
    expr = parse_constraint(text)
    found: dict[str, list[str]] = {k: [] for k in PROVISIONING_KEYS}
    plain: list[str] = []

    def walk(e: Expr, why_not: str | None) -> None:
        if isinstance(e, Feature):
            term = split_term(e.name)
            if term is None:
                if why_not is None and e.count is None and e.name not in plain:
                    plain.append(e.name)
                return
            reason = why_not or (f"has a node count ({e.name}*{e.count})" if e.count else None)
            if reason:
                raise _refuse(text, e.name, reason)
            key, value = term
            found[key].append(value)
        elif isinstance(e, And):
            for item in e.items:
                walk(item, why_not)
        elif isinstance(e, Or):
            for item in e.items:
                walk(item, why_not or 'is under "|"')
        elif isinstance(e, Bracket):
            for item in e.items:
                walk(item, why_not or 'is inside "[...]"')
        else:
            walk(e.expr, why_not or (f"is in a group with a node count (*{e.count})" if e.count else None))

    walk(expr, None)
    return Requirement(
        os=_one(text, "os", found["os"]),
        libc=_libc(text, found["libc"]),
        image=_one(text, "image", found["image"]),
        features=tuple(plain),
    )


def _refuse(text: str, term: str, reason: str) -> BadInput:
    if "|" in reason:
        hint = f"pick one and AND it in, e.g. --constraint='{term}&...'; submit one job per choice"
    elif "[" in reason:
        hint = f"take it out of the brackets and AND it in: --constraint='{term}&[...]'"
    else:
        hint = "drop the count: every node gets the image; -N/--nodes sets how many nodes"
    return BadInput(
        f"constraint {text!r}: {term} {reason}, but every node of a job must get the same image",
        hint=hint + " (Slurm's helpers plugin also refuses [ ] ( ) | * next to a changeable feature)",
    )


def _one(text: str, key: str, values: list[str]) -> str | None:
    if not values:
        return None
    for v in values:
        if not v:
            raise BadInput(
                f"constraint {text!r}: {key}: needs a value",
                hint=f"write {key}:NAME, e.g. {'os:rocky9' if key == 'os' else 'image:rocky9-2026.11'}",
            )
        if key == "image" and not _IMAGE_NAME.fullmatch(v):
            raise BadInput(
                f"constraint {text!r}: image: {v!r} is not an image name",
                hint="image names are lower-case letters, digits, '.', '_' and '-' (see `cmt image list`)",
            )
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        what = "operating systems" if key == "os" else "images"
        raise BadInput(
            f"constraint {text!r}: asks for two {what} ({' and '.join(distinct)}); a node runs one image",
            hint=f"keep one {key} term (`cmt image list` shows the choices)",
        )
    return distinct[0]


def _libc(text: str, values: list[str]) -> Version | None:
    versions = [Version.parse(v, what=f"constraint {text!r}: libc") for v in values]
    return max(versions) if versions else None
