"""Following one job through Slurm and the boot server, live: the demo's progress display.

The server's events stream (``GET /api/v1/events/stream``) is read by a background thread; the main loop
merges it with Slurm's view (``squeue``/``sinfo --json``, once a second) and the running deployment's byte
counters, prints a line per stage as it happens, and returns a ``timeline.JobRecord`` when the job starts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..apiclient import ApiClient
from ..errors import BackendError, CmtError
from ..slurm.client import JobInfo, NodeInfo, SlurmClient
from .timeline import JobRecord, event_time

#: What the live display says when a deployment enters a stage.
STAGE_TEXT = {
    "requested": "reboot requested (helper → server)",
    "queued": "waiting for a reimage slot",
    "live": "live env up (the reimager is running)",
    "identify": "live env up; identifying",
    "transfer": "downloading the image",
    "verify": "checking the sha256",
    "write": "writing the disk (qemu-img)",
    "grow": "growing partition and filesystem",
    "identity": "writing the node's identity",
    "kexec": "kexec into the new OS",
    "boot": "the new OS is booting",
    "done": "OS up (cmt-node ready)",
    "failed": "FAILED",
}
_STARTED = ("RUNNING", "COMPLETING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL")


class EventFeed:
    """The server's events, from the SSE stream, buffered by a daemon thread; ``drain()`` takes them."""

    def __init__(self, api: ApiClient, since: int | None):
        self._q: queue.Queue[dict[str, Any]] = queue.Queue()
        self.error: str | None = None
        self.seen: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, args=(api, since), daemon=True, name="events")
        self._thread.start()

    def _run(self, api: ApiClient, since: int | None) -> None:
        try:
            for ev in api.follow_events(since=since, idle_timeout=60):
                self._q.put(ev)
        except CmtError as exc:  # the display carries on from polls; the reason is shown
            self.error = exc.message

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        self.seen += out
        return out


@dataclass
class JobWatch:
    """One job being followed; filled in by ``Follower.follow``."""

    job_id: int
    label: str
    submitted: float
    node: str = ""
    deployment: int | None = None
    registered: float | None = None
    started: float | None = None
    state: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(self, note: str = "") -> JobRecord:
        return JobRecord(
            label=self.label, job_id=self.job_id, node=self.node, submitted=self.submitted,
            started=self.started, registered=self.registered, events=tuple(self.events),
            image=next((str(e["detail"].get("image", "")) for e in self.events if e.get("detail")), ""),
            note=note,
        )  # fmt: skip


