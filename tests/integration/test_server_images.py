"""Image bytes over HTTP from the real server: Range, ETag, HEAD, 416, sendfile, and qemu-img reading it."""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from server_fixtures import ServerProcess, need_binary, write_manifest

NAME = "testos-1.0"


def build_qcow2(directory: Path) -> Path:
    """A small qcow2 with data at a few offsets and holes between (so clusters are sparse)."""
    need_binary("qemu-img")
    raw = directory / "src.raw"
    rnd = random.Random(7)
    with raw.open("wb") as f:
        f.truncate(16 << 20)
        for offset in (0, 3 << 20, (11 << 20) + 4096):
            f.seek(offset)
            f.write(rnd.randbytes(300_000))
    out = directory / f"{NAME}.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    raw.unlink()
    return out


@pytest.fixture
def image_server(server_factory: Callable[..., ServerProcess], catalogue_dir: Path) -> ServerProcess:
    files = catalogue_dir / "files"
    image = build_qcow2(files)
    write_manifest(catalogue_dir, NAME, image, os_tag="testos", glibc="2.36", fmt="qcow2")
    return server_factory(catalogue_dir)


def image_path(srv: ServerProcess) -> Path:
    return srv.settings.catalogue_dir / "files" / f"{NAME}.qcow2"


def test_full_get_and_head(image_server: ServerProcess) -> None:
    data = image_path(image_server).read_bytes()
    status, headers, body = image_server.http(f"/images/{NAME}")
    assert status == 200
    assert body == data
    assert headers["content-length"] == str(len(data))
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == f'"sha256-{hashlib.sha256(data).hexdigest()}"'
    status, head, body = image_server.http(f"/images/{NAME}", method="HEAD")
    assert status == 200 and body == b""
    assert head["content-length"] == str(len(data)) and head["etag"] == headers["etag"]


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [("bytes=0-99", 0, 100), ("bytes=65536-", 65536, None), ("bytes=-10", -10, None), ("bytes=5-5", 5, 6)],
)
def test_single_ranges(image_server: ServerProcess, spec: str, start: int, stop: int | None) -> None:
    data = image_path(image_server).read_bytes()
    want = data[start:stop]
    status, headers, body = image_server.http(f"/images/{NAME}", headers={"Range": spec})
    assert status == 206
    assert body == want
    assert headers["content-length"] == str(len(want))
    first = start % len(data)
    assert headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{len(data)}"


