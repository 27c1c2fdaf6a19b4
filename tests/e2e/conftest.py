"""Real QEMU nodes in a real lab (cmt_slurm.lab): namespace, dnsmasq, lldpd, the boot server, iPXE.

The lab and its images are session-scoped: building the live env and the images is cached across runs
(~/.cache/cmt-slurm), booting the lab takes seconds. Logs of every lab (console, dnsmasq, lldpd, server)
stay under tests/artifacts/ for post-mortems.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.apiclient import ApiClient
from cmt_slurm.lab.lab import Lab
from tests.conftest import REPO

NEEDED = ("ip", "qemu-system-x86_64", "qemu-img", "dnsmasq", "lldpd", "lldpcli", "zstd", "mmdebstrap")
ARTIFACTS = REPO / "tests" / "artifacts"


def lab_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, taps)")
    missing = [n for n in NEEDED if shutil.which(n) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun: taps cannot be created here")


@dataclass(frozen=True)
class LabImages:
    live_dir: Path
    #: Catalogue image names: A is Debian 12, B is Debian 13.
    a: Any
    b: Any


@pytest.fixture(scope="session")
def lab_images(tmp_path_factory: pytest.TempPathFactory) -> LabImages:
    lab_prerequisites()
    from cmt_slurm.lab import images  # noqa: PLC0415 - heavy, only for these tests

    catalogue = tmp_path_factory.mktemp("catalogue")
    live = images.ensure_live_env()
    a = images.ensure_image("debian12", catalogue)
    b = images.ensure_image("debian13", catalogue)
    return LabImages(live.directory, a, b)


def new_lab_dir(name: str) -> Path:
    workdir = ARTIFACTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


@pytest.fixture(scope="module")
def lab(lab_images: LabImages, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A one-node lab, its catalogue holding images A and B (the node starts with a blank disk)."""
    lab_ = Lab(new_lab_dir(request.module.__name__.rsplit(".", 1)[-1]))
    for img in (lab_images.a, lab_images.b):
        from cmt_slurm.lab import images  # noqa: PLC0415

        images.publish(img, lab_.catalogue_dir)
    try:
        lab_.up(1, live_dir=lab_images.live_dir, start_vms=False)
        yield lab_
    finally:
        lab_.down()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the last value)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def node_or_none(api: ApiClient, name: str) -> dict[str, Any] | None:
    return next((n for n in api.nodes() if n["name"] == name), None)
