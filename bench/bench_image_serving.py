"""Image serving: `cmt server` (gunicorn + sendfile) against nginx serving the same file, same run.

Two workloads, each against both servers:
  * 8 concurrent full downloads of the image file (curl, output discarded): aggregate MB/s;
  * qemu-img reading the qcow2 over HTTP (`qemu-img convert -m 1 -O raw URL out.raw`, as the live
    reimager does): MB/s of the qcow2 file.
nginx (Debian's nginx-light) is started by this script on 127.0.0.1 with sendfile on, its root the
catalogue's files directory; it is stopped at the end. Ratios are cmt/nginx (1.0 = as fast as nginx).

Run: .venv/bin/python bench/bench_image_serving.py [--size-mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO))

from server_fixtures import FIXTURE_CATALOGUE, free_port, start_server, write_manifest  # noqa: E402

from cmt_slurm.config import Settings  # noqa: E402

NAME = "bench-1.0"
NGINX_CONF = """
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location /images/ {{ alias {files}/; }}
    }}
}}
"""


def build_image(files: Path, size_mib: int) -> Path:
    """A qcow2 of ``size_mib`` MiB of incompressible data (qemu-img must move every cluster)."""
    raw = files / "bench.raw"
    rnd = random.Random(1)
    with raw.open("wb") as f:
        for _ in range(size_mib):
            f.write(rnd.randbytes(1 << 20))
    out = files / f"{NAME}.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    raw.unlink()
    return out


def start_nginx(prefix: Path, files: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, files=files))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off; user root;"])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + f"/images/{NAME}.qcow2", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text()}")


def downloads(url: str, parallel: int, size: int) -> float:
    """Aggregate MB/s of ``parallel`` concurrent full downloads."""

    def one(_: int) -> None:
        res = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
            check=True,
            capture_output=True,
            text=True,
        )
        assert int(res.stdout) == size, res.stdout

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(parallel)))
    return parallel * size / (time.perf_counter() - t0) / 1e6


def qemu_read(url: str, out: Path, size: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-m", "1", "-f", "qcow2", "-O", "raw", url, str(out)], check=True)
    elapsed = time.perf_counter() - t0
    out.unlink()
    return size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    for tool in ("nginx", "curl", "qemu-img"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_image_serving: {tool} is missing (run scripts/install-deps)")
    tmp = Path(tempfile.mkdtemp(prefix="cmt-bench-images-"))
    nginx = None
    srv = None
    try:
        cat = tmp / "catalogue"
        shutil.copytree(FIXTURE_CATALOGUE, cat)
        image = build_image(cat / "files", args.size_mib)
        size = image.stat().st_size
        write_manifest(cat, NAME, image, os_tag="benchos", glibc="2.36", fmt="qcow2")
        d = Settings()
        srv = start_server(
            tmp / "cmt",
            f"sqlite:///{tmp / 'cmt.db'}",
            cat,
            workers=d.workers,
            threads=d.threads,
            access_log=False,
        )
        nginx, nginx_url = start_nginx(tmp / "nginx", cat / "files")
        targets = {"cmt server": f"{srv.url}/images/{NAME}", "nginx": f"{nginx_url}/images/{NAME}.qcow2"}
        print(
            f"image serving: {size / 1e6:.0f} MB qcow2, {os.cpu_count()} CPUs, {args.rounds} rounds (median)"
        )
        print(
            f"  cmt server: {d.workers} gunicorn workers x {d.threads} threads, sendfile;"
            " nginx: 2 workers, sendfile"
        )
        results: dict[str, dict[str, float]] = {}
        for name, url in targets.items():
            dl = [downloads(url, args.parallel, size) for _ in range(args.rounds)]
            qi = [qemu_read(url, tmp / "out.raw", size) for _ in range(args.rounds)]
            results[name] = {"dl": statistics.median(dl), "qi": statistics.median(qi)}
        print(f"  {'':<12} {args.parallel} concurrent downloads    qemu-img convert -m 1 over HTTP")
        for name, r in results.items():
            print(f"  {name:<12} {r['dl']:10.0f} MB/s              {r['qi']:10.0f} MB/s")
        c, n = results["cmt server"], results["nginx"]
        print(f"  {'cmt/nginx':<12} {c['dl'] / n['dl']:10.2f}                   {c['qi'] / n['qi']:10.2f}")
    finally:
        if srv is not None:
            srv.stop()
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
