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

from .requirement import PROVISIONING_KEYS, Requirement, requirement_from_constraint, split_term
from .syntax import (
    MAX_COUNT,
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Bracket,
    Expr,
    Feature,
    Group,
    Or,
    Tok,
    Token,
    format_expr,
    iter_features,
    parse_constraint,
    tokenize,
)

__all__ = [
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "PROVISIONING_KEYS",
    "And",
    "Bracket",
    "Expr",
    "Feature",
    "Group",
    "Or",
    "Requirement",
    "Tok",
    "Token",
    "format_expr",
    "iter_features",
    "parse_constraint",
    "requirement_from_constraint",
    "split_term",
    "tokenize",
]
