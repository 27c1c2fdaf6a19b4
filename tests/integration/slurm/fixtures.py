"""Pytest fixtures over the mini cluster. Test modules import them: ``from slurm.fixtures import ...``
(tests/integration is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import BINARIES, SLURM_LIBDIR, MiniCluster


def need_slurm() -> None:
    """Skip unless this host can run the mini cluster: root, Debian's Slurm and munge packages."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm mini cluster needs root (network/mount namespaces, munged, slurmd)")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")
    for plugin in ("node_features_helpers.so", "job_submit_lua.so"):
        if not (SLURM_LIBDIR / plugin).exists():
            pytest.skip(f"Slurm plugin {plugin} is missing (slurm-wlm-basic-plugins)")


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., MiniCluster]]:
    """``make_cluster(nodes, **kwargs)`` starts a cluster under tmp_path; all are stopped at teardown."""
    need_slurm()
    started: list[MiniCluster] = []

    def make(nodes: Any, **kwargs: Any) -> MiniCluster:
        root = tmp_path / f"cluster{len(started)}"
        c = MiniCluster(root, nodes, **kwargs)
        started.append(c)
        c.start()
        return c

    try:
        yield make
    finally:
        for c in reversed(started):
            c.stop()
