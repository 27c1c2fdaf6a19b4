"""The image requirement in a constraint: ``os``, ``libc`` and ``image`` terms, and what to refuse.

``os:X``/``os=X`` (the image's os tag), ``libc:V``/``libc=V`` (at least glibc V) and ``image:N``/``image=N``
(one catalogue image) are provisioning terms. They must hold on every node of the job, so they may only be
ANDed in: never under ``|``, inside ``[...]`` or under a ``*N`` count. Two ``libc`` terms keep the higher
one (both minimums hold exactly when the higher does); two different ``os`` or ``image`` terms are an
error. Plain features ANDed at the top level are kept in ``Requirement.features``; the rest is Slurm's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadInput
from ..versions import Version
from .syntax import And, Bracket, Expr, Feature, Or, iter_features, parse_constraint

_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
PROVISIONING_KEYS = ("os", "libc", "image")


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


def requirement_from_constraint(text: str, *, helpers: bool = False) -> Requirement:
    """Parse ``text`` and extract the image requirement; raise ``BadInput`` saying why and what to write.

    Blank text is the empty requirement. ``helpers=True`` also refuses what Slurm 22.05's helpers plugin
    refuses at submission: any of ``[ ] ( ) | *`` in a constraint that names a changeable feature, even
    where the meaning would be clear (``os:rocky9&(ib|opa)``); the prolog mode has no such limit.
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
    if helpers:  # after the walk: its reasons ("under |", "has a count") say more than Slurm's rule
        _check_helpers(text, expr)
    return Requirement(
        os=_one(text, "os", found["os"]),
        libc=_libc(text, found["libc"]),
        image=_one(text, "image", found["image"]),
        features=tuple(plain),
    )


def _check_helpers(text: str, expr: Expr) -> None:
    terms = [f.name for f in iter_features(expr) if split_term(f.name)]
    operators = sorted({ch for ch in text if ch in "[]()|*"})
    if terms and operators:
        raise BadInput(
            f"constraint {text!r}: Slurm's helpers plugin refuses {' '.join(operators)} in a constraint "
            f"with a changeable feature ({terms[0]})",
            hint=f"join features with & only, e.g. --constraint='{terms[0]}&ib', or use the prolog mode",
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
