"""The lab's pure parts: QEMU command lines, daemon configs, state round trips, VM lookup."""

import json
import tomllib
from pathlib import Path

import pytest

from cmt_slurm.errors import NotFound
from cmt_slurm.lab import qemu, services
from cmt_slurm.lab.lab import Lab, LabState, lab_id
from cmt_slurm.lab.netns import LabNetwork
from cmt_slurm.lab.procs import ProcRecord

NET = LabNetwork("cmt-lab-abc123")


def test_network_addresses_live_in_the_namespace() -> None:
    assert (NET.host_ip, NET.prefix, NET.dhcp_range()) == ("10.77.0.1", 24, ("10.77.0.100", "10.77.0.199"))
    assert NET.exec_argv(["ip", "link"]) == ["ip", "netns", "exec", "cmt-lab-abc123", "ip", "link"]


def test_vm_argv_boots_the_nic_rom_first_on_its_tap(tmp_path: Path) -> None:
    spec = qemu.VmSpec(
        name="vm3", index=3, mac=qemu.vm_mac(3), tap="tap3", disk=tmp_path / "d.qcow2",
        console_socket=tmp_path / "c.sock", console_log=tmp_path / "c.log", qmp_socket=tmp_path / "q.sock",
        pidfile=tmp_path / "pid", sercon_file=tmp_path / "sercon",
    )  # fmt: skip
    argv = qemu.vm_argv(spec)
    assert spec.mac == "52:54:00:77:00:03"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-boot") + 1].startswith("order=nc")
    assert "tap,id=n0,ifname=tap3,script=no,downscript=no" in argv
    assert f"virtio-net-pci,netdev=n0,mac={spec.mac},bootindex=1" in argv
    chardev = argv[argv.index("-chardev") + 1]
    assert f"path={spec.console_socket}" in chardev and f"logfile={spec.console_log}" in chardev
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == ["tap,id=n0,ifname=tap3,script=no,downscript=no"]  # the lab's bridge only
    with pytest.raises(ValueError):
        qemu.vm_mac(256)


def test_dnsmasq_conf_serves_ipxe_the_script_url_and_pins_macs(tmp_path: Path) -> None:
    text = services.dnsmasq_conf(
        NET, tmp_path / "leases", tmp_path / "pid", [("52:54:00:77:00:01", "10.77.0.11")]
    )
    assert "interface=br0" in text and "port=0" in text
    assert "dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,12h" in text
    assert 'dhcp-boot=tag:ipxe,"http://10.77.0.1:8080/boot/ipxe?mac=${net0/mac}' in text
    assert "dhcp-host=52:54:00:77:00:01,10.77.0.11" in text


def test_switch_ports_are_named_like_a_real_switch() -> None:
    cmds = services.lldpcli_commands([services.SwitchPort("tap17", services.port_id(17), "lab vm17")])
    assert ["configure", "system", "hostname", services.SWITCH_NAME] in cmds
    assert cmds[-2] == [
        "configure", "ports", "tap17", "lldp", "portidsubtype", "local", "Gi1/0/17", "description", "lab vm17",
    ]  # fmt: skip
    assert cmds[-1] == ["resume"]  # the switch speaks only once its identity is set
    argv = services.lldpd_argv(Path("/s"), Path("/p"), ["tap1", "tap2"])
    assert argv[-2:] == ["-I", "tap1,tap2"]
    assert argv[argv.index("-L") + 1] == "/bin/true"  # no start-up lldpcli racing the configuration


def test_server_toml_names_nodes_after_the_lab_switch_port(tmp_path: Path) -> None:
    cfg = tomllib.loads(services.server_toml(NET, tmp_path / "d", tmp_path / "c", tmp_path / "l"))
    assert cfg["bind"] == "10.77.0.1:8080" and cfg["public_url"] == "http://10.77.0.1:8080"
    assert cfg["naming"] == [{"switch": services.SWITCH_NAME, "template": "node{port_index}"}]
    assert cfg["unknown_mac"] == "discover"


def test_state_round_trip_and_vm_lookup(tmp_path: Path) -> None:
    state = LabState("abc123", "cmt-lab-abc123", 3, 4242, "tcg", "/live",
                     {"vm1": ProcRecord("vm1", 10, 99, ("qemu",), "/l")})  # fmt: skip
    again = LabState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    (tmp_path / "lab.json").write_text(json.dumps(state.to_json()))
    lab = Lab(tmp_path)
    assert lab.id == lab_id(tmp_path) and lab.net.netns == f"cmt-lab-{lab.id}"
    assert lab.state.nodes == 3
    assert [lab.find_vm(ref).name for ref in ("vm2", "2", "52:54:00:77:00:03", "node1", "node-02")] == [
        "vm2", "vm2", "vm3", "vm1", "vm2",
    ]  # fmt: skip
    with pytest.raises(NotFound, match="no VM 'node7'"):
        lab.find_vm("node7")
    assert lab.host_url == "http://127.0.0.1:4242"
