"""Where a job's start delay went: milestones from the server's events and Slurm's times, as a table.

Pure: the demo, its e2e test and the benchmark collect the inputs (``JobRecord``), this turns them into
segments. Each segment is named after what the time was spent on and ends at one milestone:

======================  =======================================================================
segment                 from → to
======================  =======================================================================
scheduling              sbatch → the node's helper asks the server (deployment ``requested``)
reboot → live env       RebootProgram, kexec into the live env, its boot → the agent's first report
transfer                identify + download + digest check → ``write`` starts
write                   qemu-img writes the disk → ``grow`` starts
grow                    partition + filesystem grown, identity written → ``kexec`` reported
kexec → OS up           kexec, the new OS boots → ``cmt-node ready`` (deployment ``done``)
slurmd registered       OS up → slurmctld sees the node back (responding, not POWERING_UP)
job started             node back → the job starts (Slurm's own periodic pass: 0–30 s in 22.05)
======================  =======================================================================

A job that needed no reimage has only ``scheduling`` (sbatch → start). A missing milestone folds its time
into the next segment that has one, so the row always adds up to submit → start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: (segment name, the deployment stage whose event ends it, or a JobRecord field)
SEGMENTS: tuple[tuple[str, str], ...] = (
    ("scheduling", "stage:requested"),
    ("reboot → live env", "stage:live"),
    ("transfer", "stage:write"),
    ("write", "stage:grow"),
    ("grow", "stage:kexec"),
    ("kexec → OS up", "stage:done"),
    ("slurmd registered", "registered"),
    ("job started", "started"),
)
#: Stages that may stand in for a missing one (discover mode starts at identify; verify before write).
_FALLBACK = {"live": ("identify", "transfer"), "write": ("verify",), "kexec": ("identity",)}


def event_time(at: str | datetime) -> float:
    """Epoch seconds of an event's ``at`` (ISO text from the API; naive means UTC, as the store keeps it)."""
    dt = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True)
class JobRecord:
    label: str
    job_id: int
    node: str
    submitted: float
    started: float | None
    #: When slurmctld saw the node back after its reboot (None: no reboot, or not observed).
    registered: float | None = None
    #: The server's events of the deployment that served this job (empty: no reimage).
    events: tuple[Mapping[str, Any], ...] = ()
    image: str = ""
    note: str = ""


@dataclass(frozen=True)
class Breakdown:
    record: JobRecord
    #: (segment, seconds) in order; only the segments that happened.
    segments: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    @property
    def total(self) -> float | None:
        r = self.record
        return None if r.started is None else r.started - r.submitted

    @property
    def reimaged(self) -> bool:
        return bool(self.record.events)

    def seconds(self, segment: str) -> float | None:
        return dict(self.segments).get(segment)


def stage_times(events: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """First time each stage was entered (``stage`` events' ``to_state``)."""
    out: dict[str, float] = {}
    for ev in events:
        if ev.get("kind") != "stage" or not ev.get("to_state"):
            continue
        stage = str(ev["to_state"])
        t = event_time(ev["at"])
        out[stage] = min(t, out.get(stage, t))
    return out


def milestones(record: JobRecord) -> list[tuple[str, float | None]]:
    """Each segment's end time (None when not observed), in ``SEGMENTS`` order."""
    stages = stage_times(record.events)
    out: list[tuple[str, float | None]] = []
    for name, source in SEGMENTS:
        kind, _, key = source.partition(":")
        t: float | None
        if kind == "stage":
            t = stages.get(key)
            for alt in _FALLBACK.get(key, ()):
                if t is None:
                    t = stages.get(alt)
        else:
            t = getattr(record, source)
        out.append((name, t))
    return out


def breakdown(record: JobRecord) -> Breakdown:
    """Segments that add up to submit → start (see the module docstring)."""
    if record.started is None:
        return Breakdown(record)
    if not record.events:
        return Breakdown(record, (("scheduling", record.started - record.submitted),))
    segs: list[tuple[str, float]] = []
    last = record.submitted
    for name, seen in milestones(record):
        if seen is None:
            continue
        # Clocks: server events and Slurm's whole-second times; never let rounding show negative time.
        t = min(max(seen, last), record.started)
        segs.append((name, t - last))
        last = t
    return Breakdown(record, tuple(segs))


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render_table(rows: Sequence[Breakdown]) -> str:
    """A fixed-width text table: one line per job, seconds per segment, and the total."""
    names = [name for name, _ in SEGMENTS]
    head = ["job", "node", *names, "submit→start"]
    body = []
    for b in rows:
        r = b.record
        cells = [f"{r.job_id} {r.label}", r.node or "-"]
        cells += [_cell(b.seconds(n)) for n in names]
        cells.append(_cell(b.total))
        body.append(cells)
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    lines = [fmt(row) for row in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {b.record.job_id}: {b.record.note}" for b in rows if b.record.note]
    return "\n".join(lines + notes) + "\n"
