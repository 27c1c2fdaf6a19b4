"""``select_image``: which catalogue image a requirement gets. Pure: no files, no clock, no database."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..constraints import Requirement
from ..errors import NoMatch
from .model import Catalogue, Image


def _order(image: Image) -> tuple[object, ...]:
    # Lowest glibc first; then newest build (an undated build counts as the oldest); then name.
    built = (0, -image.built.toordinal()) if image.built else (1, 0)
    return (image.glibc, built, image.name)


def image_requirements(catalogue: Catalogue, req: Requirement) -> tuple[str, ...]:
    """The plain features of ``req`` that concern the image: those some manifest lists in ``features``."""
    if not req.features:
        return ()
    extras = {f for image in catalogue for f in image.features}
    return tuple(f for f in req.features if f in extras)


def satisfies(image: Image, req: Requirement, extras: Sequence[str] = ()) -> bool:
    """Whether ``image`` meets ``req`` (the arch is the caller's filter)."""
    return (
        (req.image is None or image.name == req.image)
        and (req.os is None or image.os == req.os)
        and (req.libc is None or image.glibc >= req.libc)
        and all(f in image.features for f in extras)
    )


def select_image(catalogue: Catalogue, requirement: Requirement, arch: str = "x86_64") -> Image:
    """The image a node of ``arch`` must run for ``requirement``; ``NoMatch`` naming the closest if none.

    Policy, in order:

    1. Only images built for ``arch`` count.
    2. ``image:N`` names one image; it wins, but must also meet any ``os``/``libc``/extra-feature terms
       given with it (a conflict is a ``NoMatch`` that says which term the image breaks).
    3. ``os:X`` matches the image's os tag exactly; a tag may have several builds.
    4. ``libc:V`` means glibc >= V, compared as versions (2.9 < 2.17).
    5. A plain feature that some manifest lists under ``features`` must be provided by the image; other
       plain features (``ib``, ``haswell``) describe the hardware and are Slurm's to match, not ours.
    6. Among the images that satisfy everything: the site default for ``arch`` if it is one of them
       (a node that stays on the default needs no reimage later); else the lowest glibc that satisfies
       (the oldest userland the job accepts is the least surprising one); ties go to the newest ``built``
       date (undated counts as oldest), then to the name, so the answer never depends on file order.
    7. A requirement with nothing image-related in it gets the site default, or ``NoMatch`` if the
       catalogue has none for ``arch``.
    """
    extras = image_requirements(catalogue, requirement)
    candidates = catalogue.by_arch(arch)
    if requirement.image is not None:
        return _exact(catalogue, requirement, arch, extras)
    if requirement.os is None and requirement.libc is None and not extras:
        default = catalogue.default(arch)
        if default is None:
            raise NoMatch(
                f"no {arch} default image, and the constraint names no os or libc",
                hint="set default = true in one manifest, or ask for an image with --constraint=os:TAG "
                f"(tags: {_tags(candidates)})",
                details={"closest": [i.name for i in candidates]},
            )
        return default
    matching = [i for i in candidates if satisfies(i, requirement, extras)]
    if not matching:
        raise _no_match(catalogue, requirement, arch, extras)
    default = catalogue.default(arch)
    if default is not None and default in matching:
        return default
    return min(matching, key=_order)


def _tags(images: Sequence[Image]) -> str:
    return ", ".join(sorted({i.os for i in images})) or "none"


def _exact(catalogue: Catalogue, req: Requirement, arch: str, extras: Sequence[str]) -> Image:
    assert req.image is not None
    image = catalogue.get(req.image)
    if image is None:
        close = difflib.get_close_matches(req.image, [i.name for i in catalogue], n=3, cutoff=0.5)
        raise NoMatch(
            f"no image named {req.image!r} in the catalogue"
            + (f" (closest: {', '.join(close)})" if close else ""),
            hint="`cmt image list` shows the names; or ask by os with --constraint=os:TAG",
            details={"closest": close},
        )
    conflicts = []
    if image.arch != arch:
        conflicts.append(f"is built for {image.arch}, not {arch}")
    if req.os is not None and image.os != req.os:
        conflicts.append(f"is os {image.os}, not {req.os}")
    if req.libc is not None and image.glibc < req.libc:
        conflicts.append(f"has glibc {image.glibc}, below libc:{req.libc}")
    missing = [f for f in extras if f not in image.features]
    if missing:
        conflicts.append(f"lacks feature {', '.join(missing)}")
    if conflicts:
        raise NoMatch(
            f"image {image.name} {' and '.join(conflicts)}",
            hint=f"drop the conflicting terms and keep image:{image.name}, "
            "or drop image: and let os/libc choose",
            details={"closest": [image.name]},
        )
    return image


def _no_match(catalogue: Catalogue, req: Requirement, arch: str, extras: Sequence[str]) -> NoMatch:
    """Say what came closest: the os on another arch, the highest glibc there is, the known tags."""
    candidates = catalogue.by_arch(arch)
    wanted = str(Requirement(req.os, req.libc, None, tuple(extras)))
    head = f"no {arch} image satisfies {wanted}"
    if not candidates:
        others = catalogue.arches
        return NoMatch(
            f"{head}: the catalogue has no {arch} image"
            + (f" (only {', '.join(others)})" if others else " (it is empty)"),
            hint=f"add a {arch} manifest with `cmt image add`, or run the job on a node of another arch",
            details={"closest": [i.name for i in catalogue if req.os is None or i.os == req.os]},
        )
    if req.os is not None and not any(i.os == req.os for i in candidates):
        elsewhere = [i for i in catalogue if i.os == req.os]
        if elsewhere:
            arches = ", ".join(sorted({i.arch for i in elsewhere}))
            return NoMatch(
                f"{head}: os {req.os} is built only for {arches} ({', '.join(i.name for i in elsewhere)})",
                hint=f"run on an {arches} node, or add a {arch} build of {req.os} to the catalogue",
                details={"closest": [i.name for i in elsewhere]},
            )
        close = difflib.get_close_matches(req.os, [i.os for i in candidates], n=1, cutoff=0.5)
        return NoMatch(
            f"{head}: no image has os tag {req.os!r}" + (f" (did you mean {close[0]}?)" if close else ""),
            hint=f"known os tags for {arch}: {_tags(candidates)}",
            details={"closest": close, "os_tags": sorted({i.os for i in candidates})},
        )
    pool = [i for i in candidates if req.os is None or i.os == req.os]
    if req.libc is not None and not any(i.glibc >= req.libc for i in pool):
        top = max(i.glibc for i in pool)
        best = min((i for i in pool if i.glibc == top), key=_order)
        newer = sorted((i for i in candidates if i.glibc >= req.libc), key=_order)
        scope = f"the {req.os} images" if req.os else f"the {arch} images"
        hint = f"ask for libc:{best.glibc} or lower"
        if newer and req.os:
            hint += f", or drop os:{req.os}: {newer[0].name} ({newer[0].os}) has glibc {newer[0].glibc}"
        return NoMatch(
            f"{head}: the highest glibc in {scope} is {best.glibc} ({best.name})",
            hint=hint,
            details={"closest": [best.name, *(i.name for i in newer[:1])]},
        )
    lacking = sorted({f for f in extras if not any(f in i.features for i in pool)})
    providers = sorted(i.name for i in candidates if all(f in i.features for f in extras))
    return NoMatch(
        f"{head}: no such image provides {', '.join(lacking) or ', '.join(extras)}",
        hint=(f"images providing it: {', '.join(providers)}" if providers else "")
        or "`cmt image list` shows each image's features",
        details={"closest": providers},
    )
