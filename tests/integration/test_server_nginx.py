"""server/nginx.conf works: nginx in front of `cmt server` in x-accel mode sends the image bytes itself
(Range included, so qemu-img reads through it), and proxies the API and the event stream."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_fixtures import REPO, ServerProcess, free_port, need_binary
from test_server_images import NAME, build_qcow2, write_manifest


def nginx_conf(template: str, prefix: Path, listen: int, upstream: str, catalogue: Path) -> str:
    """The shipped file with this test's ports and paths, inside a minimal main context."""
    site = (
        template.replace("listen 80;", f"listen 127.0.0.1:{listen};")
        .replace("server 127.0.0.1:8080;", f"server {upstream};")
        .replace("alias /etc/cmt/catalogue/;", f"alias {catalogue}/;")
    )
    temp = "\n".join(
        f"    {k}_temp_path {prefix}/tmp;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {prefix}/access.log;\n{temp}\n{site}\n}}\n"
    )


@pytest.fixture
def nginx_front(
    server_factory: Callable[..., ServerProcess], catalogue_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, ServerProcess]]:
    need_binary("nginx", "qemu-img")
    image = build_qcow2(catalogue_dir / "files")
    write_manifest(catalogue_dir, NAME, image, os_tag="testos", glibc="2.36", fmt="qcow2")
    srv = server_factory(catalogue_dir, toml='image_serving = "x-accel"\n')
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    upstream = srv.url.removeprefix("http://")
    conf.write_text(
        nginx_conf((REPO / "server" / "nginx.conf").read_text(), prefix, port, upstream, catalogue_dir)
    )
    check = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(prefix)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off; user root;"])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/api/v1/openapi.json", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url, srv
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=20)


def test_nginx_sends_the_bytes_and_qemu_img_reads_through_it(
    nginx_front: tuple[str, ServerProcess], tmp_path: Path
) -> None:
    url, srv = nginx_front
    data = (srv.settings.catalogue_dir / "files" / f"{NAME}.qcow2").read_bytes()
    req = urllib.request.Request(f"{url}/images/{NAME}", headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 206 and resp.read() == data[100:200]
        assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    # The server only answered headers; the body came from nginx.
    _, headers, body = srv.http(f"/images/{NAME}")
    assert body == b"" and headers["x-accel-redirect"] == f"/protected-images/files/{NAME}.qcow2"
    # The internal location is not reachable directly.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/protected-images/files/{NAME}.qcow2", timeout=10)
    err.value.close()
    assert err.value.code == 404
    out = tmp_path / "out.raw"
    subprocess.run(
        ["qemu-img", "convert", "-m", "1", "-O", "raw", f"{url}/images/{NAME}", str(out)],
        check=True,
        timeout=300,
    )
    local = tmp_path / "local.raw"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-O",
            "raw",
            str(srv.settings.catalogue_dir / "files" / f"{NAME}.qcow2"),
            str(local),
        ],
        check=True,
    )
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()


def test_nginx_proxies_the_api_and_the_event_stream(nginx_front: tuple[str, ServerProcess]) -> None:
    url, _ = nginx_front
    with urllib.request.urlopen(f"{url}/api/v1/nodes", timeout=10) as resp:
        assert json.load(resp) == {"nodes": []}
    req = urllib.request.Request(f"{url}/api/v1/events/stream?timeout=2&since=0")
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    assert re.search(r"^id: \d+$", text, re.M) and "event: event" in text
