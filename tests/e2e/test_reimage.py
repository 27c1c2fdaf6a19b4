"""A QEMU node's life in the lab, end to end and nothing simulated: iPXE ROM → boot server → live env →
LLDP naming → qcow2 written, verified, grown → kexec → the OS reports ready; then reimaged to another
image; then the failure paths (corrupt digest, backing file, server death mid-transfer).

The tests run in file order on one VM: each starts from the state the previous one left.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.lab import qemu
from cmt_slurm.lab.lab import Lab
from cmt_slurm.lab.services import SWITCH_NAME
from tests.e2e.conftest import LabImages, node_or_none, wait_until

pytestmark = [pytest.mark.qemu, pytest.mark.e2e]

NODE = "node1"  # lldpd announces port Gi1/0/1 on vm1's tap; the lab's naming rule is node{port_index}
OS_UP = r"CMT-OS-UP [^\r\n]*host=\S+"
AGENT_FAILED = r"cmt-agent: FAILED at [^\r\n]*"
BOOT_TIMEOUT = 600  # TCG on 2 shared cores: firmware + live env + write + OS boot, with a wide margin


def _reboot_through_firmware(lab: Lab) -> qemu.ConsoleLog:
    """What `cmt-node reboot`'s fallback does: a firmware reset, so the node asks the boot server again."""
    v = lab.vm(1)
    log = qemu.ConsoleLog(v.spec.console_log)
    qemu.qmp(v.spec.qmp_socket, "system_reset")
    return log


def _clear_failure(lab: Lab) -> None:
    """An operator clearing the previous test's failure (a no-op when the node is not failed)."""
    if _node(lab)["state"] == "failed":
        lab.api().drain_cleared(NODE)


def _from_now(lab: Lab) -> qemu.ConsoleLog:
    """The console from here on (a wait on it ignores the agent's FAILED line printed before)."""
    return qemu.ConsoleLog(lab.vm(1).spec.console_log)


def _os_up(log: qemu.ConsoleLog, version: str, timeout: float = BOOT_TIMEOUT) -> dict[str, str]:
    """The booted OS's own account of itself (images/recipes/shared/cmt-os-up): id, version_id, glibc..."""
    line = log.wait_for(OS_UP, timeout, fail=AGENT_FAILED).group(0)
    facts = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
    assert facts["version_id"] == version, f"booted {line!r}, wanted version_id={version}"
    return facts


def _node(lab: Lab) -> dict[str, Any]:
    node = node_or_none(lab.api(), NODE)
    assert node is not None
    return node


