"""The Slurm features the catalogue gives: os=<tag>, libc floors, extras, all valid Slurm names."""

from dataclasses import replace
from pathlib import Path

import pytest

from cmt_slurm.catalogue import (
    Catalogue,
    Image,
    feature_os_tag,
    image_features,
    libc_floors,
    load_catalogue,
    vocabulary,
)
from cmt_slurm.catalogue.features import SLURM_FEATURE
from cmt_slurm.errors import BadInput
from cmt_slurm.versions import Version

CAT = Path(__file__).resolve().parent.parent / "data" / "catalogue"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue(CAT)


def _get(cat: Catalogue, name: str) -> Image:
    image = cat.get(name)
    assert image is not None
    return image


def test_floors_are_every_glibc_in_the_catalogue(cat: Catalogue) -> None:
    assert [str(v) for v in libc_floors(cat)] == ["2.17", "2.28", "2.34", "2.36", "2.39", "2.41"]


def test_image_provides_every_floor_it_reaches(cat: Catalogue) -> None:
    assert image_features(cat, _get(cat, "centos7-2024.06")) == ("os=centos7", "libc=2.17")
    assert image_features(cat, _get(cat, "debian12-2026.11")) == (
        "os=debian12",
        "libc=2.17",
        "libc=2.28",
        "libc=2.34",
        "libc=2.36",
    )
    assert image_features(cat, _get(cat, "rocky9-2026.11")) == (
        "os=rocky9",
        "libc=2.17",
        "libc=2.28",
        "libc=2.34",
        "cuda12",
    )


def test_three_floor_example_from_the_design() -> None:
    cat = load_catalogue(CAT)
    small = Catalogue.of(
        i for i in cat if i.name in ("centos7-2024.06", "rocky8-2026.10", "debian12-2026.11")
    )
    assert image_features(small, _get(small, "debian12-2026.11")) == (
        "os=debian12",
        "libc=2.17",
        "libc=2.28",
        "libc=2.36",
    )


def test_image_outside_the_catalogue_still_names_its_glibc(cat: Catalogue) -> None:
    odd = replace(_get(cat, "rocky8-2026.10"), name="x", glibc=Version.parse("2.30"))
    assert image_features(cat, odd) == ("os=rocky8", "libc=2.17", "libc=2.28", "libc=2.30")


def test_vocabulary(cat: Catalogue) -> None:
    v = vocabulary(cat)
    assert v.os == ("os=centos7", "os=debian12", "os=debian13", "os=rocky8", "os=rocky9", "os=ubuntu2404")
    assert v.libc[0] == "libc=2.17"
    assert v.extra == ("cuda12",)
    assert v.all == (*v.os, *v.libc, *v.extra)
    for name in v.all:
        assert SLURM_FEATURE.fullmatch(name), name
    for image in cat:
        assert set(image_features(cat, image)) <= set(v.all)


def test_empty_catalogue_vocabulary() -> None:
    v = vocabulary(Catalogue())
    assert v.all == ()


@pytest.mark.parametrize("tag", ["rocky9", "el9_4", "debian12", "sles15.6", "RHEL9"])
def test_valid_os_tags(tag: str) -> None:
    assert feature_os_tag(tag) == f"os={tag}"
    assert SLURM_FEATURE.fullmatch(feature_os_tag(tag))


@pytest.mark.parametrize("tag", ["rocky-9", "el9:4", "", "a=b", ".x", "deb ian", "ünï"])
def test_os_tags_that_cannot_be_features(tag: str) -> None:
    with pytest.raises(BadInput) as exc:
        feature_os_tag(tag)
    assert "cannot be a Slurm feature" in exc.value.message
    assert "rocky9" in exc.value.message and "el9_4" in exc.value.message
