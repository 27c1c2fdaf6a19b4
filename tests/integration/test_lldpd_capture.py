"""Real LLDP frames: Debian's lldpd plays the switch in one network namespace, LldpCapture listens in another.

Also the tool that made tests/data/lldp/*.bin:
``python tests/integration/test_lldpd_capture.py --save tests/data/lldp`` (root).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cmt_slurm.agent.lldp import LldpInfo, parse_lldp
from cmt_slurm.naming import node_name

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.netns

SWITCH_PORT = "swp12"  # the switch side of the veth: lldpd's ifname port ids then look like Cumulus'
NODE_PORT = "eth0"
SWITCH_MAC = "02:00:00:00:12:01"
NODE_MAC = "02:00:00:00:12:02"
SWITCH_IP = "192.0.2.1/24"  # TEST-NET-1, inside the namespace only: becomes the management address

# Runs inside the node's namespace; prints the second LLDP frame seen (the first may predate the
# configuration just applied) as hex.
CAPTURE = """
import sys
import tempfile
from cmt_slurm.agent.lldp_capture import LldpCapture
with LldpCapture([sys.argv[1]]) as cap:
    frames = [cap.receive(float(sys.argv[2])) for _ in range(2)]
got = [f for f in frames if f is not None]
if not got:
    sys.exit("no LLDP frame within the wait")
print(got[-1].frame.hex())
"""

#: name -> lldpcli `configure` arguments, applied in this order (a per-port local id overrides the
#: global ifname/macaddress choice, so it comes last)
SCENARIOS: dict[str, list[str]] = {
    "lldpd-ifname": ["lldp", "portidsubtype", "ifname"],
    "lldpd-macaddress": ["lldp", "portidsubtype", "macaddress"],
    "lldpd-local": [
        *("ports", SWITCH_PORT, "lldp", "portidsubtype", "local", "Ethernet1/7"),
        *("description", "node uplink 7"),
    ],
}


def run(*cmd: str, timeout: float = 30) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Pair:
    switch_ns: str
    node_ns: str


@contextmanager
def netns_pair() -> Iterator[Pair]:
    """Two fresh namespaces joined by a veth; always removed (which also removes the veth)."""
    suffix = secrets.token_hex(3)
    pair = Pair(f"cmt-t-{suffix}-sw", f"cmt-t-{suffix}-nd")
    created: list[str] = []
    try:
        for ns in (pair.switch_ns, pair.node_ns):
            run("ip", "netns", "add", ns)
            created.append(ns)
        tmp_a, tmp_b = f"cmt{suffix}a", f"cmt{suffix}b"
        run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        run("ip", "link", "set", tmp_a, "netns", pair.switch_ns)
        run("ip", "link", "set", tmp_b, "netns", pair.node_ns)
        for ns, tmp, name, mac in (
            (pair.switch_ns, tmp_a, SWITCH_PORT, SWITCH_MAC),
            (pair.node_ns, tmp_b, NODE_PORT, NODE_MAC),
        ):
            run("ip", "-n", ns, "link", "set", tmp, "name", name, "address", mac)
            run("ip", "-n", ns, "link", "set", name, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", pair.switch_ns, "addr", "add", SWITCH_IP, "dev", SWITCH_PORT)
        yield pair
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@contextmanager
def lldpd(ns: str) -> Iterator[Callable[..., str]]:
    """lldpd in ``ns`` with a private control socket; yields a function running lldpcli against it."""
    # lldpcli gives up root before it connects, so the socket's directory must be reachable by others
    # (pytest's tmp_path sits under a 0700 directory).
    workdir = Path(tempfile.mkdtemp(prefix="cmt-t-lldpd-"))
    workdir.chmod(0o755)
    sock = workdir / "lldpd.sock"
    log = (workdir / "lldpd.log").open("wb")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "lldpd", "-d", "-u", str(sock), "-I", SWITCH_PORT],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def lldpcli(*args: str) -> str:
        return run("ip", "netns", "exec", ns, "lldpcli", "-u", str(sock), *args)

    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise AssertionError(f"lldpd exited: {(workdir / 'lldpd.log').read_text()}")
            if sock.exists():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("lldpd made no control socket in 10 s")
        # Fixed identity, so the saved frames do not depend on the machine that made them.
        lldpcli("configure", "system", "hostname", "sw-r07")
        lldpcli("configure", "system", "description", "cmt-slurm test switch (lldpd)")
        lldpcli("configure", "lldp", "tx-interval", "1")
        yield lldpcli
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def in_netns(ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "env", f"PYTHONPATH={REPO}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def capture(ns: str, timeout: float = 10.0) -> bytes:
    done = in_netns(ns, sys.executable, "-c", CAPTURE, NODE_PORT, str(timeout), timeout=3 * timeout + 10)
    assert done.returncode == 0, done.stderr
    return bytes.fromhex(done.stdout.strip())


def run_scenarios(pair: Pair, lldpcli: Callable[..., str]) -> dict[str, bytes]:
    frames: dict[str, bytes] = {}
    for name, args in SCENARIOS.items():
        lldpcli("configure", *args)
        frames[name] = capture(pair.node_ns)
    return frames


def capture_scenarios() -> dict[str, bytes]:
    with netns_pair() as pair, lldpd(pair.switch_ns) as lldpcli:
        return run_scenarios(pair, lldpcli)


def check(name: str, info: LldpInfo) -> None:
    """What each scenario must decode to (shared with the unit tests on the saved frames)."""
    assert info.chassis_id == SWITCH_MAC
    assert info.chassis_id_subtype == "mac"
    assert info.system_name == "sw-r07"
    assert info.system_description == "cmt-slurm test switch (lldpd)"
    assert info.ttl > 0
    assert "192.0.2.1" in info.management_addresses
    if name == "lldpd-local":
        assert (info.port_id, info.port_id_subtype) == ("Ethernet1/7", "local")
        assert info.port_description == "node uplink 7"
        assert info.port_index == 7
        assert node_name(info, (), "node-{port_index}") == "node-7"
    elif name == "lldpd-ifname":
        assert (info.port_id, info.port_id_subtype) == (SWITCH_PORT, "interface-name")
        assert info.port_index == 12
    elif name == "lldpd-macaddress":
        # the digits of the MAC are never a port number: the index comes from the description (ifname)
        assert (info.port_id, info.port_id_subtype) == (SWITCH_MAC, "mac")
        assert info.port_description == SWITCH_PORT
        assert info.port_index == 12
    else:
        raise AssertionError(name)


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Pair, Callable[..., str]]]:
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    missing = [b for b in ("ip", "lldpd", "lldpcli") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")
    with netns_pair() as pair, lldpd(pair.switch_ns) as lldpcli:
        yield pair, lldpcli


@pytest.fixture(scope="module")
def frames(lab: tuple[Pair, Callable[..., str]]) -> dict[str, bytes]:
    return run_scenarios(*lab)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_lldpd_frame_decodes(frames: dict[str, bytes], name: str) -> None:
    frame = frames[name]
    assert frame[:6] == bytes.fromhex("0180c200000e")
    check(name, parse_lldp(frame))


def test_saved_frames_match_what_lldpd_sends_now(frames: dict[str, bytes]) -> None:
    # The saved files are what the unit tests read; they must still be what this lldpd produces
    # (TTL and the management TLVs can differ, the decoded fields may not).
    for name, frame in frames.items():
        saved = parse_lldp((REPO / "tests/data/lldp" / f"{name}.bin").read_bytes())
        assert {**saved.as_dict(), "ttl": 0} == {**parse_lldp(frame).as_dict(), "ttl": 0}


def test_cmt_lldp_capture_command(frames: dict[str, bytes], lab: tuple[Pair, Callable[..., str]]) -> None:
    # after the scenarios lldpd sends the `local` port id
    pair, _ = lab
    saved = Path(tempfile.mkdtemp(prefix="cmt-t-lldp-")) / "frame.bin"
    try:
        done = in_netns(
            pair.node_ns,
            sys.executable,
            "-m",
            "cmt_slurm.cli.main",
            *("lldp", "capture", NODE_PORT, "--timeout", "10", "--json", "--save", str(saved)),
        )
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert (data["interface"], data["port_id"], data["node_name"]) == (NODE_PORT, "Ethernet1/7", "node-7")
        assert parse_lldp(saved.read_bytes()).port_id == "Ethernet1/7"
    finally:
        shutil.rmtree(saved.parent, ignore_errors=True)


WAIT = """
import sys
from cmt_slurm.agent.lldp_capture import LldpCapture
from cmt_slurm.errors import CmtError
try:
    with LldpCapture(sys.argv[1].split(",")) as cap:
        got = cap.receive(float(sys.argv[2]))
