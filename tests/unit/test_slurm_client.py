"""SlurmCli against output recorded from Debian's Slurm 22.05.8 (tests/data/slurm/)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cmt_slurm.errors import BackendError, BadInput, NotFound
from cmt_slurm.runner import TIMEOUT_RC, CommandResult
from cmt_slurm.slurm.client import SlurmCli
from cmt_slurm.slurm.watch import Action, plan_actions

DATA = Path(__file__).resolve().parent.parent / "data" / "slurm"


@dataclass
class Recorded:
    """A CommandRunner that answers from recorded files and remembers every argv."""

    answers: dict[tuple[str, ...], CommandResult] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def on(self, argv: Sequence[str], stdout: str = "", rc: int = 0, stderr: str = "") -> None:
        self.answers[tuple(argv)] = CommandResult(tuple(argv), rc, stdout, stderr)

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 600.0, **_: object
    ) -> CommandResult:
        assert check is False  # the adapter turns failures into BackendError itself
        self.calls.append(tuple(argv))
        return self.answers.get(tuple(argv), CommandResult(tuple(argv), 0, "", ""))


def client_with(sinfo: str | None = None, squeue: str | None = None) -> tuple[SlurmCli, Recorded]:
    rec = Recorded()
    if sinfo:
        rec.on(["sinfo", "--json"], (DATA / sinfo).read_text())
    if squeue:
        rec.on(["squeue", "--json"], (DATA / squeue).read_text())
    return SlurmCli(runner=rec), rec


def test_nodes_from_real_sinfo() -> None:
    cli, _ = client_with(sinfo="sinfo-idle.json")
    n1, n2 = cli.nodes()
    assert (n1.name, n1.state, n1.flags) == ("n1", "idle", frozenset())
    assert n1.features == ("os=debian12", "libc=2.36")
    assert n2.active_features == ("os=rocky8", "libc=2.28")
    assert n1.usable and n1.boot_time > 0


def test_drained_node_keeps_its_reason() -> None:
    cli, _ = client_with(sinfo="sinfo-drain.json")
    n2 = cli.node("n2")
    assert n2.drained and not n2.usable
    assert n2.reason == "cmt: reimage to debian13 failed at write: checksum mismatch"


def test_unknown_node_is_not_found() -> None:
    cli, _ = client_with(sinfo="sinfo-idle.json")
    with pytest.raises(NotFound, match="'n9' is not in Slurm"):
        cli.node("n9")


def test_jobs_from_real_squeue() -> None:
    cli, _ = client_with(squeue="squeue-running-pending.json")
    running, pending = cli.jobs()
    assert (running.state, running.nodes, running.constraint) == ("RUNNING", ("n1",), "os=debian12")
    assert (pending.state, pending.nodes, pending.reason, pending.name) == (
        "PENDING",
        (),
        "Resources",
        "second",
    )
    assert running.reason == ""


def test_no_jobs() -> None:
    cli, _ = client_with(squeue="squeue-empty.json")
    assert cli.jobs() == []


def test_updates_are_argv_lists() -> None:
    cli, rec = client_with()
    reason = "cmt: reimage to debian13 failed at write: checksum mismatch"
    cli.drain("n2", reason)
    cli.resume("n2")
    cli.reboot(["n1", "n2", "n3"], "cmt: reimage to rocky8", asap=True, nextstate="resume")
    cli.update_features("n1", active=["os=rocky8", "libc=2.28"])
    cli.requeue(7)
    cli.release_begin_time(7)
    assert rec.calls == [
        ("scontrol", "update", "NodeName=n2", "State=DRAIN", f"Reason={reason}"),
        ("scontrol", "update", "NodeName=n2", "State=RESUME"),
        ("scontrol", "reboot", "ASAP", "nextstate=resume", "reason=cmt: reimage to rocky8", "n[1-3]"),
        ("scontrol", "update", "NodeName=n1", "ActiveFeatures=os=rocky8,libc=2.28"),
        ("scontrol", "requeue", "7"),
        ("scontrol", "update", "JobId=7", "StartTime=now"),
    ]


def test_refused_update_is_backend_error_with_command_and_stderr() -> None:
    # Recorded from 22.05.8: scontrol update NodeName=nope State=DRAIN Reason=x
    cli, rec = client_with()
    argv = ["scontrol", "update", "NodeName=nope", "State=DRAIN", "Reason=x"]
    rec.on(argv, rc=1, stderr="slurm_update error: Invalid node name specified\n")
    with pytest.raises(BackendError) as err:
        cli.drain("nope", "x")
    assert "scontrol update NodeName=nope" in err.value.message
    assert "Invalid node name specified" in err.value.message
    assert err.value.details["stderr"].startswith("slurm_update error")


def test_reboot_without_reboot_program_is_backend_error() -> None:
    cli, rec = client_with()
    argv = ["scontrol", "reboot", "ASAP", "nextstate=resume", "reason=r", "n1"]
    rec.on(
        argv,
        rc=1,
        stderr="scontrol: error: RebootProgram isn't defined\nscontrol_reboot_nodes error: Unspecified error\n",
    )
    with pytest.raises(BackendError, match="Unspecified error"):
        cli.reboot(["n1"], "r")


@pytest.mark.parametrize("reason", ["", "two\nlines"])
def test_reasons_with_control_characters_are_refused(reason: str) -> None:
    cli, rec = client_with()
    with pytest.raises(BadInput):
        cli.drain("n1", reason)
    assert rec.calls == []


def test_non_json_output_is_backend_error() -> None:
    cli, rec = client_with()
    rec.on(["sinfo", "--json"], "sinfo: unrecognized option '--json'")
    with pytest.raises(BackendError, match="not JSON"):
        cli.nodes()


def test_timeout_and_missing_binary_are_backend_errors() -> None:
    cli, rec = client_with()
    rec.on(["sinfo", "--json"], rc=TIMEOUT_RC)
    with pytest.raises(BackendError, match="no answer within"):
        cli.nodes()
    rec.on(["squeue", "--json"], rc=127, stderr="squeue: command not found")
    with pytest.raises(BackendError, match="squeue: command not found") as err:
        cli.jobs()
    assert "slurm-client" in (err.value.hint or "")


def test_a_node_rebooting_for_a_job_as_22_05_shows_it() -> None:
    # Recorded while a job asking os:debian13 waited for n1 (n2 busy): ActiveFeatures already say the
    # target (Slurm rewrites them before the reboot), the flags say it is not there yet.
    cli, _ = client_with(sinfo="sinfo-powering-up.json", squeue="squeue-configuring.json")
    n1 = cli.node("n1")
    assert (n1.state, n1.rebooting, n1.usable) == ("allocated", True, False)
    assert n1.active_features == ("os=debian13",)
    busy, waiting = cli.jobs()
    assert (busy.state, busy.nodes) == ("RUNNING", ("n2",))
    assert (waiting.state, waiting.nodes, waiting.constraint, waiting.name) == (
        "CONFIGURING", ("n1",), "os=debian13", "wants-debian13",
    )  # fmt: skip


def test_the_watcher_plans_on_recorded_slurm_state() -> None:
    cli, _ = client_with(sinfo="sinfo-powering-up.json", squeue="squeue-configuring.json")
    reason = "cmt: reimage to debian13-2026.11 failed at write: checksum mismatch"
    server = [{"name": "n1", "state": "failed", "reason": reason}, {"name": "n2", "state": "ready"}]
    assert plan_actions(server, cli.nodes(), cli.jobs(), set()) == [
        Action("drain", "n1", reason), Action("requeue", "n1", job=2),
    ]  # fmt: skip
