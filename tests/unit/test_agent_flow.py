"""The whole agent with fakes at every edge: order of commands, reports, and the failure fallbacks."""

import base64
import hashlib
import io
import json
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.agent import main
from cmt_slurm.agent.cmdline import parse_cmdline
from cmt_slurm.agent.main import Agent, AgentDeps
from cmt_slurm.agent.network import Interface
from cmt_slurm.agent.transfer import RetryPolicy
from cmt_slurm.errors import BackendError, Conflict
from cmt_slurm.runner import FakeResponse, FakeRunner

IMAGE = b"QFI\xfb" + bytes(range(256)) * 4000
SHA = hashlib.sha256(IMAGE).hexdigest()
MAC = "52:54:00:00:00:11"
INFO = json.dumps({"format": "qcow2", "virtual-size": 2 << 30, "format-specific": {"data": {}}})
SFDISK = json.dumps(
    {"partitiontable": {"label": "gpt", "partitions": [{"node": "/dev/vda1", "start": 2048, "size": 9}]}}
)
# parse_lldp-able frame: chassis MAC, port "Gi1/0/17" (local), TTL 120, system name, end.
LLDP_FRAME = bytes.fromhex(
    "0180c200000e" "525400aabbcc" "88cc"
    "0207" "04525400aabbcc"
    "0409" "074769312f302f3137"
    "0602" "0078"
    "0a06" "737769746368"
    "0000"
)  # fmt: skip


def plan(**over: Any) -> dict[str, Any]:
    body = {
        "deployment": 7, "token": "dep-token", "node": "node17", "image": "debian12",
        "url": "http://10.77.0.1:8080/images/debian12", "sha256": SHA, "size": len(IMAGE),
        "format": "qcow2", "disk": "/dev/vda", "kernel_args": "console=ttyS0",
        "features": ["os=debian12", "libc=2.36"], "node_token": "node-token",
    }  # fmt: skip
    body.update(over)
    return body


