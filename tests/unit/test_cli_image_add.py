"""`cmt image add` and `cmt image rm`: validation first, nothing written on any problem."""

import hashlib
import shutil
from pathlib import Path

import pytest
from cli_run import run

from cmt_slurm.catalogue import load_catalogue, load_manifest

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "catalogue"


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, clean_env: None, tmp_path: Path) -> None:
    (tmp_path / "cmt.toml").write_text("")
    monkeypatch.setenv("CMT_CONFIG", str(tmp_path / "cmt.toml"))


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    dest = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, dest)
    return dest


def new_manifest(
    where: Path, name: str = "alma9-2026.11", default: bool = False, data: bytes | None = None
) -> Path:
    """A manifest beside its image file, in a directory of its own (as an image build leaves them)."""
    where.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else f"image {name}\n".encode()
    (where / f"{name}.qcow2").write_bytes(data)
    path = where / f"{name}.toml"
    path.write_text(
        f'# built by the image pipeline\nname = "{name}"\nos = "alma9"\nos_name = "AlmaLinux"\nos_version = "9.6"\n'
        f'glibc = "2.34"\narch = "x86_64"\nformat = "qcow2"\nurl = "{name}.qcow2"\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\nsize = {len(data)}\n'
        + ("default = true\n" if default else "")
    )
    return path


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.toml"))}


def test_add_rewrites_relative_url(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = new_manifest(tmp_path / "build")
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 0
    cap = capsys.readouterr()
    assert cap.out.endswith(f"added alma9-2026.11 -> {cat / 'alma9-2026.11.toml'}\n")
    assert f"note: url rewritten to {(tmp_path / 'build' / 'alma9-2026.11.qcow2').resolve()}" in cap.err
    added = load_manifest(cat / "alma9-2026.11.toml")
    assert added.local_path == (tmp_path / "build" / "alma9-2026.11.qcow2").resolve()
    assert len(load_catalogue(cat)) == 10
    assert run(["image", "verify", "alma9-2026.11", "--catalogue", str(cat)]) == 0


def test_add_file_inside_catalogue_gets_relative_url(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = new_manifest(cat / "files" / "staging")
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 0
    assert "note: url rewritten to files/staging/alma9-2026.11.qcow2" in capsys.readouterr().err
    assert load_manifest(cat / "alma9-2026.11.toml").url == "files/staging/alma9-2026.11.qcow2"


def test_add_absolute_url_copies_text_verbatim(cat: Path, tmp_path: Path) -> None:
    src = new_manifest(tmp_path / "b")
    text = src.read_text().replace(
        'url = "alma9-2026.11.qcow2"', f'url = "{tmp_path / "b" / "alma9-2026.11.qcow2"}"'
    )
    src.write_text(text)
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 0
    assert (cat / "alma9-2026.11.toml").read_text() == text  # comment kept


def test_add_refuses_existing_name_without_replace(
    cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = new_manifest(tmp_path / "b", name="rocky9-2026.11")
    before = snapshot(cat)
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 5
    err = capsys.readouterr().err.splitlines()
    assert (
        err[0] == f"error: image rocky9-2026.11 is already in the catalogue ({cat / 'rocky9-2026.11.toml'})"
    )
    assert err[1].startswith("hint: pass --replace")
    assert snapshot(cat) == before
    assert run(["image", "add", str(src), "--catalogue", str(cat), "--replace"]) == 0
    assert load_manifest(cat / "rocky9-2026.11.toml").os == "alma9"
    assert "replaced rocky9-2026.11" in capsys.readouterr().out


def test_add_second_default_writes_nothing(
    cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = new_manifest(tmp_path / "b", default=True)
    before = snapshot(cat)
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"error: {cat / 'alma9-2026.11.toml'}: default: debian12-2026.11 ({cat / 'debian12-2026.11.toml'}) "
        "is already the x86_64 default; only one image per arch may be"
    )
    assert snapshot(cat) == before
    assert not list(cat.glob(".*.tmp"))


def test_add_bad_manifest_lists_all(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = new_manifest(tmp_path / "b")
    src.write_text(
        src.read_text()
        .replace('glibc = "2.34"', 'glibc = "2.3x"')
        .replace('arch = "x86_64"', 'arch = "amd64"')
    )
    before = snapshot(cat)
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f'error: {src}: glibc: "2.3x" is not a version like 2.34',
        f'error: {src}: arch: "amd64" is not one of x86_64, aarch64',
        "hint: fix the manifest (keys: see docs or `cmt image show` of a working image) (2 problems in all)",
    ]
    assert snapshot(cat) == before


def test_add_verifies_file_unless_told_not_to(
    cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = new_manifest(tmp_path / "b")
    (tmp_path / "b" / "alma9-2026.11.qcow2").write_bytes(b"tampered")
    before = snapshot(cat)
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-2].endswith("has 8 bytes, the manifest says 20")
    assert snapshot(cat) == before
    assert run(["image", "add", str(src), "--catalogue", str(cat), "--no-verify"]) == 0


def test_add_refuses_to_clobber_another_file(
    cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cat / "alma9-2026.11.toml").write_text(
        (cat / "rocky8-2026.10.toml").read_text().replace("rocky8-2026.10", "r8")
    )
    src = new_manifest(tmp_path / "b")
    assert run(["image", "add", str(src), "--catalogue", str(cat)]) == 5
    assert "exists and does not define image alma9-2026.11" in capsys.readouterr().err


def test_add_missing_manifest(cat: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "add", str(tmp_path / "nope.toml"), "--catalogue", str(cat)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"error: {tmp_path / 'nope.toml'}: no such file"


def test_rm_keeps_file_unless_asked(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "rm", "rocky8-2026.10", "--catalogue", str(cat)]) == 0
    assert not (cat / "rocky8-2026.10.toml").exists()
    assert (cat / "files" / "rocky8-2026.10.qcow2").exists()
    assert run(["image", "rm", "rocky9-2026.05", "--catalogue", str(cat), "--delete-file"]) == 0
    assert not (cat / "files" / "rocky9-2026.05.qcow2").exists()
    out = capsys.readouterr().out
    assert f"deleted {cat / 'files' / 'rocky9-2026.05.qcow2'}" in out
    assert len(load_catalogue(cat)) == 7


def test_rm_unknown_and_shared_file(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "rm", "rocky8", "--catalogue", str(cat)]) == 4
    assert "closest: rocky8-2026.10" in capsys.readouterr().err
    twin = (
        (cat / "rocky8-2026.10.toml").read_text().replace('name = "rocky8-2026.10"', 'name = "rocky8-twin"')
    )
    (cat / "rocky8-twin.toml").write_text(twin)
    assert run(["image", "rm", "rocky8-twin", "--catalogue", str(cat), "--delete-file"]) == 5
    assert "is also used by rocky8-2026.10" in capsys.readouterr().err
    assert (cat / "rocky8-twin.toml").exists()


def test_rm_works_in_a_broken_catalogue(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cat / "zz-bad.toml").write_text('name = "broken\n')
    dup = (cat / "rocky9-2026.05.toml").read_text()
    (cat / "zz-dup.toml").write_text(dup)
    assert run(["image", "list", "--catalogue", str(cat)]) == 2
    assert run(["image", "rm", "rocky8-2026.10", "--catalogue", str(cat)]) == 0
    assert not (cat / "rocky8-2026.10.toml").exists()
    assert run(["image", "rm", "rocky9-2026.05", "--catalogue", str(cat)]) == 5
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith("error: image rocky9-2026.05 is defined by 2 manifests: ")
    assert (cat / "zz-dup.toml").exists()
