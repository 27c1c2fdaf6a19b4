"""Node-side hooks without a server or Slurm: the request file, the helper, the reboot resolver."""

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.agent import hooks_helper, hooks_reboot, nodefile
from cmt_slurm.agent.cli import main as cli_main
from cmt_slurm.agent.power import KexecDriver, ReimageTarget, driver_from_env
from cmt_slurm.agent.power_lab import NamespaceLabDriver
from cmt_slurm.errors import BackendError, ConfigError, NoMatch
from cmt_slurm.runner import FakeRunner

NODE = {"node": "n1", "image": "debian12-2026.11", "features": ["os=debian12", "libc=2.17", "libc=2.36"],
        "server": "http://127.0.0.1:9", "token": "node-token"}  # fmt: skip


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    nj, req = tmp_path / "etc" / "node.json", tmp_path / "var" / "request.json"
    nj.parent.mkdir()
    nj.write_text(json.dumps(NODE))
    monkeypatch.setenv("CMT_NODE_FILE", str(nj))
    monkeypatch.setenv("CMT_REQUEST_FILE", str(req))
    monkeypatch.delenv("CMT_SERVER_URL", raising=False)
    return nj, req


def test_features_come_from_node_json_plus_the_image_feature(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert hooks_helper.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "os=debian12",
        "libc=2.17",
        "libc=2.36",
        "image=debian12_2026.11",
    ]
    assert hooks_helper.run_helper(argparse.Namespace(feature=None)) == 0
    assert capsys.readouterr().out.startswith("os=debian12\n")


def test_no_node_json_prints_nothing(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files[0].unlink()
    assert hooks_helper.main([]) == 0
    assert capsys.readouterr().out == ""
    files[0].write_text("{not json")
    assert hooks_helper.active_features(nodefile.read_node()) == []


def test_helper_usage() -> None:
    assert hooks_helper.main(["a", "b"]) == 2
    assert hooks_helper.main(["--help"]) == 2


@dataclass
class FakeApi:
    answers: list[Any] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def images(self) -> list[dict[str, Any]]:
        return [{"name": "rocky8-2026.10"}, {"name": "debian13-2026.11"}]

    def _next(self) -> Any:
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, Exception):
            raise a
        return a

    def request_features(self, name: str, features: list[str], token: str) -> dict[str, Any]:
        self.calls.append(("request", name, tuple(features), token))
        return dict(self._next())

    def node(self, name: str) -> dict[str, Any]:
        self.calls.append(("node", name))
        return dict(self._next())