except CmtError as exc:
    print(type(exc).__name__, exc.message)
else:
    print("frame" if got else "none")
"""


def test_own_outgoing_frames_are_skipped_and_the_wait_is_bounded(
    lab: tuple[Pair, Callable[..., str]],
) -> None:
    # on the switch side lldpd transmits every second; those frames are outgoing there, and nothing
    # comes in: the wait must end with "no frame"
    pair, _ = lab
    done = in_netns(pair.switch_ns, sys.executable, "-c", WAIT, SWITCH_PORT, "3")
    assert done.stdout.strip() == "none", done.stderr


def test_unknown_interface_is_bad_input(lab: tuple[Pair, Callable[..., str]]) -> None:
    pair, _ = lab
    done = in_netns(pair.node_ns, sys.executable, "-c", WAIT, f"{NODE_PORT},nope0", "1")
    assert done.stdout.strip() == "BadInput LLDP capture: no network interface 'nope0'", done.stderr


ALL = """
import sys
from cmt_slurm.agent.lldp_capture import LldpCapture
with LldpCapture(["eth0", "lo"]) as cap:
    print(sorted(cap.receive_all(3.0)))
"""


def test_receive_all_returns_what_came_within_the_wait(lab: tuple[Pair, Callable[..., str]]) -> None:
    pair, _ = lab
    done = in_netns(pair.node_ns, sys.executable, "-c", ALL)
    assert done.stdout.strip() == "['eth0']", done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description="Capture lldpd frames into a directory (root).")
    parser.add_argument("--save", type=Path, required=True)
    args = parser.parse_args()
    for name, frame in capture_scenarios().items():
        check(name, parse_lldp(frame))
        (args.save / f"{name}.bin").write_bytes(frame)
        print(f"{name}.bin: {len(frame)} bytes")


if __name__ == "__main__":
    main()
