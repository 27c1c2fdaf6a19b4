"""`cmt image ...` end to end through the CLI boundary: output, exit codes, and what is (not) written."""

import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import run

DATA = Path(__file__).resolve().parent.parent / "data"
FIXTURE = DATA / "catalogue"


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    """A writable copy of the fixture catalogue."""
    dest = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch, clean_env: None, tmp_path: Path) -> None:
    # Loopback only: no proxy may take the test's requests, and no /etc/cmt/cmt.toml may leak in.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cmt.toml").write_text("")
    monkeypatch.setenv("CMT_CONFIG", str(tmp_path / "cmt.toml"))


def out_err(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    cap = capsys.readouterr()
    return cap.out, cap.err.splitlines()


# --- list / show -----------------------------------------------------------------------------------


def test_list_table_and_json(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "list", "--catalogue", str(cat)]) == 0
    out, _ = out_err(capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "OS", "GLIBC", "ARCH", "FORMAT", "SIZE", "BUILT", "DEFAULT"]
    assert lines[2].split() == [
        "debian12-2026.11",
        "debian12",
        "2.36",
        "x86_64",
        "qcow2",
        "46",
        "B",
        "2026-11-15",
        "yes",
    ]
    assert len(lines) == 10
    assert run(["image", "list", "--catalogue", str(cat), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data][:2] == ["centos7-2024.06", "debian12-2026.11"]
    assert data[0]["slurm_features"] == ["os=centos7", "libc=2.17"]


def test_catalogue_defaults_to_settings(
    cat: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMT_CATALOGUE_DIR", str(cat))
    assert run(["image", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 9


def test_empty_catalogue_lists_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert run(["image", "list", "--catalogue", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == "(none)\n"


def test_broken_catalogue_prints_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    bad = DATA / "catalogue-bad"
    assert run(["image", "list", "--catalogue", str(bad)]) == 2
    _, err = out_err(capsys)
    assert len(err) == 22  # 21 problems, then the hint
    assert err[0] == f'error: {bad}/rocky9.toml: defualt: unknown key (did you mean "default"?)'
    assert err[5] == f'error: {bad}/rocky9.toml: glibc: "2.3x" is not a version like 2.34'
    assert err[-2].startswith(f'error: {bad}/good-c.toml: os: tag "el9"')
    assert err[-1] == "hint: fix or remove the manifests named (21 problems in all)"


def test_missing_catalogue_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "list", "--catalogue", str(tmp_path / "nope")]) == 2
    _, err = out_err(capsys)
    assert err[0] == f"error: catalogue directory {tmp_path / 'nope'} does not exist"
    assert err[1].startswith("hint: create it")


def test_show(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "show", "rocky9-2026.11", "--catalogue", str(cat)]) == 0
    out = capsys.readouterr().out
    assert "slurm         os=rocky9,libc=2.17,libc=2.28,libc=2.34,cuda12" in out
    assert "size          44 (44 B)" in out
    assert run(["image", "show", "rocky9-2026.11", "--catalogue", str(cat), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["glibc"] == "2.34"
    assert data["resolved_url"] == (cat / "files" / "rocky9-2026.11.qcow2").as_uri()


def test_show_unknown_is_not_found(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "show", "rocky9-2026.1", "--catalogue", str(cat)]) == 4
    _, err = out_err(capsys)
    assert err[0].startswith(
        f"error: image 'rocky9-2026.1' is not in the catalogue {cat} (closest: rocky9-2026.11"
    )


# --- match -----------------------------------------------------------------------------------------


def test_match_human_and_json(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "match", "--catalogue", str(cat), "--constraint", "os:rocky9&ib"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rocky9-2026.11"
    assert out[2] == "  features: os=rocky9,libc=2.17,libc=2.28,libc=2.34,cuda12"
    argv = ["image", "match", "--catalogue", str(cat), "--constraint", "libc:2.37", "--json"]
    assert run(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["image"] == "debian13-2026.11"
    assert data["features"][0] == "os=debian13"
    assert data["requirement"] == {"os": None, "libc": "2.37", "image": None, "features": []}
    assert run([*argv[:-1], "--arch", "aarch64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image"] == "ubuntu2404-arm-2026.09"


def test_match_mode_follows_settings(
    cat: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["image", "match", "--catalogue", str(cat), "--constraint", "os:rocky9&(ib|opa)"]
    assert run(argv) == 2  # slurm_mode defaults to helpers
    assert "Slurm's helpers plugin refuses ( ) |" in capsys.readouterr().err
    assert run([*argv, "--mode", "prolog"]) == 0
    assert capsys.readouterr().out.startswith("rocky9-2026.11\n")
    monkeypatch.setenv("CMT_SLURM_MODE", "prolog")
    assert run(argv) == 0
    assert run([*argv[:-1], "os:rocky9", "--arch", "riscv64"]) == 2
    assert "'riscv64' is not one of 'x86_64', 'aarch64'" in capsys.readouterr().err


def test_match_no_match_exits_3(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "match", "--catalogue", str(cat), "--constraint", "os:rocky10"]) == 3
    _, err = out_err(capsys)
    assert err == [
        "error: no x86_64 image satisfies os=rocky10: no image has os tag 'rocky10' (did you mean rocky9?)",
        "hint: known os tags for x86_64: centos7, debian12, debian13, rocky8, rocky9",
    ]


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ("a&&b", "error: constraint 'a&&b': column 3: empty term between '&' and '&'"),
        ("(os:rocky9", "error: constraint '(os:rocky9': column 1: '(' is never closed"),
        (
            "os:rocky9|os:debian12",
            "error: constraint 'os:rocky9|os:debian12': os:rocky9 is under \"|\", "
            "but every node of a job must get the same image",
        ),
        ("libc:2.3x", "error: constraint 'libc:2.3x': libc: \"2.3x\" is not a version like 2.34"),
    ],
)
def test_match_bad_constraint_exits_2(
    cat: Path, capsys: pytest.CaptureFixture[str], constraint: str, message: str
) -> None:
    assert run(["image", "match", "--catalogue", str(cat), "--constraint", constraint]) == 2
    _, err = out_err(capsys)
    assert err[0] == message
    assert err[1].startswith("hint: ")
    assert len(err) == 2


# --- verify ----------------------------------------------------------------------------------------


def test_verify_ok(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["image", "verify", "rocky9-2026.11", "--catalogue", str(cat)]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256((cat / "files" / "rocky9-2026.11.qcow2").read_bytes()).hexdigest()
    assert out == f"ok: rocky9-2026.11: 44 bytes, sha256 {digest}\n"


def test_verify_mismatch(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = cat / "files" / "rocky9-2026.11.qcow2"
    f.write_bytes(f.read_bytes().upper())  # same size, other bytes
    assert run(["image", "verify", "rocky9-2026.11", "--catalogue", str(cat)]) == 2
    _, err = out_err(capsys)
    assert err[-2].startswith("error: image rocky9-2026.11: sha256 of files/rocky9-2026.11.qcow2 is ")
    assert err[-1].startswith("hint: the file is corrupt or another one")
    f.write_bytes(b"short")
    assert run(["image", "verify", "rocky9-2026.11", "--catalogue", str(cat)]) == 2
    _, err = out_err(capsys)
    assert (
        err[-2] == "error: image rocky9-2026.11: files/rocky9-2026.11.qcow2 has 5 bytes, the manifest says 44"
    )
    f.write_bytes(b"x" * (2 << 20))
    assert run(["image", "verify", "rocky9-2026.11", "--catalogue", str(cat)]) == 2
    _, err = out_err(capsys)
    assert err[-2].endswith("has more than 44 bytes (the manifest's size)")
    f.unlink()
    assert run(["image", "verify", "rocky9-2026.11", "--catalogue", str(cat)]) == 4
    _, err = out_err(capsys)
    assert err[-2] == f"error: image rocky9-2026.11: file {f} does not exist"


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _http_manifest(cat: Path, base: str, root: Path, name: str, data: bytes, declared: bytes) -> None:
    (root / f"{name}.qcow2").write_bytes(data)
    text = (FIXTURE / "rocky8-2026.10.toml").read_text()
    text = text.replace('name = "rocky8-2026.10"', f'name = "{name}"')
    text = text.replace('url = "files/rocky8-2026.10.qcow2"', f'url = "{base}/{name}.qcow2"')
    lines = [
        line
        if not line.startswith(("sha256", "size"))
        else (
            f'sha256 = "{hashlib.sha256(declared).hexdigest()}"'
            if line.startswith("sha256")
            else f"size = {len(declared)}"
        )
        for line in text.splitlines()
    ]
    (cat / f"{name}.toml").write_text("\n".join(lines) + "\n")


def test_verify_streams_http(
    cat: Path, http_root: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, root = http_root
    payload = b"remote image bytes\n" * 1000
    _http_manifest(cat, base, root, "remote-good", payload, payload)
    _http_manifest(cat, base, root, "remote-bad", payload, payload + b"!")
    assert run(["image", "verify", "remote-good", "--catalogue", str(cat), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "image": "remote-good",
        "ok": True,
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "url": f"{base}/remote-good.qcow2",
    }
    assert run(["image", "verify", "remote-bad", "--catalogue", str(cat)]) == 2
    _, err = out_err(capsys)
    assert (
        err[-2]
        == f"error: image remote-bad: {base}/remote-bad.qcow2 has {len(payload)} bytes, the manifest says {len(payload) + 1}"
    )
    (root / "remote-good.qcow2").unlink()
    assert run(["image", "verify", "remote-good", "--catalogue", str(cat)]) == 1
    _, err = out_err(capsys)
    assert err[-2] == f"error: image remote-good: GET {base}/remote-good.qcow2: HTTP 404 File not found"
