"""Background processes of the lab, recorded by PID *and* start time so ``down`` never kills a stranger.

A PID alone can be reused after a crash; the start time (field 22 of /proc/PID/stat) pins the exact
process. Processes start in their own session so a Ctrl-C in the shell that ran ``cmt lab up`` does not
take the lab down with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcRecord:
        return cls(
            str(data["name"]),
            int(data["pid"]),
            int(data["start_ticks"]),
            tuple(data["argv"]),
            str(data["log"]),
        )


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(rec: ProcRecord) -> bool:
    return start_ticks(rec.pid) == rec.start_ticks


def spawn(name: str, argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None) -> ProcRecord:
    """Start ``argv`` detached (own session), stdout+stderr appended to ``log``.

    ``posix_spawnp``, not ``subprocess``: the lab outlives the Python object that started it, and a
    ``Popen`` dropped while its process runs is a warning (an error under pytest) for no benefit.
    :raises BackendError: the program is missing or exited at once.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            dict(env) if env is not None else dict(os.environ),
            file_actions=actions,
            setsid=True,
        )
    except FileNotFoundError:
        raise BackendError(
            f"lab: cannot start {name}: {argv[0]} not found", hint="run scripts/install-deps"
        ) from None
    ticks = None
    for _ in range(50):
        ticks = start_ticks(pid)
        if ticks is not None:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    done, _status = os.waitpid(pid, os.WNOHANG)
    if ticks is None or done:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise BackendError(
            f"lab: {name} exited at once: {' / '.join(tail) or 'no output'}", hint=f"see {log}"
        )
    return ProcRecord(name, pid, ticks, tuple(argv), str(log))


def stop(rec: ProcRecord, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns False when the process was already gone (or not ours)."""
    if not alive(rec):
        return False
    try:
        os.kill(rec.pid, sig)
    except ProcessLookupError:
        return False
    if wait_gone(rec, timeout):
        return True
    try:
        os.kill(rec.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    wait_gone(rec, 5.0)
    return True


def kill_group(rec: ProcRecord) -> bool:
    """SIGKILL the process group ``rec`` leads (``spawn`` gives each process its own session)."""
    if not alive(rec):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rec.pid, signal.SIGKILL)
    wait_gone(rec, 5.0)
    return True


def wait_gone(rec: ProcRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not alive(rec):
            return True
        time.sleep(0.05)
    return not alive(rec)


def _reap(pid: int) -> None:
    # Our own children (when `up` and `down` run in one process, as in tests) must be reaped.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, rec: ProcRecord | None = None, interval: float = 0.1
) -> None:
    """Poll ``check`` until true; fail early when ``rec`` died. :raises BackendError: on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if rec is not None and not alive(rec):
            tail = Path(rec.log).read_text(errors="replace").strip().splitlines()[-5:]
            raise BackendError(
                f"lab: {rec.name} exited while {what}: {' / '.join(tail)}", hint=f"see {rec.log}"
            )
        time.sleep(interval)
    raise BackendError(f"lab: timed out after {timeout:.0f} s {what}", hint=f"see {rec.log}" if rec else None)


def http_ok(url: str) -> bool:
    """The server at ``url`` answers (anything but a 5xx): it is up."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
            return int(resp.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False
