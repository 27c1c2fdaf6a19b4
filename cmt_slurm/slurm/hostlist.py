"""Slurm hostlist expressions (``n[1-3,5],gpu[01-02]``) expanded and compressed; pure, no Slurm needed.

PrologSlurmctld gets ``SLURM_JOB_NODELIST`` in this form and ``squeue --json`` reports ``nodes`` in it;
calling ``scontrol show hostnames`` for each would fork a process per hook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import BadInput

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")
_MAX_HOSTS = 1_000_000


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise BadInput(f"hostlist {text!r}: nested '['", hint="write e.g. n[1-4],m[1-2]")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise BadInput(f"hostlist {text!r}: ']' without '['", hint="write e.g. n[1-4]")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise BadInput(f"hostlist {text!r}: '[' not closed", hint="write e.g. n[1-4]")
    parts.append(text[start:])
    return parts


def _expand_ranges(text: str, body: str) -> list[str]:
    out: list[str] = []
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        if not m:
            raise BadInput(f"hostlist {text!r}: {item!r} is not N or N-M", hint="write e.g. n[1-4,7]")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise BadInput(f"hostlist {text!r}: range {item!r} goes down", hint="write the lower bound first")
        if int(hi) - int(lo) > _MAX_HOSTS:
            raise BadInput(f"hostlist {text!r}: range {item!r} is too large")
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        out.extend(str(i).zfill(width) for i in range(int(lo), int(hi) + 1))
    return out


def _expand_one(text: str, part: str) -> list[str]:
    if "[" not in part:
        return [part]
    names = [""]
    rest = part
    while rest:
        open_at = rest.find("[")
        if open_at < 0:
            names = [n + rest for n in names]
            break
        close_at = rest.index("]", open_at)
        prefix, body, rest = rest[:open_at], rest[open_at + 1 : close_at], rest[close_at + 1 :]
        names = [n + prefix + suffix for n in names for suffix in _expand_ranges(text, body)]
        if len(names) > _MAX_HOSTS:
            raise BadInput(f"hostlist {text!r}: too many hosts")
    return names


def expand_hostlist(text: str) -> list[str]:
    """``"n[1-3],m05"`` → ``["n1", "n2", "n3", "m05"]``, in order, duplicates kept out.

    Zero padding follows the lower bound (``n[01-10]`` → ``n01 … n10``). Several bracket groups in one
    name multiply (``r[1-2]n[1-2]`` → ``r1n1 r1n2 r2n1 r2n2``). Blank text is an empty list.

    :raises BadInput: unbalanced brackets, a range that is not ``N`` or ``N-M``, or one that goes down.
    """
    text = text.strip()
    if not text or text == "(null)":
        return []
    seen: dict[str, None] = {}
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            continue
        for name in _expand_one(text, part):
            seen.setdefault(name, None)
    return list(seen)


def compress_hostlist(names: Iterable[str]) -> str:
    """The inverse, for messages and ``scontrol`` arguments: ``["n1", "n2", "n3", "m5"]`` → ``"m5,n[1-3]"``.

    Names group by prefix and number width; order within the result is sorted, so output is stable.
    """
    groups: dict[tuple[str, int], set[int]] = {}
    plain: set[str] = set()
    for name in names:
        m = _TRAILING_NUMBER.match(name)
        if not m:
            plain.add(name)
            continue
        digits = m.group(2)
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        groups.setdefault((m.group(1), width), set()).add(int(digits))
    out = sorted(plain)
    for (prefix, width), numbers in sorted(groups.items()):
        nums = sorted(numbers)
        if len(nums) == 1:
            out.append(f"{prefix}{str(nums[0]).zfill(width)}")
            continue
        runs: list[str] = []
        start = prev = nums[0]
        for n in [*nums[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            a, b = str(start).zfill(width), str(prev).zfill(width)
            runs.append(a if start == prev else f"{a}-{b}")
            if n is not None:
                start = prev = n
        out.append(f"{prefix}[{','.join(runs)}]")
    return ",".join(out)
