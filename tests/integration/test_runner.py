"""The real CommandRunner: exit codes, streamed progress lines, timeouts, missing programs."""

import sys

import pytest

from cmt_slurm.runner import TIMEOUT_RC, CommandFailed, SubprocessRunner


def test_success_output_and_input() -> None:
    result = SubprocessRunner().run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                                    input_text="abc")  # fmt: skip
    assert result.ok and result.stdout.strip() == "ABC"


def test_progress_lines_arrive_split_on_carriage_returns() -> None:
    code = (
        "import sys\nfor p in (0, 50, 100): sys.stdout.write(f'    ({p}.00/100%)\\r'); sys.stdout.flush()\n"
    )
    lines: list[str] = []
    result = SubprocessRunner().run([sys.executable, "-c", code], on_output=lines.append)
    assert result.ok
    assert [ln.strip() for ln in lines] == ["(0.00/100%)", "(50.00/100%)", "(100.00/100%)"]


def test_failure_names_the_program_and_its_last_error_line() -> None:
    with pytest.raises(CommandFailed) as err:
        SubprocessRunner().run([sys.executable, "-c", "import sys; sys.exit('disk on fire')"])
    assert "failed (exit status 1): disk on fire" in err.value.message
    assert err.value.result.returncode == 1


def test_timeout_kills_both_ways() -> None:
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert SubprocessRunner().run(slow, check=False, timeout=0.5).returncode == TIMEOUT_RC
    lines: list[str] = []
    result = SubprocessRunner().run(slow, check=False, timeout=0.5, on_output=lines.append)
    assert result.returncode == TIMEOUT_RC
    with pytest.raises(CommandFailed, match="timed out"):
        SubprocessRunner().run(slow, timeout=0.5)


def test_missing_program() -> None:
    result = SubprocessRunner().run(["cmt-no-such-program"], check=False)
    assert result.returncode == 127
    with pytest.raises(CommandFailed, match="command not found"):
        SubprocessRunner().run(["cmt-no-such-program"])
