import dataclasses
from pathlib import Path

from cmt_slurm.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [f.name for f in dataclasses.fields(Settings) if f"| `{f.name}` |" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_documented_keys_exist() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    rows = [
        line.split("|")[1].strip().strip("`")
        for line in DOC.read_text().splitlines()
        if line.startswith("| `")
    ]
    assert set(rows) <= names
