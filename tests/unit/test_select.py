"""select_image: the policy in its docstring, case by case, and the NoMatch messages."""

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmt_slurm.catalogue import Catalogue, Image, load_catalogue, satisfies, select_image
from cmt_slurm.constraints import Requirement, requirement_from_constraint
from cmt_slurm.errors import NoMatch
from cmt_slurm.versions import Version

CAT = Path(__file__).resolve().parent.parent / "data" / "catalogue"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue(CAT)


def pick(cat: Catalogue, constraint: str, arch: str = "x86_64") -> str:
    return select_image(cat, requirement_from_constraint(constraint), arch).name


CHOICES = [
    ("", "x86_64", "debian12-2026.11"),  # empty -> the default
    ("ib&haswell", "x86_64", "debian12-2026.11"),  # hardware features only -> the default
    ("", "aarch64", "debian12-arm-2026.11"),
    ("os:rocky9", "x86_64", "rocky9-2026.11"),  # two builds, same glibc -> newest built
    ("os=rocky8", "x86_64", "rocky8-2026.10"),
    ("os:centos7", "x86_64", "centos7-2024.06"),
    ("os:debian13", "x86_64", "debian13-2026.11"),
    ("os:debian12", "x86_64", "debian12-2026.11"),
    ("os:rocky9", "aarch64", "rocky9-arm-2026.11"),
    ("libc:2.17", "x86_64", "debian12-2026.11"),  # the default satisfies
    ("libc:2.36", "x86_64", "debian12-2026.11"),
    ("libc:2.37", "x86_64", "debian13-2026.11"),  # default too old -> lowest glibc that satisfies
    ("libc:2.9", "x86_64", "debian12-2026.11"),  # 2.9 < 2.17 as versions, not as text
    ("libc:2.37", "aarch64", "ubuntu2404-arm-2026.09"),
    ("os:rocky9&libc:2.28", "x86_64", "rocky9-2026.11"),
    ("libc:2.17&libc:2.37", "x86_64", "debian13-2026.11"),  # two minimums -> the higher
    ("image:rocky9-2026.05", "x86_64", "rocky9-2026.05"),  # exact image wins over newer builds
    ("image:rocky9-2026.05&os:rocky9&libc:2.34", "x86_64", "rocky9-2026.05"),
    ("os:rocky9&cuda12", "x86_64", "rocky9-2026.11"),  # an extra feature a manifest declares
    ("cuda12", "x86_64", "rocky9-2026.11"),
    ("cuda12&ib", "x86_64", "rocky9-2026.11"),
]


@pytest.mark.parametrize(("constraint", "arch", "name"), CHOICES, ids=[f"{c[0]}@{c[1]}" for c in CHOICES])
def test_choice(cat: Catalogue, constraint: str, arch: str, name: str) -> None:
    assert pick(cat, constraint, arch) == name


def _without_default(cat: Catalogue) -> Catalogue:
    return Catalogue.of(replace(i, default=False) for i in cat)


def test_without_default_lowest_glibc_wins(cat: Catalogue) -> None:
    plain = _without_default(cat)
    assert pick(plain, "libc:2.17") == "centos7-2024.06"
    assert pick(plain, "libc:2.29") == "rocky9-2026.11"
    assert pick(plain, "os:debian12") == "debian12-2026.11"


def test_empty_without_default_is_no_match(cat: Catalogue) -> None:
    with pytest.raises(NoMatch) as exc:
        select_image(_without_default(cat), Requirement())
    assert exc.value.message == "no x86_64 default image, and the constraint names no os or libc"
    assert exc.value.hint and "rocky9" in exc.value.hint
    assert exc.value.exit_code == 3


def _img(name: str, glibc: str, built: date | None, default: bool = False) -> Image:
    return Image(
        name=name, os="el", os_name="EL", os_version="9", glibc=Version.parse(glibc), arch="x86_64",
        format="qcow2", url=f"{name}.qcow2", sha256="0" * 64, size=1, built=built, default=default,
    )  # fmt: skip


def test_ties_newest_built_then_undated_then_name() -> None:
    req = Requirement(os="el")
    images = [_img("b", "2.34", None), _img("a", "2.34", None), _img("c", "2.34", date(2025, 1, 1))]
    assert select_image(Catalogue.of(images), req).name == "c"
    assert select_image(Catalogue.of(images[:2]), req).name == "a"
    newer = [*images, _img("d", "2.34", date(2026, 1, 1))]
    assert select_image(Catalogue.of(newer), req).name == "d"
    # lowest glibc beats any build date
    assert select_image(Catalogue.of([*newer, _img("z", "2.28", None)]), req).name == "z"


