"""The Slurm features the catalogue gives nodes: ``os=<tag>``, ``libc=<floor>``, and manifests' extras.

Slurm (node_features/helpers) accepts only names matching ``[A-Za-z_=][A-Za-z0-9_.=]*``: a name with ``-``,
``:`` or anything else makes slurmctld and slurmd die at start. So every name is checked here, and an os
tag must itself be made of ``[A-Za-z0-9_.]`` (``rocky9``, ``debian12``, ``el9_4``): ``rocky-9`` is refused
when the manifest is loaded rather than quietly mapped to something the user did not write in
``--constraint``.

``libc`` works as a floor: every glibc version present in the catalogue is a feature, and an image provides
every floor its own glibc reaches. With glibc {2.17, 2.28, 2.36} in the catalogue, a 2.36 image gives
``libc=2.17``, ``libc=2.28`` and ``libc=2.36``, so ``--constraint=libc:2.28`` ("at least 2.28") matches
nodes already running it and Slurm prefers them over reimaging.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import BadInput
from ..versions import Version
from .model import Catalogue, Image

SLURM_FEATURE = re.compile(r"[A-Za-z_=][A-Za-z0-9_.=]*")
OS_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")
#: Prefixes the catalogue owns; a manifest's extra features may not use them.
RESERVED_PREFIXES = ("os=", "libc=", "image=")


def os_tag_problem(tag: str) -> str | None:
    """Why ``tag`` cannot be an os tag, or None."""
    if OS_TAG.fullmatch(tag):
        return None
    better = re.sub(r"[^A-Za-z0-9_.]+", "_", tag).strip("_.") or "rocky9"
    return (
        f'{_shown(tag)} cannot be a Slurm feature (os={tag}): os tags are letters, digits, "_" and "." '
        f"(write e.g. {better}, rocky9 or el9_4)"
    )


def _shown(text: str) -> str:
    """Quoted, with control characters escaped, so an error stays one line whatever the input held."""
    return json.dumps(text, ensure_ascii=False)


def feature_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an extra static feature, or None."""
    if any(name.startswith(p) for p in RESERVED_PREFIXES):
        return f"{_shown(name)} starts with {name.partition('=')[0]}=, which the catalogue sets itself"
    if not SLURM_FEATURE.fullmatch(name):
        return f"{_shown(name)} is not a valid Slurm feature name ([A-Za-z_=][A-Za-z0-9_.=]*)"
    return None


def feature_os_tag(tag: str) -> str:
    """The feature ``os=<tag>``; ``BadInput`` when the tag cannot be one."""
    problem = os_tag_problem(tag)
    if problem:
        raise BadInput(f"os tag: {problem}", hint="rename the os tag in the manifest")
    return f"os={tag}"


def libc_feature(v: Version) -> str:
    return f"libc={v}"


def libc_floors(catalogue: Catalogue) -> tuple[Version, ...]:
    """Every distinct glibc version in the catalogue (all arches: features are cluster-wide), lowest first."""
    seen: dict[Version, Version] = {}
    for image in catalogue:
        seen.setdefault(image.glibc, image.glibc)
    return tuple(sorted(seen.values()))


def image_features(catalogue: Catalogue, image: Image) -> tuple[str, ...]:
    """What a node running ``image`` reports to Slurm: os tag, reached libc floors, then extras."""
    floors = [libc_feature(v) for v in libc_floors(catalogue) if v <= image.glibc]
    if image.glibc not in libc_floors(catalogue):  # an image outside the catalogue still names its own
        floors.append(libc_feature(image.glibc))
    return (feature_os_tag(image.os), *floors, *image.features)


@dataclass(frozen=True)
class Vocabulary:
    """Every feature name the catalogue can put on a node. ``os`` names are mutually exclusive."""

    os: tuple[str, ...]
    libc: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.os, *self.libc, *self.extra)


def vocabulary(catalogue: Catalogue) -> Vocabulary:
    return Vocabulary(
        os=tuple(feature_os_tag(t) for t in catalogue.os_tags),
        libc=tuple(libc_feature(v) for v in libc_floors(catalogue)),
        extra=tuple(sorted({f for image in catalogue for f in image.features})),
    )