def test_unsatisfiable_multi_and_conditional_ranges(image_server: ServerProcess) -> None:
    data = image_path(image_server).read_bytes()
    size = len(data)
    status, headers, body = image_server.http(f"/images/{NAME}", headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}" and body == b""
    status, _, body = image_server.http(f"/images/{NAME}", headers={"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == data  # multi-range: the whole file
    status, _, body = image_server.http(f"/images/{NAME}", headers={"Range": "bytes=9-2"})
    assert status == 200 and body == data  # invalid range: header ignored
    etag = image_server.http(f"/images/{NAME}", method="HEAD")[1]["etag"]
    status, _, body = image_server.http(f"/images/{NAME}", headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    status, _, body = image_server.http(f"/images/{NAME}", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert status == 206 and body == data[:10]
    status, _, body = image_server.http(
        f"/images/{NAME}", headers={"Range": "bytes=0-9", "If-Range": '"other"'}
    )
    assert status == 200 and body == data


def test_live_env_files_with_range(image_server: ServerProcess) -> None:
    kernel = (image_server.settings.effective_live_dir / "vmlinuz").read_bytes()
    status, _, body = image_server.http("/boot/live/vmlinuz", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == kernel[10:20]
    status, _, body = image_server.http("/boot/live/initrd.img")
    assert status == 200 and body == (image_server.settings.effective_live_dir / "initrd.img").read_bytes()
    status, _, body = image_server.http("/boot/live/cmt.db")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_qemu_img_reads_the_qcow2_over_http(image_server: ServerProcess, tmp_path: Path) -> None:
    need_binary("qemu-img")
    url = f"{image_server.url}/images/{NAME}"
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", url], check=True, capture_output=True, text=True, timeout=120
    )
    meta = json.loads(info.stdout)
    if "Unknown protocol" in info.stderr:
        pytest.skip("qemu-img has no curl driver (install qemu-block-extra)")
    assert meta["format"] == "qcow2" and meta["virtual-size"] == 16 << 20
    remote, local = tmp_path / "remote.raw", tmp_path / "local.raw"
    subprocess.run(["qemu-img", "convert", "-m", "1", "-O", "raw", url, str(remote)], check=True, timeout=300)
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", str(image_path(image_server)), str(local)], check=True
    )
    assert hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()
    _, _, metrics = image_server.http("/metrics")
    served = re.search(rb'cmt_bytes_served_total\{kind="image"\} ([0-9.e+]+)', metrics)
    assert served is not None and float(served.group(1)) > 0


def _workers(master: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return children


def test_ranges_are_sent_with_sendfile(image_server: ServerProcess, tmp_path: Path) -> None:
    """strace the workers: a ranged GET is one sendfile(count=range length), and the file is not read()."""
    need_binary("strace")
    master = image_server.proc.pid
    # `cmt server` is python -m cmt_slurm; gunicorn's master is that process, the workers its children.
    workers = _workers(master)
    assert workers, "no gunicorn workers found"
    out = tmp_path / "strace.txt"
    argv = ["strace", "-f", "-qq", "-e", "trace=openat,close,sendfile,read,pread64", "-o", str(out)]
    for pid in workers:
        argv += ["-p", str(pid)]
    tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    start, length = 70_000, 200_000
    wanted = re.compile(rf"sendfile\(\d+, \d+, \[{start}\] => \[\d+\], {length}\)")
    opened = re.compile(rf'openat\(.*{re.escape(NAME)}\.qcow2", ')
    try:
        # Ask until the trace shows it: strace needs a moment to attach, and either worker may answer.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, _, body = image_server.http(
                f"/images/{NAME}", headers={"Range": f"bytes={start}-{start + length - 1}"}
            )
            assert status == 206 and len(body) == length
            time.sleep(0.5)
            text = out.read_text() if out.exists() else ""
            if wanted.search(text) and opened.search(text):
                break
    finally:
        tracer.terminate()
        try:
            tracer.wait(timeout=30)  # detaching from every worker thread takes a while under load
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(timeout=10)
    trace = out.read_text()
    sendfiles = re.findall(r"sendfile\(\d+, \d+, \[(\d+)\] => \[(\d+)\], (\d+)\)", trace)
    assert sendfiles, trace[-3000:]
    assert any(int(off) == start and int(count) == length for off, _, count in sendfiles), sendfiles
    # No read() of the image file itself (fds are reused: follow each open until its close).
    live: set[str] = set()
    opens, image_reads = 0, []
    for line in trace.splitlines():
        if (m := re.search(rf'openat\(.*{re.escape(NAME)}\.qcow2", .*\) = (\d+)$', line)) is not None:
            live.add(m.group(1))
            opens += 1
        elif (m := re.search(r"close\((\d+)\)", line)) is not None:
            live.discard(m.group(1))
        elif (m := re.search(r"(?:pread64|read)\((\d+), ", line)) is not None and m.group(1) in live:
            image_reads.append(line)
    assert opens, "the trace shows no open of the image"
    assert not image_reads, image_reads[:5]


REMOTE = "http://127.0.0.1:9/mirror/remote-1.0.qcow2"


def add_remote_manifest(catalogue: Path) -> None:
    (catalogue / "remote-1.0.toml").write_text(
        'name = "remote-1.0"\nos = "remoteos"\nos_name = "Remote"\nos_version = "1"\nglibc = "2.31"\n'
        f'arch = "x86_64"\nformat = "qcow2"\nurl = "{REMOTE}"\nsha256 = "{"ab" * 32}"\nsize = 1000\n'
    )


@pytest.mark.parametrize("mode", ["x-accel", "external"])
def test_x_accel_and_external_modes(
    server_factory: Callable[..., ServerProcess], catalogue_dir: Path, mode: str
) -> None:
    add_remote_manifest(catalogue_dir)
    srv = server_factory(catalogue_dir, toml=f'image_serving = "{mode}"\n')
    status, headers, body = srv.http("/images/debian12-2026.11")
    assert status == 200
    if mode == "x-accel":
        assert body == b""
        assert headers["x-accel-redirect"] == "/protected-images/files/debian12-2026.11.qcow2"
    else:
        assert body == (catalogue_dir / "files" / "debian12-2026.11.qcow2").read_bytes()
    req = urllib.request.Request(srv.url + "/images/remote-1.0")
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    err.value.close()
    assert err.value.code == 302 and err.value.headers["Location"] == REMOTE
    # What a node is told in its plan: the manifest URL itself in external mode, ours otherwise.
    admin = srv.client()
    srv.anonymous().register({"macs": ["52:54:00:00:03:01"], "lldp": _lldp(31)})
    admin.set_target("node-31", "remote-1.0")
    script = srv.http("/boot/ipxe?mac=52:54:00:00:03:01")[2].decode()
    want = REMOTE if mode == "external" else f"{srv.url}/images/remote-1.0"
    assert f"cmt.image_url={want} " in script


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _lldp(port: int) -> dict[str, object]:
    return {
        "chassis_id": "52:54:00:ff:00:01", "chassis_id_subtype": "mac", "port_id": f"Ethernet1/{port}",
        "port_id_subtype": "interface-name", "system_name": "sw-r07", "ttl": 120,
    }  # fmt: skip
