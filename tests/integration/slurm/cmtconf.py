"""Configure a mini cluster the way an admin would: with ``cmt slurm config`` (run as a process)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cmt_slurm.catalogue import image_features, load_catalogue

from .cluster import os_release_text

REPO = Path(__file__).resolve().parents[3]
CATALOGUE = REPO / "tests" / "data" / "catalogue"
CMT_NODE = Path(sys.executable).with_name("cmt-node")


@dataclass(frozen=True)
class CmtConf:
    files: dict[str, str]
    #: The line slurm.conf needs (Include of the generated cmt-slurm.conf).
    include: str
    #: What `cmt slurm config` printed on stdout (the NodeName Features= line).
    stdout: str


def cmt(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cmt_slurm", *args],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"cmt {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def generate(
    conf_dir: Path,
    mode: str = "helpers",
    catalogue: Path = CATALOGUE,
    *,
    cmt_config: Path | None = None,
    fast_start: bool = True,
    **env: str,
) -> CmtConf:
    """Run ``cmt slurm config --out`` into a scratch dir; wrappers are installed in ``conf_dir``."""
    out = conf_dir.parent / f"generated-{mode}"
    extra = ["--cmt-config", str(cmt_config)] if cmt_config else []
    proc = cmt(
        "slurm", "config", "--catalogue", str(catalogue), "--mode", mode, "--out", str(out),
        "--wrapper-dir", str(conf_dir), "--slurm-conf", str(conf_dir / "slurm.conf"), *extra,
        "--fast-start" if fast_start else "--no-fast-start",
        env={"CMT_NODE_COMMAND": str(CMT_NODE), "CMT_CMT_COMMAND": str(Path(sys.executable).with_name("cmt")),
             "CMT_REIMAGE_OVERHEAD_S": "60", **env},
    )  # fmt: skip
    files = {p.name: p.read_text() for p in sorted(out.iterdir()) if p.is_file()}
    return CmtConf(files, f"Include {conf_dir / 'cmt-slurm.conf'}", proc.stdout)


def identity(image_name: str, node: str, server: str = "", token: str = "") -> tuple[str, dict[str, object]]:
    """os-release text and node.json of a node that the reimager installed with ``image_name``."""
    cat = load_catalogue(CATALOGUE)
    image = cat.get(image_name)
    assert image is not None, image_name
    osr = os_release_text(image.os, image.os_version, f"{image.os_name} {image.os_version}")
    nj: dict[str, object] = {
        "node": node, "image": image.name, "sha256": image.sha256, "deployment": None,
        "features": list(image_features(cat, image)), "server": server, "token": token,
    }  # fmt: skip
    return osr, nj