def test_helper_calls_merge_and_keep_the_first_token(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeApi([{"deployment": {"id": 5, "token": "dep-token"}}])
    monkeypatch.setattr(hooks_helper, "server_client", lambda node, timeout: api)
    assert hooks_helper.record_and_send("os=rocky8") == 0
    api.answers = [{"deployment": {"id": 5}}]  # a retarget: no token this time
    assert hooks_helper.record_and_send("image=rocky8_2026.10") == 0
    assert api.calls == [
        ("request", "n1", ("os=rocky8",), "node-token"),
        (
            "request",
            "n1",
            ("os=rocky8", "image=rocky8-2026.10"),
            "node-token",
        ),  # mapped to the catalogue name
    ]
    req = nodefile.take_request()
    assert req is not None
    assert (req.features, req.sent, req.deployment, req.token) == (
        ["os=rocky8", "image=rocky8_2026.10"],
        True,
        5,
        "dep-token",
    )
    assert nodefile.take_request() is None  # consumed once


def test_slow_or_absent_server_is_recorded_not_fatal(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    api = FakeApi([BackendError("cannot reach the boot server at http://127.0.0.1:9: timed out")])
    monkeypatch.setattr(hooks_helper, "server_client", lambda node, timeout: api)
    assert hooks_helper.record_and_send("os=rocky8") == 0
    assert "timed out (the reboot step retries)" in capsys.readouterr().err
    with nodefile.locked_request() as req:
        assert (req.features, req.sent, req.error) == (["os=rocky8"], False, api.answers[0].message)


def test_stale_request_is_started_afresh(files: tuple[Path, Path]) -> None:
    with nodefile.locked_request(now=1000.0) as req:
        req.features.append("os=old")
    with nodefile.locked_request(now=1000.0 + nodefile.STALE_AFTER + 1) as req:
        assert req.features == []
        req.features.append("os=new")
    assert nodefile.take_request(now=1000.0 + nodefile.STALE_AFTER + 2) is not None
    with nodefile.locked_request(now=1.0) as req:
        req.features.append("os=x")
    assert nodefile.take_request(now=1.0 + nodefile.STALE_AFTER + 1) is None


def resolver(api: FakeApi) -> hooks_reboot.Resolver:
    return hooks_reboot.Resolver(api, "n1", "node-token", attempts=3, pause=0, sleep=lambda s: None)  # type: ignore[arg-type]


def test_resolver_uses_the_token_the_helper_kept() -> None:
    req = nodefile.Request(["os=rocky8"], sent=True, deployment=5, token="dep-token")
    api = FakeApi([{}])
    assert resolver(api).resolve(req, "http://s", "debian12-2026.11") == ReimageTarget(
        "http://s", "n1", 5, "dep-token", "debian12-2026.11"
    )
    assert api.calls == []


def test_resolver_retries_connection_errors_then_gives_up() -> None:
    api = FakeApi([BackendError("cannot reach"), {"deployment": {"id": 6, "token": "t6"}}])
    target = resolver(api).resolve(nodefile.Request(["os=rocky8"]), "http://s", None)
    assert target is not None and (target.deployment, target.token) == (6, "t6")
    with pytest.raises(BackendError):
        resolver(FakeApi([BackendError("cannot reach")])).resolve(
            nodefile.Request(["os=rocky8"]), "http://s", None
        )


def test_resolver_does_not_retry_a_refusal() -> None:
    api = FakeApi([NoMatch("no image named 'x'")])
    with pytest.raises(NoMatch):
        resolver(api).resolve(nodefile.Request(["image=x"]), "http://s", None)
    assert len(api.calls) == 1


def test_resolver_without_request_looks_for_a_waiting_deployment() -> None:
    api = FakeApi([{"deployments": [{"id": 9, "stage": "queued"}, {"id": 3, "stage": "done"}]}])
    target = resolver(api).resolve(None, "http://s", None)
    assert target is not None and (target.deployment, target.token) == (9, None)  # firmware boot gets a token
    assert (
        resolver(FakeApi([{"deployments": [{"id": 3, "stage": "done"}]}])).resolve(None, "http://s", None)
        is None
    )
    already = FakeApi([{"deployment": None}])
    assert resolver(already).resolve(nodefile.Request(["os=debian12"]), "http://s", None) is None


@dataclass
class RecordingDriver:
    done: list[Any] = field(default_factory=list)

    def reimage(self, target: ReimageTarget) -> None:
        self.done.append(target)

    def reboot(self) -> None:
        self.done.append("reboot")


def test_reboot_without_identity_is_a_plain_reboot(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files[0].unlink()
    driver = RecordingDriver()
    assert hooks_reboot.reboot_now(driver) == 0
    assert driver.done == ["reboot"]
    assert "plain reboot" in capsys.readouterr().out


def test_reboot_with_an_unusable_server_still_reboots(files: tuple[Path, Path]) -> None:
    files[0].write_text(json.dumps({**NODE, "server": "ftp://nowhere"}))
    with nodefile.locked_request() as req:
        req.features.append("os=rocky8")
    driver = RecordingDriver()
    assert hooks_reboot.reboot_now(driver, attempts=2, pause=0) == 0
    assert driver.done == ["reboot"]
    assert nodefile.take_request() is None  # consumed: the next reboot does not replay it


def test_driver_selection() -> None:
    assert isinstance(driver_from_env({}), KexecDriver)
    assert driver_from_env({"CMT_DISK": "/dev/vda", "CMT_LIVE_CONSOLE": "console=ttyS0"}) == KexecDriver(
        "/dev/vda", ("console=ttyS0",)
    )
    lab = driver_from_env({"CMT_POWER_DRIVER": "lab-namespace", "CMT_LAB_SLURMD_ARGV": '["slurmd", "-N", "n1"]',
                           "CMT_LAB_SLURMD_PIDFILE": "/run/x.pid", "CMT_LAB_MAC": "52:54:00:00:00:01"})  # fmt: skip
    assert isinstance(lab, NamespaceLabDriver) and lab.slurmd_argv == ["slurmd", "-N", "n1"]
    with pytest.raises(ConfigError, match="CMT_LAB_SLURMD_ARGV"):
        driver_from_env({"CMT_POWER_DRIVER": "lab-namespace"})
    with pytest.raises(ConfigError, match="not one of"):
        driver_from_env({"CMT_POWER_DRIVER": "ipmi"})


def test_cmt_node_helper_and_features_through_the_real_entry_point(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["helper"]) == 0
    helper = capsys.readouterr().out
    assert cli_main(["features"]) == 0
    assert capsys.readouterr().out == helper == "os=debian12\nlibc=2.17\nlibc=2.36\nimage=debian12_2026.11\n"


class _Live:
    status = 200

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        out, self.data = self.data, b""
        return out

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default

    def close(self) -> None:
        pass


def test_kexec_driver_jumps_into_the_reimager_with_the_token(tmp_path: Path) -> None:
    run = FakeRunner()
    drv = KexecDriver(
        disk="/dev/vda", runner=run, opener=lambda r, t: _Live(b"k"), workdir=tmp_path, systemd=False
    )
    drv.reimage(ReimageTarget("http://10.0.0.1:8080", "n1", 9, "tok"))
    # (A real ``kexec -e`` never returns; the fake one does, so the firmware fallback follows here.)
    assert run.names()[:3] == ["kexec", "sync", "kexec"]
    assert run.argvs[0][-1] == (
        "--append=cmt.server=http://10.0.0.1:8080 cmt.mode=reimage cmt.deployment=9 cmt.token=tok cmt.disk=/dev/vda"
    )
    assert run.argvs[2] == ["kexec", "-e"]


def test_kexec_driver_under_systemd_waits_for_the_queued_kexec(tmp_path: Path) -> None:
    run = FakeRunner()
    slept: list[float] = []
    drv = KexecDriver(
        runner=run, opener=lambda r, t: _Live(b"k"), workdir=tmp_path, systemd=True, sleep=slept.append
    )
    drv.reimage(ReimageTarget("http://s", "n1", 9, "tok"))
    # `systemctl kexec` returns once the job is queued; the firmware fallback must not pre-empt it.
    assert run.argvs[2] == ["systemctl", "kexec"]
    assert slept == [drv.kexec_grace_s]
    assert run.argvs[3:] == [["sync"], ["systemctl", "reboot"]]


def test_kexec_driver_falls_back_to_the_firmware(tmp_path: Path) -> None:
    run = FakeRunner().on("kexec", "-l", returncode=1, stderr="Cannot load vmlinuz")
    drv = KexecDriver(runner=run, opener=lambda r, t: _Live(b"k"), workdir=tmp_path, systemd=False)
    drv.reimage(ReimageTarget("http://s", "n1", 9, "tok"))
    assert run.names() == ["kexec", "sync", "reboot"]
    no_token = FakeRunner()
    KexecDriver(runner=no_token, workdir=tmp_path, systemd=False).reimage(
        ReimageTarget("http://s", "n1", 9, None)
    )
    assert no_token.names() == ["sync", "reboot"]  # PXE fetches a token: no kexec without one