class Follower:
    def __init__(
        self,
        api: ApiClient,
        slurm: SlurmClient,
        feed: EventFeed,
        out: Callable[[str], None] = print,
        on_stage: Callable[[JobWatch, str], None] | None = None,
    ):
        self.api, self.slurm, self.feed, self.out = api, slurm, feed, out
        #: Called as each stage of the followed job's deployment arrives (the e2e test's screenshot).
        self.on_stage = on_stage

    def follow(self, watch: JobWatch, timeout: float, poll: float = 1.0) -> JobRecord:
        """Print progress until the job starts. :raises BackendError: it did not start within ``timeout``."""
        deadline = time.monotonic() + timeout
        last_bytes = 0.0
        while time.monotonic() < deadline:
            for ev in self.feed.drain():
                self._on_event(watch, ev)
            job = self._job(watch.job_id)
            if job is not None:
                self._on_job(watch, job)
            if watch.deployment is not None and watch.registered is None and self._deployment_done(watch):
                node = self._node(watch.node)
                if node is not None and node.boot_time > watch.submitted and "POWERING_UP" not in node.flags:
                    watch.registered = time.time()
                    self.out(f"  {self._t(watch)} {watch.node}: slurmd registered (new boot time), features "
                             f"{','.join(node.active_features)}")  # fmt: skip
            if watch.started is not None:
                return watch.record()
            if watch.deployment is not None and time.monotonic() - last_bytes > 5:
                last_bytes = time.monotonic()
                self._progress(watch)
            time.sleep(poll)
        raise BackendError(
            f"job {watch.job_id} ({watch.label}) did not start within {timeout:.0f} s "
            f"(last state {watch.state or 'unknown'} on {watch.node or 'no node'})",
            hint="see the lab's slurmctld log and the VM console (cmt lab console NODE --log)",
        )

    # -- pieces -------------------------------------------------------------------------------------
    def _t(self, watch: JobWatch) -> str:
        return f"[+{time.time() - watch.submitted:6.1f} s]"

    def _job(self, job_id: int) -> JobInfo | None:
        try:
            return next((j for j in self.slurm.jobs() if j.job_id == job_id), None)
        except CmtError:
            return None

    def _node(self, name: str) -> NodeInfo | None:
        try:
            return next((n for n in self.slurm.nodes() if n.name == name), None)
        except CmtError:
            return None

    def _on_job(self, watch: JobWatch, job: JobInfo) -> None:
        if job.nodes and job.nodes[0] != watch.node:
            watch.node = job.nodes[0]
            self.out(f"  {self._t(watch)} slurm: job {job.job_id} → {watch.node} ({job.state})")
            # Events of this node that arrived before Slurm told us the node.
            for ev in self.feed.seen:
                self._on_event(watch, ev, replay=True)
        if job.state != watch.state:
            if watch.state:
                reason = f" ({job.reason})" if job.reason else ""
                self.out(f"  {self._t(watch)} slurm: job {job.job_id} {watch.state} → {job.state}{reason}")
            watch.state = job.state
        if job.state in _STARTED and job.start_time:
            # Slurm's own start time (whole seconds), not when we happened to poll.
            watch.started = float(job.start_time)

    def _on_event(self, watch: JobWatch, ev: dict[str, Any], replay: bool = False) -> None:
        if not watch.node or ev.get("node") != watch.node or ev.get("kind") != "stage":
            return
        if event_time(ev["at"]) < watch.submitted - 1:
            return
        if watch.deployment is None and ev.get("to_state") == "requested":
            watch.deployment = int(ev["deployment"])
        if ev.get("deployment") != watch.deployment or ev in watch.events:
            return
        watch.events.append(ev)
        stage = str(ev.get("to_state"))
        took = ev.get("detail", {}).get("seconds")
        prev = f" ({ev.get('from_state')} took {took:.1f} s)" if ev.get("from_state") and took else ""
        text = STAGE_TEXT.get(stage, stage)
        if stage == "failed":
            text += f": {ev.get('detail', {}).get('message', '')}"
        at = event_time(ev["at"]) - watch.submitted
        self.out(f"  [+{at:6.1f} s] {watch.node}: {stage:<9} {text}{prev}")
        if self.on_stage is not None:
            self.on_stage(watch, stage)

    def _deployment_done(self, watch: JobWatch) -> bool:
        return any(e.get("to_state") == "done" for e in watch.events)

    def _progress(self, watch: JobWatch) -> None:
        stage = str(watch.events[-1].get("to_state")) if watch.events else ""
        if stage not in ("transfer", "write"):
            return
        try:
            dep = self.api.deployment(int(watch.deployment or 0))
        except CmtError:
            return
        dep = dep.get("deployment", dep)
        done, total = dep.get("progress_bytes"), dep.get("total_bytes")
        if stage == "write" and isinstance(done, int):
            # The write counts the disk's bytes (the image's virtual size), not the qcow2's.
            self.out(f"  {self._t(watch)} {watch.node}: write {done / 1e6:8.1f} MB written to the disk")
        elif isinstance(done, int) and isinstance(total, int) and total > 0:
            self.out(f"  {self._t(watch)} {watch.node}: {stage} {done / 1e6:6.1f} / {total / 1e6:.1f} MB "
                     f"({100 * done / total:3.0f} %)")  # fmt: skip
