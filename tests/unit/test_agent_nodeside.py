"""Identity files, network picking, cmt-node ready, and the kexec fast path for cmt-node reboot."""

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.agent import hooks_ready, kexec
from cmt_slurm.agent.identity import install_node_tools, write_identity
from cmt_slurm.agent.network import Interface, parse_net_env, pick_interface
from cmt_slurm.agent.report import parse_plan
from cmt_slurm.agent.transfer import RetryPolicy
from cmt_slurm.errors import BackendError, BadInput, NotFound
from cmt_slurm.runner import CommandFailed, FakeResponse, FakeRunner

PLAN = {
    "deployment": 3, "token": "t", "node": "n1", "image": "debian13", "url": "http://s/i",
    "sha256": "a" * 64, "node_token": "nt", "features": ["os=debian13"],
}  # fmt: skip


def test_identity_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian13\n")
    (tmp_path / "etc/machine-id").write_text("")
    (tmp_path / "var/lib/dbus").mkdir(parents=True)
    (tmp_path / "var/lib/dbus/machine-id").write_text("image-id\n")
    written = write_identity(tmp_path, parse_plan(PLAN), "http://s", new_machine_id=lambda: "f" * 32)
    assert "/etc/cmt/node.json" in written
    assert (tmp_path / "etc/hostname").read_text() == "n1\n"
    assert (tmp_path / "etc/machine-id").read_text() == "f" * 32 + "\n"
    assert (tmp_path / "etc/hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tn1\n"
    assert not (tmp_path / "var/lib/dbus/machine-id").exists()
    assert (tmp_path / "etc/cmt/node.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "etc/cmt/node.json").read_text())["token"] == "nt"


def test_identity_refuses_symlinks_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "etc/cmt").symlink_to(tmp_path / "outside")
    with pytest.raises(BadInput, match="symlink"):
        write_identity(root, parse_plan(PLAN), "http://s")


def test_plan_validation() -> None:
    with pytest.raises(BadInput, match="lacks 'url'"):
        parse_plan({**PLAN, "url": ""})
    with pytest.raises(BadInput, match="must be absolute"):
        parse_plan({**PLAN, "files": [{"path": "etc/x", "content_base64": ""}]})
    with pytest.raises(BadInput, match="files\\[0\\] is malformed"):
        parse_plan({**PLAN, "files": [{"path": "/etc/x", "content_base64": "!!"}]})


def test_pick_interface() -> None:
    ifaces = [Interface("wlan0", "52:54:00:00:00:09", wired=False), Interface("eth0", "52:54:00:00:00:01")]
    assert pick_interface(ifaces, None, None).name == "eth0"
    assert pick_interface(ifaces, None, "52:54:00:00:00:09").name == "wlan0"
    assert pick_interface(ifaces, "eth0", "x").name == "eth0"
    with pytest.raises(BadInput, match="no interface has the boot MAC") as err:
        pick_interface(ifaces, None, "52:54:00:00:00:02")
    assert err.value.hint == "interfaces present: wlan0 (52:54:00:00:00:09), eth0 (52:54:00:00:00:01)"


def test_net_env_from_the_udhcpc_hook() -> None:
    env = parse_net_env('CMT_IFACE=eth0\nCMT_IP=10.77.0.50\nCMT_DNS="1.1.1.1 8.8.8.8"\n')
    assert env == {"CMT_IFACE": "eth0", "CMT_IP": "10.77.0.50", "CMT_DNS": "1.1.1.1 8.8.8.8"}


class ReadyClient:
    def __init__(self, *fail: Exception):
        self.fail = list(fail)
        self.calls: list[tuple[str, str, int, str]] = []

    def ready(self, name: str, image: str, boot_time: int, token: str) -> dict[str, Any]:
        if self.fail:
            raise self.fail.pop(0)
        self.calls.append((name, image, boot_time, token))
        return {"node": name}


def _node_json(tmp_path: Path) -> Path:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({"node": "n1", "image": "debian12", "server": "http://s", "token": "nt",
                                "deployment": 4, "sha256": "x", "features": []}))  # fmt: skip
    return path


def test_ready_retries_connection_errors(tmp_path: Path) -> None:
    ident = hooks_ready.read_node_json(_node_json(tmp_path))
    client = ReadyClient(BackendError("cannot reach the boot server"))
    hooks_ready.report_ready(ident, 1700000000, client=client, sleep=lambda s: None)  # type: ignore[arg-type]
    assert client.calls == [("n1", "debian12", 1700000000, "nt")]


