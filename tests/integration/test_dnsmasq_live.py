"""The rendered dnsmasq.conf in a real dnsmasq: its syntax check, then real DHCP and TFTP exchanges.

The exchange test creates two network namespaces (`cmt-t-<random>-srv`, `-cli`) joined by a veth,
runs dnsmasq on the server side with the rendered file, and asks it for a lease with busybox udhcpc
the way firmware PXE and iPXE do (client architecture in option 93, option 175, user class `iPXE`),
checking the boot file each one gets.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmt_slurm.dnsmasq import DnsmasqConfig, StaticHost, render_dnsmasq_conf

SERVER_IP = "10.77.0.1"
BOOT_URL = (
    f"http://{SERVER_IP}:8080/boot/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}&serial=${{serial:uristring}}"
    "&arch=${buildarch}"
)
FIXED_MAC, FIXED_IP = "02:00:00:00:77:0b", "10.77.0.11"


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")


def config(tmp: Path, interface: str = "eth0") -> DnsmasqConfig:
    tftp = tmp / "tftp"
    tftp.mkdir(exist_ok=True)
    (tftp / "undionly.kpxe").write_bytes(b"bios ipxe stand-in\n" * 100)
    (tftp / "ipxe.efi").write_bytes(b"efi ipxe stand-in\n")
    return DnsmasqConfig(
        interface=interface,
        dhcp_range=("10.77.0.100", "10.77.0.150"),
        netmask="255.255.255.0",
        lease_time="1h",
        server_url=f"http://{SERVER_IP}:8080",
        tftp_root=tftp,
        router=SERVER_IP,
        hosts=(StaticHost(FIXED_MAC, FIXED_IP, "node-11"),),
        lease_file=tmp / "leases",
        pid_file=tmp / "dnsmasq.pid",
        authoritative=True,
        log_dhcp=True,
    )


def test_dnsmasq_syntax_check_accepts_rendered_file(tmp_path: Path) -> None:
    need("dnsmasq")
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(render_dnsmasq_conf(config(tmp_path)))
    done = subprocess.run(["dnsmasq", "--test", "-C", str(conf)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "syntax check OK" in done.stderr


def test_dnsmasq_syntax_check_accepts_the_example(tmp_path: Path) -> None:
    need("dnsmasq")
    example = Path(__file__).resolve().parents[2] / "server" / "dnsmasq.conf.example"
    done = subprocess.run(
        ["dnsmasq", "--test", "-C", str(example)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@pytest.fixture
def dhcp_lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """dnsmasq serving the rendered config in one namespace; yields the client namespace."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    need("ip", "dnsmasq", "busybox")
    suffix = secrets.token_hex(3)
    srv, cli = f"cmt-t-{suffix}-srv", f"cmt-t-{suffix}-cli"
    created: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    log = (tmp_path / "dnsmasq.log").open("wb")
    # dnsmasq drops root: its lease/pid files live in a directory it may write
    work = Path(f"/tmp/cmt-t-dnsmasq-{suffix}")
    work.mkdir()
    work.chmod(0o777)
    try:
        for ns in (srv, cli):
            run("ip", "netns", "add", ns)
            created.append(ns)
        run("ip", "link", "add", f"cmt{suffix}s", "type", "veth", "peer", "name", f"cmt{suffix}c")
        run("ip", "link", "set", f"cmt{suffix}s", "netns", srv, "name", "eth0")
        run("ip", "link", "set", f"cmt{suffix}c", "netns", cli, "name", "eth0")
        run("ip", "-n", srv, "addr", "add", f"{SERVER_IP}/24", "dev", "eth0")
        for ns in (srv, cli):
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        conf = work / "dnsmasq.conf"
        conf.write_text(render_dnsmasq_conf(config(work)))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", srv, "dnsmasq", "-k", "-C", str(conf), "--log-facility=-"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(100):
            if proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited: {(tmp_path / 'dnsmasq.log').read_text()}")
            if (work / "dnsmasq.pid").exists():
                break
            time.sleep(0.1)
        yield cli, tmp_path
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf 'ip=%s\\nboot_file=%s\\nsiaddr=%s\\nrouter=%s\\n' "$ip" "$boot_file" "$siaddr" "$router" > "$OUT"
"""


def lease(cli: Path | str, tmp: Path, *options: str, mac: str | None = None) -> dict[str, str]:
    script = tmp / "udhcpc.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    out = tmp / f"lease-{secrets.token_hex(4)}"
    if mac:
        run("ip", "-n", str(cli), "link", "set", "eth0", "address", mac)
    cmd = ["env", f"OUT={out}", "ip", "netns", "exec", str(cli), "busybox", "udhcpc", "-i", "eth0"]
    cmd += ["-f", "-q", "-n", "-t", "5", "-T", "1", "-s", str(script)]
    for opt in options:
        cmd += ["-x", opt]
    run(*cmd)
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


@pytest.mark.netns
def test_dhcp_boot_files_by_client_kind(dhcp_lab: tuple[str, Path]) -> None:
    cli, tmp = dhcp_lab
    bios = lease(cli, tmp)
    assert bios["boot_file"] == "undionly.kpxe"
    assert bios["siaddr"] == SERVER_IP
    assert bios["router"] == SERVER_IP
    assert bios["ip"].startswith("10.77.0.1")
    assert lease(cli, tmp, "0x5d:0000")["boot_file"] == "undionly.kpxe"  # arch 0: BIOS
    assert lease(cli, tmp, "0x5d:0007")["boot_file"] == "ipxe.efi"  # arch 7: EFI BC (x86-64)
    assert lease(cli, tmp, "0x5d:0009")["boot_file"] == "ipxe.efi"  # arch 9: EFI x86-64
    # iPXE: option 175 (its feature list), and/or user class "iPXE" (sent without an RFC 3004 prefix)
    assert lease(cli, tmp, "0xaf:b10101", "0x5d:0007")["boot_file"] == BOOT_URL
    assert lease(cli, tmp, "0x4d:69505845")["boot_file"] == BOOT_URL


@pytest.mark.netns
def test_dhcp_static_host_and_tftp(dhcp_lab: tuple[str, Path]) -> None:
    cli, tmp = dhcp_lab
    fixed = lease(cli, tmp, mac=FIXED_MAC)
    assert fixed["ip"] == FIXED_IP
    # the TFTP half of the chain: firmware PXE fetches the file it was told to
    run("ip", "-n", cli, "addr", "add", f"{FIXED_IP}/24", "dev", "eth0")
    target = tmp / "got.kpxe"
    run(
        "ip",
        "netns",
        "exec",
        cli,
        "busybox",
        "tftp",
        "-g",
        "-r",
        "undionly.kpxe",
        "-l",
        str(target),
        SERVER_IP,
    )
    assert target.read_bytes() == b"bios ipxe stand-in\n" * 100