class FakeClient:
    """Stands for cmt_slurm.apiclient.ApiClient; ``fail`` scripts errors per method, consumed in order."""

    def __init__(self, plan_body: dict[str, Any] | None = None, register: list[dict[str, Any]] | None = None):
        self.plan_body = plan_body or plan()
        self.register_answers = register or []
        self.reports: list[tuple[str, int | None, str | None]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.registered: list[dict[str, Any]] = []

    def _maybe_fail(self, what: str) -> None:
        if self.fail.get(what):
            raise self.fail[what].pop(0)

    def report(
        self, dep: int, token: str, stage: str, progress: int | None, message: str | None
    ) -> dict[str, Any]:
        assert token == "dep-token" and dep == 7
        self._maybe_fail("report")
        self.reports.append((stage, progress, message))
        return {}

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        self._maybe_fail("plan")
        assert (method, path) == ("GET", "/api/v1/deployments/7")
        return {"plan": self.plan_body}

    def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("register")
        self.registered.append(payload)
        return self.register_answers.pop(0)

    def stages(self) -> list[str]:
        out: list[str] = []
        for stage, progress, _ in self.reports:
            if progress is None:
                out.append(stage)
        return out


def image_opener(body: bytes = IMAGE) -> Any:
    class Resp:
        status = 200

        def __init__(self) -> None:
            self._b = io.BytesIO(body)

        def read(self, n: int = -1) -> bytes:
            return self._b.read(n)

        def getheader(self, name: str, default: str | None = None) -> str | None:
            return default

        def close(self) -> None:
            pass

    return lambda request, timeout: Resp()


def new_root(tmp_path: Path) -> Path:
    root = tmp_path / "newroot"
    (root / "boot/loader/entries").mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-27-amd64").write_bytes(b"k")
    (root / "boot/initrd.img-6.1.0-27-amd64").write_bytes(b"i")
    (root / "boot/loader/entries/debian12.conf").write_text(
        "title Debian 12\nversion 6.1.0-27-amd64\nlinux /boot/vmlinuz-6.1.0-27-amd64\n"
        "initrd /boot/initrd.img-6.1.0-27-amd64\noptions root=UUID=u rw console=tty0 quiet\n"
    )
    (root / "etc").mkdir()
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nmunge:x:101:102::/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nmunge:x:102:\n")
    return root


def runner() -> FakeRunner:
    return (
        FakeRunner()
        .on("qemu-img", "info", stdout=INFO)
        .on("blockdev", "--getsize64", stdout=str(4 << 30))
        .on("sfdisk", "--json", stdout=SFDISK)
        .on("blkid", "-o", "value", "-s", "TYPE", stdout="ext4\n")
        .on("blkid", "-o", "value", "-s", "UUID", stdout="u\n")
        .on("qemu-img", "convert", output_lines=("(25.00/100%)", "(100.00/100%)"))
    )


def make(
    tmp_path: Path, line: str, client: FakeClient, run: FakeRunner, opener: Any = None, **deps: Any
) -> Agent:
    (tmp_path / "net.env").write_text("")
    agent = Agent(
        parse_cmdline(line),
        AgentDeps(
            runner=run,
            opener=opener or image_opener(),
            sleep=lambda s: None,
            console=lambda m: None,
            workdir=tmp_path / "run",
            mountpoint=new_root(tmp_path),
            interfaces=lambda: [Interface("eth0", MAC)],
            disks=lambda: [{"name": "/dev/vda", "size": 4 << 30}],
            dmi=lambda: {"uuid": "u-1"},
            capture_lldp=lambda iface, timeout: LLDP_FRAME,
            room=lambda d: (1 << 30, 1 << 30),
            http_policy=RetryPolicy(attempts=3, base=1, cap=2),
            max_failure_reports=2,
            execute=True,
            **deps,
        ),
    )
    agent.api.client = client  # type: ignore[assignment]
    return agent


REIMAGE = f"cmt.server=http://10.77.0.1:8080 cmt.deployment=7 cmt.token=dep-token cmt.mac={MAC}"


@pytest.fixture(autouse=True)
def _lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "network_up", lambda runner, iface: type("L", (), {"ip": "10.77.0.50"})())


def test_reimage_happy_path_order(tmp_path: Path) -> None:
    client, run = FakeClient(), runner()
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "kexec" and outcome.error is None
    assert client.stages() == ["live", "transfer", "verify", "write", "grow", "identity", "kexec"]
    assert "live done in" in (client.reports[1][2] or "")  # each report carries the last stage's duration
    names = run.names()
    # fixed order: inspect, size check, wipe, write, re-read, GPT fix, grow, fsck, resize, mount, kexec
    order = ["qemu-img", "blockdev", "wipefs", "qemu-img", "sync", "blockdev", "sfdisk", "sgdisk", "blockdev",
             "growpart", "blkid", "e2fsck", "resize2fs", "mount", "blkid", "kexec", "umount", "sync", "kexec",
             # a fake `kexec -e` returns, so the firmware fallback follows (a real one never returns)
             "sync", "reboot"]  # fmt: skip
    assert names == order
    assert run.index("wipefs") < run.index("qemu-img", "convert") < run.index("blockdev", "--rereadpt")
    assert run.index("blockdev", "--rereadpt") < run.index("growpart") < run.index("resize2fs")
    assert run.argvs[run.index("kexec", "-l")] == [
        "kexec", "-l", f"{tmp_path}/newroot/boot/vmlinuz-6.1.0-27-amd64",
        f"--initrd={tmp_path}/newroot/boot/initrd.img-6.1.0-27-amd64",
        "--append=root=UUID=u rw quiet console=ttyS0",
    ]  # fmt: skip
    assert run.index("kexec", "-l") < run.index("umount") < run.index("kexec", "-e")
    node = json.loads((tmp_path / "newroot/etc/cmt/node.json").read_text())
    assert node == {
        "node": "node17", "image": "debian12", "sha256": SHA, "deployment": 7,
        "features": ["os=debian12", "libc=2.36"], "server": "http://10.77.0.1:8080", "token": "node-token",
    }  # fmt: skip
    assert (tmp_path / "newroot/etc/hostname").read_text() == "node17\n"
    progress = [p for s, p, _ in client.reports if s == "transfer" and p is not None]
    assert progress and progress[-1] == len(IMAGE)


