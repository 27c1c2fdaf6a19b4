"""Where a job's start delay went: the stage table computed from server events and Slurm's times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cmt_slurm.lab.timeline import JobRecord, breakdown, event_time, milestones, render_table

T0 = datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)


def at(seconds: float, naive: bool = False) -> str:
    dt = T0 + timedelta(seconds=seconds)
    return (dt.replace(tzinfo=None) if naive else dt).isoformat()


def stage(to: str, seconds: float, frm: str | None = None) -> dict[str, Any]:
    return {"kind": "stage", "to_state": to, "from_state": frm, "at": at(seconds), "node": "node1"}


REIMAGE_EVENTS = (
    stage("requested", 3.0),
    {"kind": "node", "to_state": "reimaging", "at": at(3.0)},
    stage("live", 20.0, "requested"),
    stage("transfer", 21.0, "live"),
    stage("verify", 30.0, "transfer"),
    stage("write", 31.0, "verify"),
    stage("grow", 40.0, "write"),
    stage("identity", 42.0, "grow"),
    stage("kexec", 43.0, "identity"),
    stage("done", 70.0, "kexec"),
)


def record(**kw: Any) -> JobRecord:
    base: dict[str, Any] = {
        "label": "os:debian13",
        "job_id": 7,
        "node": "node1",
        "submitted": T0.timestamp(),
        "started": T0.timestamp() + 95.0,
        "registered": T0.timestamp() + 80.0,
        "events": REIMAGE_EVENTS,
    }
    return JobRecord(**{**base, **kw})


def test_event_time_reads_aware_and_naive_utc() -> None:
    assert event_time(at(5)) == event_time(at(5, naive=True)) == T0.timestamp() + 5


def test_a_reimage_is_split_into_segments_that_add_up() -> None:
    b = breakdown(record())
    assert [name for name, _ in b.segments] == [
        "scheduling",
        "reboot → live env",
        "transfer",
        "write",
        "grow",
        "kexec → OS up",
        "slurmd registered",
        "job started",
    ]
    assert b.seconds("scheduling") == 3.0
    assert b.seconds("reboot → live env") == 17.0
    assert b.seconds("transfer") == 11.0  # live report → write: identify, download, verify
    assert b.seconds("write") == 9.0
    assert b.seconds("grow") == 3.0
    assert b.seconds("kexec → OS up") == 27.0
    assert b.seconds("slurmd registered") == 10.0
    assert b.seconds("job started") == 15.0
    assert b.total == 95.0
    assert sum(s for _, s in b.segments) == b.total
    assert b.reimaged


def test_a_job_without_reimage_is_all_scheduling() -> None:
    b = breakdown(record(events=(), registered=None, started=T0.timestamp() + 2.0))
    assert b.segments == (("scheduling", 2.0),)
    assert not b.reimaged


def test_a_missing_milestone_folds_into_the_next_one() -> None:
    events = tuple(e for e in REIMAGE_EVENTS if e.get("to_state") not in ("grow", "identity"))
    b = breakdown(record(events=events, registered=None))
    assert b.seconds("write") is None and b.seconds("slurmd registered") is None
    assert b.seconds("grow") == 12.0  # write → kexec, as grow was not seen
    assert b.seconds("job started") == 25.0
    assert sum(s for _, s in b.segments) == b.total


def test_discover_mode_and_verify_stand_in_for_missing_stages() -> None:
    events = (stage("requested", 1.0), stage("identify", 5.0), stage("verify", 9.0), stage("done", 20.0))
    ms = dict(milestones(record(events=events)))
    assert ms["reboot → live env"] == T0.timestamp() + 5.0
    assert ms["transfer"] == T0.timestamp() + 9.0


def test_skewed_clocks_never_show_negative_time() -> None:
    # Slurm's start_time has whole seconds: it may precede the last event by a fraction.
    b = breakdown(record(started=T0.timestamp() + 69.5, registered=T0.timestamp() + 69.0))
    assert all(s >= 0 for _, s in b.segments)
    assert sum(s for _, s in b.segments) == b.total


def test_a_job_that_never_started_has_no_segments() -> None:
    b = breakdown(record(started=None))
    assert b.segments == () and b.total is None


def test_the_table_shows_every_job_and_its_total() -> None:
    text = render_table([breakdown(record()), breakdown(record(job_id=8, label="os:debian12", events=(),
                                                                registered=None, started=T0.timestamp() + 1.5,
                                                                note="no reimage"))])  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["job", "node", "scheduling"]
    assert "95.0" in lines[2] and lines[2].startswith("7 os:debian13")
    assert lines[3].startswith("8 os:debian12") and lines[3].rstrip().endswith("1.5")
    assert "8: no reimage" in text
