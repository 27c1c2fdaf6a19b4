"""Running external commands behind one small port, so disk and network steps can be unit tested.

``CommandRunner`` is the protocol; ``SubprocessRunner`` is the real adapter (stdlib only: it also runs in
the live reimager) and ``FakeRunner`` records every argv and answers from a table of scripted results.
Tests assert on ``FakeRunner.argvs`` to prove the order of destructive commands (wipefs before the write,
re-read before grow, ...).
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import BackendError

#: Called with each line (split on CR or LF) a command prints on stdout, as it arrives.
OutputCallback = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_error_line(self) -> str:
        """The last non-empty line of stderr (else stdout): what a one-line message should quote."""
        for text in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                return lines[-1][:300]
        return f"exit status {self.returncode}"


class CommandFailed(BackendError):
    """A command exited non-zero (or timed out) where success was required."""

    code = "command_failed"

    def __init__(self, result: CommandResult, *, hint: str | None = None):
        name = os.path.basename(result.argv[0]) if result.argv else "?"
        super().__init__(
            f"{name} failed ({_describe_rc(result.returncode)}): {result.last_error_line()}",
            hint=hint or f"command was: {' '.join(result.argv)}",
            details={"argv": list(result.argv), "returncode": result.returncode},
        )
        self.result = result


def _describe_rc(rc: int) -> str:
    if rc == TIMEOUT_RC:
        return "timed out"
    if rc < 0:
        return f"killed by signal {-rc}"
    return f"exit status {rc}"


#: Return code a runner reports for a command it killed at its timeout.
TIMEOUT_RC = -1000


class CommandRunner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 600.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run ``argv`` to completion.

        :param check: raise ``CommandFailed`` when it exits non-zero or times out.
        :param timeout: seconds before the command is killed (``None``: no limit).
        :param on_output: receives stdout line by line while the command runs (progress meters).
        :raises CommandFailed: when ``check`` and the command failed.
        """
        ...


_LINE_SPLIT = re.compile(r"[\r\n]")


class SubprocessRunner:
    """The real runner: ``subprocess`` with bounded time and decoded output."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self._base_env = dict(env) if env is not None else None

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 600.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        full_env = None
        if self._base_env is not None or env is not None:
            full_env = {**(self._base_env or os.environ), **(env or {})}
        args = tuple(argv)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
            )
        except FileNotFoundError:
            result = CommandResult(args, 127, "", f"{args[0]}: command not found")
            if check:
                raise CommandFailed(result, hint=f"install {args[0]} (it is missing from PATH)") from None
            return result
        rc, out, err = _communicate(proc, input_text, timeout, on_output)
        result = CommandResult(args, rc, out, err)
        if check and not result.ok:
            raise CommandFailed(result)
        return result


def _communicate(
    proc: subprocess.Popen[bytes],
    input_text: str | None,
    timeout: float | None,
    on_output: OutputCallback | None,
) -> tuple[int, str, str]:
    if on_output is None:
        try:
            out, err = proc.communicate(
                input_text.encode() if input_text is not None else None, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return TIMEOUT_RC, out.decode(errors="replace"), err.decode(errors="replace")
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    # Streaming: read both pipes as data arrives so progress meters (qemu-img -p) reach the caller live.
    if proc.stdin is not None:
        proc.stdin.write((input_text or "").encode())
        proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    pending = ""
    timed_out = False
    while sel.get_map():
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait == 0.0:
            timed_out = True
            proc.kill()
            break
        for key, _ in sel.select(wait):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fileobj)
                continue
            chunks[key.data].append(data)
            if key.data == "out":
                pending += data.decode(errors="replace")
                *lines, pending = _LINE_SPLIT.split(pending)
                for line in lines:
                    if line.strip():
                        on_output(line)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    if pending.strip():
        on_output(pending)
    rc = proc.wait()
    text_out = b"".join(chunks["out"]).decode(errors="replace")
    text_err = b"".join(chunks["err"]).decode(errors="replace")
    return (TIMEOUT_RC if timed_out else rc), text_out, text_err


@dataclass
class FakeResponse:
    """What a ``FakeRunner`` answers for a matching command; ``output_lines`` go to ``on_output``."""

    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    output_lines: tuple[str, ...] = ()
    #: Called with the argv before answering (e.g. to create the files the real tool would write).
    effect: Callable[[tuple[str, ...]], None] | None = None


@dataclass
class FakeRunner:
    """Records commands; answers from ``responses`` keyed by an argv prefix (longest prefix wins).

    A response given as a list is consumed in order (the last one repeats), which scripts
    "fails once, then works". Commands with no matching response succeed with empty output.
    """

    responses: dict[tuple[str, ...], FakeResponse | list[FakeResponse]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    inputs: list[str | None] = field(default_factory=list)

    def on(self, *prefix: str, **response: object) -> FakeRunner:
        self.responses[tuple(prefix)] = FakeResponse(**response)  # type: ignore[arg-type]
        return self

    def on_sequence(self, prefix: Sequence[str], *responses: FakeResponse) -> FakeRunner:
        self.responses[tuple(prefix)] = list(responses)
        return self

    @property
    def argvs(self) -> list[list[str]]:
        return [list(c) for c in self.calls]

    def names(self) -> list[str]:
        """The program names called, in order (``["wipefs", "qemu-img", ...]``)."""
        return [os.path.basename(c[0]) for c in self.calls]

    def index(self, *prefix: str) -> int:
        """Position of the first recorded call starting with ``prefix``; raises ``ValueError``."""
        for i, call in enumerate(self.calls):
            if call[: len(prefix)] == prefix:
                return i
        raise ValueError(f"no call starting with {prefix}")

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 600.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        self.inputs.append(input_text)
        response = self._match(args)
        if response.effect is not None:
            response.effect(args)
        if on_output is not None:
            for line in response.output_lines:
                on_output(line)
        result = CommandResult(args, response.returncode, response.stdout, response.stderr)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def _match(self, args: tuple[str, ...]) -> FakeResponse:
        best: tuple[str, ...] | None = None
        for prefix in self.responses:
            if args[: len(prefix)] == prefix and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is None:
            return FakeResponse()
        entry = self.responses[best]
        if isinstance(entry, list):
            return entry.pop(0) if len(entry) > 1 else entry[0]
        return entry