def test_digest_mismatch_leaves_the_disk_untouched_and_reboots(tmp_path: Path) -> None:
    client, run = FakeClient(plan(sha256="0" * 64)), runner()
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot" and outcome.stage == "verify"
    assert "wipefs" not in run.names() and ["qemu-img", "convert"] not in [a[:2] for a in run.argvs]
    assert client.reports[-1][0] == "failed"
    assert (client.reports[-1][2] or "").startswith("verify: sha256 mismatch")
    assert run.argvs[-1] == ["reboot", "-f"]


def test_backing_file_refused_before_the_disk(tmp_path: Path) -> None:
    info = json.dumps({"format": "qcow2", "virtual-size": 1 << 30, "backing-filename": "base.qcow2"})
    client, run = FakeClient(), runner().on("qemu-img", "info", stdout=info)
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot" and "backing file" in (outcome.error or "")
    assert "wipefs" not in run.names()


def test_write_failure_stays_in_the_live_env(tmp_path: Path) -> None:
    client = FakeClient()
    run = runner().on("qemu-img", "convert", returncode=1, stderr="qemu-img: error while writing sector")
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "stay" and outcome.stage == "write"
    assert client.reports[-1][0] == "failed" and "error while writing" in (client.reports[-1][2] or "")
    assert "reboot" not in run.names() and "growpart" not in run.names()


def test_server_500_then_ok_is_retried(tmp_path: Path) -> None:
    client, run = FakeClient(), runner()
    err = BackendError("boom", details={"http_status": 500})
    client.fail["report"] = [err]
    client.fail["plan"] = [BackendError("cannot reach the boot server")]
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "kexec"


def test_server_down_fails_cleanly_after_bounded_retries(tmp_path: Path) -> None:
    client, run = FakeClient(), runner()
    down = [BackendError("cannot reach the boot server") for _ in range(20)]
    client.fail["plan"] = list(down)
    client.fail["report"] = list(down)
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot" and "gave up after 3 attempts" in (outcome.error or "")
    # the disk is intact: straight back into the old OS with kexec (the fake returns, so firmware follows)
    assert run.names() == [
        "sfdisk",
        "blkid",
        "blkid",
        "mount",
        "kexec",
        "umount",
        "sync",
        "kexec",
        "sync",
        "reboot",
    ]
    assert run.argvs[3][:3] == ["mount", "-o", "ro"]


def test_4xx_report_is_not_retried(tmp_path: Path) -> None:
    client, run = FakeClient(), runner()
    client.fail["report"] = [Conflict("stage live -> live not allowed", details={"http_status": 409})]
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot" and outcome.stage == "live"
    assert "not allowed" in (outcome.error or "")


def test_kexec_load_failure_reports_boot_and_reboots(tmp_path: Path) -> None:
    client = FakeClient()
    run = runner().on("kexec", "-l", returncode=1, stderr="kexec_load failed: Operation not permitted")
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot" and outcome.error is None
    assert client.stages()[-1] == "boot"
    assert "kexec load failed" in (client.reports[-1][2] or "")
    assert run.argvs[-1] == ["reboot", "-f"]


def test_streams_when_the_image_does_not_fit_in_ram(tmp_path: Path) -> None:
    client, run = FakeClient(), runner()
    agent = make(tmp_path, REIMAGE, client, run)
    agent.deps.room = lambda d: (64 << 20, 64 << 20)
    outcome = agent.run()
    assert outcome.action == "kexec"
    convert = run.argvs[run.index("qemu-img", "convert")]
    assert convert[-2:] == ["http://10.77.0.1:8080/images/debian12", "/dev/vda"]
    assert run.argvs[0] == ["qemu-img", "info", "--output=json", "http://10.77.0.1:8080/images/debian12"]


