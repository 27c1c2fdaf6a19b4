"""The ``site_files`` setting: files every new root gets (munge key, slurmd defaults), in the plan format."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cmt_slurm.config import load_settings
from cmt_slurm.errors import ConfigError
from cmt_slurm.provisioner.site_files import load_site_files, parse_site_files


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_unset_means_no_files() -> None:
    assert load_site_files(None) == ()


def test_files_come_back_in_the_plan_shape(tmp_path: Path) -> None:
    path = tmp_path / "site.json"
    path.write_text(
        json.dumps(
            [
                {"path": "/etc/munge/munge.key", "content_base64": _b64(b"k" * 32), "mode": "0400",
                 "owner": "munge:munge"},
                {"path": "/etc/default/slurmd", "content_base64": _b64(b"SLURMD_OPTIONS=x\n")},
            ]
        )
    )  # fmt: skip
    files = load_site_files(path)
    assert files[0] == {
        "path": "/etc/munge/munge.key",
        "content_base64": _b64(b"k" * 32),
        "mode": "0400",
        "owner": "munge:munge",
    }
    assert files[1]["mode"] == "0644" and files[1]["owner"] is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"path": "etc/x", "content_base64": ""}, "must be absolute"),
        ({"path": "/etc/../x", "content_base64": ""}, "must be absolute"),
        ({"path": "/etc/x", "content_base64": "not base64!"}, "not base64"),
        ({"path": "/etc/x", "content_base64": "", "mode": "rw"}, "octal"),
        ({"path": "/etc/x", "content_base64": "", "owner": 0}, "owner"),
        ("just a string", "must be an object"),
    ],
)
def test_a_bad_entry_is_named(entry: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_site_files([entry], "site.json")
    assert "site.json: [0]" in info.value.message


def test_missing_or_broken_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_site_files(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        load_site_files(tmp_path / "bad.json")
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(ConfigError, match="JSON list"):
        load_site_files(tmp_path / "obj.json")


def test_the_setting_loads_from_toml(tmp_path: Path) -> None:
    conf = tmp_path / "cmt.toml"
    conf.write_text(f'site_files = "{tmp_path / "site.json"}"\n')
    assert load_settings(conf, env={}).site_files == tmp_path / "site.json"