def test_ready_needs_the_identity_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not installed by the cmt-slurm reimager"):
        hooks_ready.read_node_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"node": "n1"}')
    with pytest.raises(BadInput, match="missing image, server, token"):
        hooks_ready.read_node_json(tmp_path / "bad.json")


def test_boot_time_and_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stat").write_text("cpu  1 2 3\nbtime 1764625000\nprocesses 9\n")
    assert hooks_ready.boot_time(tmp_path / "stat") == 1764625000
    assert hooks_ready.run_ready(argparse.Namespace(print_unit=True, node_json=None)) == 0
    assert "ExecStart=/usr/local/bin/cmt-node ready" in capsys.readouterr().out


class Live:
    status = 200

    def __init__(self, body: bytes):
        self._b = io.BytesIO(body)

    def read(self, n: int = -1) -> bytes:
        return self._b.read(n)

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default

    def close(self) -> None:
        pass


def test_kexec_live_fast_path(tmp_path: Path) -> None:
    urls: list[str] = []

    def opener(request: Any, timeout: float) -> Live:
        urls.append(request.full_url)
        return Live(b"kernel" if request.full_url.endswith("vmlinuz") else b"initrd")

    line = kexec.live_cmdline("http://10.77.0.1:8080", 9, "tok", disk="/dev/vda", extra=["console=ttyS0"])
    assert line == (
        "cmt.server=http://10.77.0.1:8080 cmt.mode=reimage cmt.deployment=9 cmt.token=tok cmt.disk=/dev/vda "
        "console=ttyS0"
    )
    run = FakeRunner()
    result = kexec.kexec_live(
        "http://10.77.0.1:8080/", line, run, workdir=tmp_path, opener=opener, systemd=True
    )
    assert urls == ["http://10.77.0.1:8080/boot/live/vmlinuz", "http://10.77.0.1:8080/boot/live/initrd.img"]
    assert (tmp_path / "vmlinuz").read_bytes() == b"kernel"
    assert run.argvs == [
        ["kexec", "-l", str(tmp_path / "vmlinuz"), f"--initrd={tmp_path / 'initrd.img'}", f"--append={line}"],
        ["sync"],
        ["systemctl", "kexec"],
    ]
    assert result.cmdline == line


def test_kexec_live_load_failure_raises_for_the_fallback(tmp_path: Path) -> None:
    run = FakeRunner().on("kexec", "-l", returncode=1, stderr="Cannot load vmlinuz")
    with pytest.raises(CommandFailed, match="Cannot load"):
        kexec.kexec_live(
            "http://s", "cmt.server=http://s", run, workdir=tmp_path, opener=lambda r, t: Live(b"x"),
            policy=RetryPolicy(1), execute_now=True, systemd=False,
        )  # fmt: skip
    assert run.names() == ["kexec"]
    with pytest.raises(ValueError, match="would need quoting"):
        kexec.live_cmdline("http://s", 1, "a b")


def test_fake_runner_sequences_and_prefixes() -> None:
    run = FakeRunner().on("qemu-img", stdout="generic").on("qemu-img", "info", stdout="info")
    assert run.run(["qemu-img", "info", "x"]).stdout == "info"
    assert run.run(["qemu-img", "convert"]).stdout == "generic"
    run.on_sequence(["curl"], FakeResponse(returncode=7), FakeResponse(stdout="ok"))
    assert run.run(["curl"], check=False).returncode == 7
    assert run.run(["curl"]).stdout == "ok" and run.run(["curl"]).stdout == "ok"


def test_node_tools_are_installed_with_the_ready_unit(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for rel in ("__init__.py", "apiclient.py", "agent/cli.py", "server/app.py", "agent/__pycache__/x.pyc"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("# x\n")
    root = tmp_path / "root"
    assert install_node_tools(root, pkg, hooks_ready.SYSTEMD_UNIT) == []  # no python3 in the image
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("")
    install_node_tools(root, pkg, hooks_ready.SYSTEMD_UNIT)
    lib = root / "usr/lib/cmt/python/cmt_slurm"
    assert sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*.py")) == [
        "__init__.py", "agent/cli.py", "apiclient.py",
    ]  # fmt: skip
    assert "python3 -m cmt_slurm.agent.cli" in (root / "usr/local/bin/cmt-node").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/cmt-node-ready.service"
    assert str(wants.readlink()) == "/etc/systemd/system/cmt-node-ready.service"
