"""glibc-like dotted versions ("2.17", "2.36", "2.9"), compared numerically component by component.

String comparison gets glibc wrong ("2.9" > "2.17" as text), and so would a float; the whole point of this
type is that ``libc:2.28`` selects images by number. Trailing zeros are significant for display only:
``2.28`` and ``2.28.0`` compare equal (a missing component counts as 0) but print as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

from .errors import BadInput

# No leading zeros: "2.028" would compare equal to "2.28" yet print, and become a Slurm feature, differently.
_VERSION = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
#: Longest version accepted; nothing real comes close, and it bounds the work done on hostile input.
_MAX_LEN = 64


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A version like ``2.34``: one or more non-negative integers joined by dots."""

    parts: tuple[int, ...]
    text: str = field(default="", compare=False)
    _key: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    @classmethod
    def parse(cls, text: str, *, what: str = "version") -> Version:
        """Parse ``text`` (surrounding blanks ignored); raise ``BadInput`` naming ``what`` otherwise."""
        if not isinstance(text, str):
            raise BadInput(
                f"{what}: {text!r} is not a version like 2.34",
                hint='write the version as a quoted string of numbers and dots, e.g. "2.34"',
            )
        s = text.strip()
        if len(s) > _MAX_LEN or not _VERSION.fullmatch(s):
            shown = s if len(s) <= _MAX_LEN else s[:_MAX_LEN] + "..."
            raise BadInput(
                f'{what}: "{shown}" is not a version like 2.34',
                hint="use numbers without leading zeros, separated by single dots, e.g. 2.17, 2.28 or 2.36",
            )
        return cls(tuple(int(p) for p in s.split(".")), s)

    def __post_init__(self) -> None:
        # Trailing zeros dropped, so 2.28 == 2.28.0 and both hash alike; comparing the stripped tuples
        # orders exactly like comparing zero-padded ones. Computed once: selection compares a lot.
        key = list(self.parts)
        while len(key) > 1 and key[-1] == 0:
            key.pop()
        object.__setattr__(self, "_key", tuple(key))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text or ".".join(str(p) for p in self.parts)

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"
