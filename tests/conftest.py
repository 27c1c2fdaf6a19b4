"""Shared fixtures. Unit tests must not start processes: ``no_subprocess`` is applied to tests/unit."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests assert behaviour, never wall-clock times: on a loaded 2-core CI machine Hypothesis's deadline and
# "input generation is slow" checks would fail correct code.
settings.register_profile(
    "cmt", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("cmt")

REPO = Path(__file__).resolve().parent.parent


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root")


def need_binary(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CMT_* variables from the caller's environment leak into a test."""
    for name in list(os.environ):
        if name.startswith("CMT_") and not name.startswith("CMT_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _block_subprocess_in_unit_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    # Unit tests exercise pure code; a stray subprocess there means I/O leaked into the core.
    if "tests/unit" in str(request.node.fspath):

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"unit tests may not start processes: {args[:1]}")

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    yield