def test_default_wins_even_if_not_lowest() -> None:
    images = [_img("low", "2.28", date(2026, 1, 1)), _img("dflt", "2.36", None, default=True)]
    assert select_image(Catalogue.of(images), Requirement(os="el")).name == "dflt"
    assert select_image(Catalogue.of(images), Requirement(libc=Version.parse("2.20"))).name == "dflt"


NO_MATCH = [
    (
        "os:ubuntu2404",
        "x86_64",
        "no x86_64 image satisfies os=ubuntu2404: os ubuntu2404 is built only for aarch64 "
        "(ubuntu2404-arm-2026.09)",
        "run on an aarch64 node",
    ),
    (
        "os:rocky10",
        "x86_64",
        "no x86_64 image satisfies os=rocky10: no image has os tag 'rocky10' (did you mean rocky9?)",
        "known os tags for x86_64: centos7, debian12, debian13, rocky8, rocky9",
    ),
    (
        "os:rocky9&libc:2.36",
        "x86_64",
        "no x86_64 image satisfies os=rocky9&libc=2.36: the highest glibc in the rocky9 images is 2.34 "
        "(rocky9-2026.11)",
        "drop os:rocky9: debian12-2026.11 (debian12) has glibc 2.36",
    ),
    (
        "libc:2.50",
        "x86_64",
        "no x86_64 image satisfies libc=2.50: the highest glibc in the x86_64 images is 2.41 (debian13-2026.11)",
        "ask for libc:2.41 or lower",
    ),
    (
        "image:rocky9-2026.5",
        "x86_64",
        "no image named 'rocky9-2026.5' in the catalogue (closest: rocky9-2026.05, rocky9-2026.11, rocky8-2026.10)",
        "cmt image list",
    ),
    ("image:rocky9-2026.05&os:rocky8", "x86_64", "image rocky9-2026.05 is os rocky9, not rocky8", "drop"),
    (
        "image:rocky8-2026.10&libc:2.34",
        "x86_64",
        "image rocky8-2026.10 has glibc 2.28, below libc:2.34",
        "let os/libc choose",
    ),
    (
        "image:rocky9-arm-2026.11",
        "x86_64",
        "image rocky9-arm-2026.11 is built for aarch64, not x86_64",
        "drop",
    ),
    (
        "image:rocky9-2026.05&cuda12",
        "x86_64",
        "image rocky9-2026.05 lacks feature cuda12",
        "drop",
    ),
    (
        "os:debian12&cuda12",
        "x86_64",
        "no x86_64 image satisfies os=debian12&cuda12: no such image provides cuda12",
        "images providing it: rocky9-2026.11",
    ),
    (
        "os:rocky9",
        "riscv64",
        "no riscv64 image satisfies os=rocky9: the catalogue has no riscv64 image",
        "add a",
    ),
]


@pytest.mark.parametrize(("constraint", "arch", "message", "hint"), NO_MATCH, ids=[n[0] for n in NO_MATCH])
def test_no_match_names_the_closest(
    cat: Catalogue, constraint: str, arch: str, message: str, hint: str
) -> None:
    with pytest.raises(NoMatch) as exc:
        select_image(cat, requirement_from_constraint(constraint), arch)
    assert exc.value.message.startswith(message)
    assert exc.value.hint is not None
    assert hint in exc.value.hint
    assert "closest" in exc.value.details


def test_empty_catalogue() -> None:
    with pytest.raises(NoMatch, match=r"\(it is empty\)"):
        select_image(Catalogue(), Requirement(os="rocky9"))


_FIXTURE = load_catalogue(CAT)


@given(
    os=st.sampled_from([None, "rocky9", "debian12", "centos7", "nope"]),
    libc=st.sampled_from([None, "2.9", "2.17", "2.30", "2.36", "2.41", "3.0"]),
    arch=st.sampled_from(["x86_64", "aarch64"]),
)
def test_chosen_image_always_satisfies(os: str | None, libc: str | None, arch: str) -> None:
    cat = _FIXTURE
    req = Requirement(os=os, libc=Version.parse(libc) if libc else None)
    try:
        image = select_image(cat, req, arch)
    except NoMatch:
        assert not any(satisfies(i, req) for i in cat.by_arch(arch))
        return
    assert image.arch == arch
    assert satisfies(image, req)
    default = cat.default(arch)
    if default is not None and satisfies(default, req):
        assert image == default
    else:
        assert all(image.glibc <= i.glibc for i in cat.by_arch(arch) if satisfies(i, req))
