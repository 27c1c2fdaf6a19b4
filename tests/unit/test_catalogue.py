"""Loading the fixture catalogue, the model's accessors, and the manifest writer."""

from datetime import date
from pathlib import Path

import pytest

from cmt_slurm.catalogue import (
    Catalogue,
    Image,
    check_catalogue,
    dump_manifest,
    load_catalogue,
    load_manifest,
    read_manifest,
)
from cmt_slurm.errors import BadInput
from cmt_slurm.versions import Version

DATA = Path(__file__).resolve().parent.parent / "data"
CAT = DATA / "catalogue"


@pytest.fixture
def catalogue() -> Catalogue:
    return load_catalogue(CAT)


def test_fixture_catalogue_loads(catalogue: Catalogue) -> None:
    assert [i.name for i in catalogue] == sorted(i.name for i in catalogue)
    assert len(catalogue) == 9
    assert catalogue.os_tags == ("centos7", "debian12", "debian13", "rocky8", "rocky9", "ubuntu2404")
    assert catalogue.arches == ("aarch64", "x86_64")
    assert catalogue.directory == CAT


def test_image_fields(catalogue: Catalogue) -> None:
    img = catalogue.get("rocky9-2026.11")
    assert img is not None
    assert img.os == "rocky9"
    assert img.os_name == "Rocky Linux"
    assert img.glibc == Version.parse("2.34")
    assert img.built == date(2026, 11, 20)
    assert img.features == ("cuda12",)
    assert img.default is False
    assert img.manifest_path == CAT / "rocky9-2026.11.toml"
    assert img.local_path == CAT / "files" / "rocky9-2026.11.qcow2"
    assert img.local_path.stat().st_size == img.size
    assert img.resolved_url == (CAT / "files" / "rocky9-2026.11.qcow2").as_uri()
    deb13 = catalogue.get("debian13-2026.11")
    assert deb13 is not None
    assert deb13.built is None
    assert deb13.format == "raw"
    assert deb13.kernel_args == "console=ttyS0,115200"


def test_lookups(catalogue: Catalogue) -> None:
    assert catalogue.get("nope") is None
    assert {i.name for i in catalogue.by_arch("aarch64")} == {
        "debian12-arm-2026.11",
        "rocky9-arm-2026.11",
        "ubuntu2404-arm-2026.09",
    }
    default = catalogue.default("x86_64")
    assert default is not None
    assert default.name == "debian12-2026.11"
    assert catalogue.default("riscv64") is None


def test_http_url_has_no_local_path() -> None:
    img = Image(
        name="x", os="x", os_name="X", os_version="1", glibc=Version.parse("2.36"), arch="x86_64",
        format="qcow2", url="https://images.example.org/x.qcow2", sha256="0" * 64, size=1,
    )  # fmt: skip
    assert img.local_path is None
    assert img.resolved_url == "https://images.example.org/x.qcow2"


def test_absolute_path_url(tmp_path: Path) -> None:
    img = load_manifest(CAT / "rocky8-2026.10.toml")
    moved = Image(**{**img.__dict__, "url": str(tmp_path / "r8.qcow2")})
    assert moved.local_path == tmp_path / "r8.qcow2"


def test_to_json_is_plain(catalogue: Catalogue) -> None:
    img = catalogue.get("rocky9-2026.11")
    assert img is not None
    data = img.to_json()
    assert data["glibc"] == "2.34"
    assert data["built"] == "2026-11-20"
    assert data["features"] == ["cuda12"]
    assert data["manifest"] == str(CAT / "rocky9-2026.11.toml")


def test_dump_manifest_round_trips(catalogue: Catalogue, tmp_path: Path) -> None:
    for img in catalogue:
        path = tmp_path / f"{img.name}.toml"
        path.write_text(dump_manifest(img))
        again, problems = read_manifest(path)
        assert problems == []
        assert again == img
    odd = Image(**{**img.__dict__, "os_name": 'Odd "quoted" \\ name', "kernel_args": "a=\tb"})
    path = tmp_path / "odd.toml"
    path.write_text(dump_manifest(odd, url="/srv/odd.qcow2"))
    again = load_manifest(path)
    assert again.os_name == odd.os_name
    assert again.url == "/srv/odd.qcow2"


def test_missing_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        load_catalogue(tmp_path / "nope")
    assert exc.value.message == f"catalogue directory {tmp_path / 'nope'} does not exist"
    assert exc.value.hint and "--catalogue" in exc.value.hint
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInput, match="is not a directory"):
        load_catalogue(tmp_path / "file")


def test_empty_directory_is_an_empty_catalogue(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a manifest")
    assert len(load_catalogue(tmp_path)) == 0


def test_check_catalogue_builds_sorted(catalogue: Catalogue) -> None:
    again = check_catalogue(list(reversed(catalogue.images)))
    assert again.images == catalogue.images
