"""``cmt server`` and ``cmt server dnsmasq-config`` as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_fixtures import FIXTURE_CATALOGUE


def cmt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMT_") or k.startswith("CMT_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "cmt_slurm", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_dnsmasq_config_is_accepted_by_dnsmasq(tmp_path: Path) -> None:
    config = tmp_path / "cmt.toml"
    config.write_text('public_url = "http://10.0.0.1:8080"\n')
    out = tmp_path / "dnsmasq.conf"
    res = cmt(
        "--config", str(config), "server", "dnsmasq-config", "--interface", "eth1",
        "--dhcp-range", "10.0.0.100,10.0.0.200,12h", "--host", "52:54:00:00:00:01,10.0.0.50,node-1",
        "-o", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert 'dhcp-boot=tag:ipxe,"http://10.0.0.1:8080/boot/ipxe?mac=${net0/mac}&' in text
    assert "dhcp-host=52:54:00:00:00:01,10.0.0.50,node-1" in text
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq not installed: syntax not checked")
    check = subprocess.run(
        ["dnsmasq", "--test", "-C", str(out)], check=False, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "not-a-url"], "db_url: 'not-a-url' is not a database URL"),
        (
            ["--catalogue", "/nonexistent/catalogue"],
            "catalogue directory /nonexistent/catalogue does not exist",
        ),
        (["--bind", "localhost"], "bind: 'localhost' is not HOST:PORT"),
    ],
)
def test_bad_server_settings_fail_fast_with_a_hint(tmp_path: Path, args: list[str], message: str) -> None:
    cat = tmp_path / "catalogue"
    shutil.copytree(FIXTURE_CATALOGUE, cat)
    base = ["--data", str(tmp_path / "data"), "--catalogue", str(cat), "--bind", "127.0.0.1:9"]
    res = cmt("server", *base, *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert f"error: {message}" in res.stderr
    assert "hint: " in res.stderr and "Traceback" not in res.stderr


def test_bad_dnsmasq_range_is_refused(tmp_path: Path) -> None:
    res = cmt("server", "dnsmasq-config", "--interface", "eth1", "--dhcp-range", "10.0.0.300,x", cwd=tmp_path)
    assert res.returncode == 2 and "error: " in res.stderr and "Traceback" not in res.stderr