def test_streamed_digest_mismatch_stays(tmp_path: Path) -> None:
    client, run = FakeClient(plan(sha256="0" * 64)), runner()
    agent = make(tmp_path, REIMAGE, client, run)
    agent.deps.room = lambda d: (64 << 20, 64 << 20)
    outcome = agent.run()
    assert outcome.action == "stay" and outcome.stage == "verify"


def test_discover_registers_with_lldp_then_installs(tmp_path: Path) -> None:
    client = FakeClient(
        register=[{"node": {"name": "node17"}, "plan": None}, {"node": "node17", "plan": plan()}]
    )
    run = runner()
    outcome = make(tmp_path, f"cmt.server=http://10.77.0.1:8080 cmt.mac={MAC}", client, run).run()
    assert outcome.action == "kexec" and outcome.node == "node17"
    sent = client.registered[0]
    assert sent["boot_mac"] == MAC and sent["lldp"]["port_id"] == "Gi1/0/17"
    assert sent["lldp_frame"] == LLDP_FRAME.hex() and sent["disks"][0]["name"] == "/dev/vda"
    assert len(client.registered) == 2
    assert client.stages()[0] == "transfer"  # the server moved the deployment to identify itself


def test_plan_files_are_written_with_owner(tmp_path: Path) -> None:
    owners: list[tuple[int, int]] = []
    files = [{"path": "/etc/munge/munge.key", "content_base64": base64.b64encode(b"k" * 32).decode(),
              "mode": "0400", "owner": "munge"}]  # fmt: skip
    client, run = FakeClient(plan(files=files)), runner()
    agent = make(tmp_path, REIMAGE, client, run)
    agent.deps.chown = lambda path, uid, gid: owners.append((uid, gid))
    assert agent.run().action == "kexec"
    key = tmp_path / "newroot/etc/munge/munge.key"
    assert key.read_bytes() == b"k" * 32 and oct(key.stat().st_mode & 0o777) == "0o400"
    assert owners == [(101, 102)]


def test_http_error_on_image_is_fatal_not_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    def opener(request: urllib.request.Request, timeout: float) -> Any:
        calls.append(1)
        raise urllib.error.HTTPError(request.full_url, 404, "nope", Message(), io.BytesIO(b""))

    client, run = FakeClient(), runner()
    outcome = make(tmp_path, REIMAGE, client, run, opener=opener).run()
    assert outcome.action == "reboot" and outcome.stage == "transfer" and calls == [1]


def test_failed_report_not_delivered_is_retried_when_the_disk_was_written(tmp_path: Path) -> None:
    client = FakeClient()
    run = runner().on("growpart", returncode=2, stderr="bad")
    run.responses[("e2fsck",)] = FakeResponse()
    agent = make(tmp_path, REIMAGE, client, run)
    real_report = client.report
    state = {"n": 0}

    def flaky(dep: int, token: str, stage: str, progress: int | None, message: str | None) -> dict[str, Any]:
        if stage == "failed" and state["n"] < 4:
            state["n"] += 1
            raise BackendError("cannot reach the boot server")
        return real_report(dep, token, stage, progress, message)

    client.report = flaky  # type: ignore[method-assign]
    agent.deps.max_failure_reports = 5
    outcome = agent.run()
    assert outcome.action == "stay" and outcome.stage == "grow"
    assert client.reports[-1][0] == "failed"


def test_blank_disk_without_an_old_os_falls_back_to_the_firmware(tmp_path: Path) -> None:
    client = FakeClient(plan(sha256="0" * 64))
    run = runner().on(
        "sfdisk",
        "--json",
        returncode=1,
        stderr="sfdisk: /dev/vda: does not contain a recognized partition table",
    )
    outcome = make(tmp_path, REIMAGE, client, run).run()
    assert outcome.action == "reboot"
    assert ["kexec", "-e"] not in run.argvs
    assert run.names()[-3:] == ["sfdisk", "sync", "reboot"]
