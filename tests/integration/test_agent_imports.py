"""The agent runs in a minimal python3 in the live initramfs: it must not pull in Flask, SQLAlchemy or click."""

import json
import subprocess
import sys

MODULES = [
    "cmt_slurm.agent.main",
    "cmt_slurm.agent.hooks_ready",
    "cmt_slurm.agent.kexec",
    "cmt_slurm.agent.cli",
    "cmt_slurm.runner",
]
FORBIDDEN = ("flask", "sqlalchemy", "click", "jinja2", "werkzeug", "alembic")


def test_agent_imports_stay_stdlib() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_python_m_agent_help_lists_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cmt_slurm.agent", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "cmt.server=URL" in out and "cmt.lldp_timeout=SECONDS" in out