def _ready_with(lab: Lab, image: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        node = node_or_none(lab.api(), NODE)
        return node if node and node["state"] == "ready" and node["current_image"] == image else None

    return wait_until(check, 180, f"{NODE} ready with {image} (cmt-node ready)", interval=2)


def _failed(lab: Lab) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        node = node_or_none(lab.api(), NODE)
        return node if node and node["state"] == "failed" else None

    return wait_until(check, BOOT_TIMEOUT, f"{NODE} failed", interval=2)


def test_blank_node_is_discovered_named_from_lldp_and_installed(lab: Lab, lab_images: LabImages) -> None:
    v = lab.vm(1)
    log = qemu.ConsoleLog(v.spec.console_log, 0)
    lab.start_vm(v, blank_disk=True)
    node = wait_until(lambda: node_or_none(lab.api(), NODE), BOOT_TIMEOUT, f"{NODE} to register", interval=2)
    assert node["state"] == "discovered"
    assert (node["lldp_switch"], node["lldp_port"], node["port_index"]) == (SWITCH_NAME, "Gi1/0/1", 1)
    assert node["macs"] == [v.mac]
    assert "registered as node1" in log.text()

    dep = lab.api().set_target(NODE, lab_images.a.name)["deployment"]
    facts = _os_up(log, lab_images.a.os_version)
    assert (facts["id"], facts["glibc"], facts["host"]) == ("debian", lab_images.a.glibc, NODE)
    node = _ready_with(lab, lab_images.a.name)
    assert node["boot_time"] is not None
    text = log.text()
    for stage in ("transfer", "verify", "write", "grow", "identity", "kexec"):
        assert f"cmt-agent: stage {stage}:" in text
    done = lab.api().deployment(dep["id"])
    assert done["stage"] == "done", done


def test_retargeted_node_is_reimaged_and_boots_b(lab: Lab, lab_images: LabImages) -> None:
    lab.api().set_target(NODE, lab_images.b.name)
    log = _reboot_through_firmware(lab)
    facts = _os_up(log, lab_images.b.os_version)
    # Debian 13's own glibc proves the new root is running, not the old one
    assert (facts["id"], facts["glibc"]) == ("debian", lab_images.b.glibc)
    _ready_with(lab, lab_images.b.name)
    assert "cmt-agent: stage live:" in log.text()  # reimage mode: the server knew the MAC


def _publish_variant(lab: Lab, base: Any, name: str, path: Path, sha256: str | None = None) -> str:
    """A catalogue entry ``name`` for ``path`` built from ``base``'s manifest (optionally lying about sha256)."""
    manifest = (lab.catalogue_dir / f"{base.name}.toml").read_text()
    data = path.read_bytes()
    replace = {
        "name": name,
        "url": path.name,
        "sha256": sha256 or hashlib.sha256(data).hexdigest(),
        "size": str(len(data)),
        "default": "false",
    }
    lines = []
    for line in manifest.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in replace and not line.startswith("#"):
            value = replace.pop(key)
            lines.append(f"{key} = {value}" if key in ("size", "default") else f'{key} = "{value}"')
        else:
            lines.append(line)
    lines += [f"{k} = {v}" if k in ("size", "default") else f'{k} = "{v}"' for k, v in replace.items()]
    (lab.catalogue_dir / f"{name}.toml").write_text("\n".join(lines) + "\n")
    lab.api().sync_images()
    return name


def test_wrong_sha256_leaves_the_old_os_and_fails_the_node(lab: Lab, lab_images: LabImages) -> None:
    name = _publish_variant(lab, lab_images.a, "corrupt-digest", lab.catalogue_dir / f"{lab_images.a.name}.qcow2",
                            sha256="0" * 64)  # fmt: skip
    lab.api().set_target(NODE, name)
    log = _reboot_through_firmware(lab)
    node = _failed(lab)
    assert "sha256 mismatch" in (node["reason"] or ""), node
    log.wait_for(r"cmt-agent: the disk was not touched", 120)
    # The firmware reboot that follows boots the untouched disk: still image B.
    _os_up(_from_now(lab), lab_images.b.os_version)
    assert "cmt-agent: stage write:" not in log.text()


def test_qcow2_with_a_backing_file_is_refused(lab: Lab, lab_images: LabImages, tmp_path: Path) -> None:
    overlay = lab.catalogue_dir / "with-backing.qcow2"
    base = lab.catalogue_dir / f"{lab_images.a.name}.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)], check=True
    )
    name = _publish_variant(lab, lab_images.a, "with-backing", overlay)
    _clear_failure(lab)
    lab.api().set_target(NODE, name)
    log = _reboot_through_firmware(lab)
    node = _failed(lab)
    assert "backing file" in (node["reason"] or ""), node
    log.wait_for(r"cmt-agent: the disk was not touched", 120)
    _os_up(_from_now(lab), lab_images.b.os_version)
    assert "cmt-agent: stage write:" not in log.text()


def test_server_dying_mid_transfer_is_survived(lab: Lab, lab_images: LabImages) -> None:
    _clear_failure(lab)
    dep = lab.api().set_target(NODE, lab_images.a.name)["deployment"]
    log = _reboot_through_firmware(lab)
    log.wait_for(r"cmt-agent: stage transfer:", BOOT_TIMEOUT, fail=AGENT_FAILED)

    def bytes_flowing() -> bool:
        d = lab.api().deployment(int(dep["id"]))
        return d["stage"] != "transfer" or bool(d["progress_bytes"])

    wait_until(bytes_flowing, 120, "the first progress report", interval=0.2)
    lab.stop_service("server", kill=True)  # mid-transfer: the download's connection dies with it
    time.sleep(4)
    lab.restart_server()
    _os_up(log, lab_images.a.os_version)
    text = log.text()
    assert "retrying in" in text, "the agent never had to retry: the server died too late"
    requests = re.search(r"stage verify: \d+ bytes received in (\d+) request", text)
    assert requests and int(requests.group(1)) >= 2, "the download was not resumed"
    _ready_with(lab, lab_images.a.name)


def test_server_down_for_good_fails_cleanly_with_the_old_os(lab: Lab, lab_images: LabImages) -> None:
    """Past the retry budget the agent gives up: failure reported (once the server is back), old disk
    untouched, the node boots its previous OS."""
    lab.api().set_target(NODE, lab_images.b.name)
    log = _reboot_through_firmware(lab)
    log.wait_for(r"cmt-agent: stage transfer:", BOOT_TIMEOUT, fail=AGENT_FAILED)
    lab.stop_service("server", kill=True)
    failed = log.wait_for(AGENT_FAILED, 300).group(0)
    assert "gave up after" in failed, failed
    lab.restart_server()  # the agent is still retrying its failure report
    node = _failed(lab)
    assert node["reason"] and "gave up after" in node["reason"], node
    log.wait_for(r"cmt-agent: the disk was not touched", 120)
    _os_up(_from_now(lab), lab_images.a.os_version)  # the previous OS, intact
    assert "cmt-agent: stage write:" not in log.text()
