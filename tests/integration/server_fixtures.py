"""A real boot server process for integration tests: ``cmt server`` (gunicorn) on 127.0.0.1:<free port>.

Imported by ``tests/integration/conftest.py``. The server runs the real CLI entry point with its own
SQLite file or PostgreSQL schema (the ``db_url`` fixture), a catalogue directory the test controls and a
data directory with a fake live env. Tests set things up through a ``Provisioner`` on the same database
(tokens, nodes), then talk HTTP to the process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.apiclient import ApiClient
from cmt_slurm.catalogue import load_catalogue
from cmt_slurm.config import Settings, load_settings
from cmt_slurm.provisioner import Provisioner
from cmt_slurm.store import Store

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CATALOGUE = REPO / "tests" / "data" / "catalogue"
START_TIMEOUT_S = 60.0


def need_binary(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_manifest(
    directory: Path, name: str, file: Path, *, os_tag: str, glibc: str, fmt: str, **extra: Any
) -> Path:
    """A catalogue manifest for ``file`` (sha256 and size computed), next to it in ``directory``."""
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    lines = [
        f'name = "{name}"',
        f'os = "{os_tag}"',
        'os_name = "Test OS"',
        f'os_version = "{glibc}"',
        f'glibc = "{glibc}"',
        'arch = "x86_64"',
        f'format = "{fmt}"',
        f'url = "{os.path.relpath(file, directory)}"',
        f'sha256 = "{digest}"',
        f"size = {file.stat().st_size}",
    ]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in extra.items()]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class ServerProcess:
    url: str
    settings: Settings
    admin_token: str
    proc: subprocess.Popen[bytes]
    log: Path
    _provisioner: Provisioner | None = field(default=None, repr=False)

    def client(self, token: str | None = None, **kwargs: Any) -> ApiClient:
        return ApiClient(self.url, token=self.admin_token if token is None else token, timeout=30, **kwargs)

    def anonymous(self) -> ApiClient:
        return ApiClient(self.url, token="", timeout=30)

    @property
    def provisioner(self) -> Provisioner:
        """A provisioner on the server's database, for setting up state the API does not create."""
        if self._provisioner is None:
            catalogue = load_catalogue(self.settings.catalogue_dir)
            self._provisioner = Provisioner(
                Store.open(self.settings.effective_db_url), catalogue, self.settings
            )
        return self._provisioner

    def http(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """A raw request: status, headers (lower-case names), body; never raises on HTTP errors."""
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {}, data=data)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, body

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._provisioner is not None:
            self._provisioner.store.dispose()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(
    tmp: Path,
    db_url: str,
    catalogue_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    toml: str = "",
    public_url: str | None = None,
    access_log: bool = True,
) -> ServerProcess:
    """Start ``cmt server`` and wait until it answers; the caller stops it.

    ``public_url`` is what goes into boot scripts (default: the loopback URL the tests use), e.g. the
    address a QEMU guest reaches the server at through a guestfwd.
    """
    data = tmp / "data"
    live = data / "live"
    live.mkdir(parents=True, exist_ok=True)
    (live / "vmlinuz").write_bytes(b"fake kernel " * 1000)
    (live / "initrd.img").write_bytes(b"fake initrd " * 2000)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp / "cmt.toml"
    config.write_text(toml)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CMT_") or k.startswith("CMT_TEST_")}
    child_env.update({"CMT_CONFIG": str(config), **(env or {})})
    overrides = {
        "bind": f"127.0.0.1:{port}",
        "db_url": db_url,
        "catalogue_dir": catalogue_dir,
        "data_dir": data,
        "workers": workers,
        "threads": threads,
        "public_url": public_url or url,
    }
    settings = load_settings(
        config, env={k: v for k, v in child_env.items() if k != "CMT_CONFIG"}, overrides=overrides
    )
    # The admin token exists before the server starts (also migrates the database once).
    catalogue = load_catalogue(catalogue_dir)
    prov = Provisioner(Store.open(db_url), catalogue, settings)
    admin_token = prov.create_token(f"test-admin-{port}")
    argv = [
        sys.executable, "-m", "cmt_slurm", "server",
        "--bind", f"127.0.0.1:{port}", "--db", db_url, "--catalogue", str(catalogue_dir),
        "--data", str(data), "--workers", str(workers), "--threads", str(threads), "--public-url", public_url or url,
    ]  # fmt: skip
    if not access_log:
        argv.append("--no-access-log")
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=child_env, cwd=tmp)
    server = ServerProcess(url, settings, admin_token, proc, log, prov)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cmt server exited with {proc.returncode}:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(url + "/api/v1/openapi.json", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"cmt server did not answer within {START_TIMEOUT_S} s:\n{server.log_text()}")


@pytest.fixture
def catalogue_dir(tmp_path: Path) -> Path:
    """A copy of the fixture catalogue the test may change."""
    dest = tmp_path / "catalogue"
    shutil.copytree(FIXTURE_CATALOGUE, dest)
    return dest


@pytest.fixture
def server_factory(tmp_path: Path, db_url: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on the test's database; all are stopped (and their logs checked) at the end."""
    started: list[ServerProcess] = []

    def start(catalogue: Path, **kwargs: Any) -> ServerProcess:
        sub = tmp_path / f"srv{len(started)}"
        sub.mkdir()
        server = start_server(sub, db_url, catalogue, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        # A traceback in the log means a request reached the generic 500 boundary: a bug.
        assert "Traceback" not in server.log_text(), server.log_text()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess], catalogue_dir: Path) -> ServerProcess:
    """One running server with the fixture catalogue, on SQLite and (when available) PostgreSQL."""
    return server_factory(catalogue_dir)
