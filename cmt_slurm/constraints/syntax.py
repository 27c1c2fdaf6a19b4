"""Slurm 22.05 ``--constraint`` syntax: tokens, the AST, a recursive-descent parser, and its inverse.

- ``&`` and ``,`` are AND, ``|`` is OR. Slurm gives them **equal precedence and evaluates left to right**
  (its feature list is walked in order, each operator combining with the result so far), so ``a|b&c``
  means ``(a|b)&c``. The AST keeps that: ``a|b&c`` is ``And(Or(a, b), c)``.
- ``[a|b]`` is a "matching OR" (all nodes share one alternative); ``[a*2&b*4]`` asks for counts of each.
  Brackets do not nest.
- ``( ... )`` groups; ``*N`` (N >= 1) after a feature, a group or a bracket is a node count.
- A feature word is any run of other characters (``os=debian12``, ``gpu.a100``, ``libc:2.28``). Blanks
  between tokens are ignored; two words side by side are an error (Slurm would read one odd name).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from ..errors import BadInput

#: Bounds that keep hostile input cheap and the recursion shallow; real constraints are a few dozen bytes.
MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_COUNT = 2**31 - 1

_OPERATORS = "&,|[]()*"


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
                if not text[j].isprintable():  # would end up raw in messages, logs and terminals
                    raise _error(
                        text, j, f"control character {text[j]!r}", "feature names are printable characters"
                    )
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
