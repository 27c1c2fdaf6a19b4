from pathlib import Path

import pytest

from cmt_slurm.config import NamingRule, load_settings
from cmt_slurm.errors import ConfigError


def test_defaults_without_file(clean_env: None, tmp_path: Path) -> None:
    s = load_settings(env={})
    assert s.workers == 2
    assert s.effective_db_url.startswith("sqlite:///")


def test_toml_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "cmt.toml"
    cfg.write_text(
        'workers = 3\nbind = "0.0.0.0:9000"\n[[naming]]\nswitch = "sw-r07"\ntemplate = "node-{port_index}"\noffset = 241\n'
    )
    s = load_settings(cfg, env={"CMT_WORKERS": "5", "CMT_DATA_DIR": str(tmp_path)}, overrides={"bind": None})
    assert s.workers == 5
    assert s.bind == "0.0.0.0:9000"
    assert s.data_dir == tmp_path
    assert s.naming == (NamingRule(switch="sw-r07", offset=241),)
    assert load_settings(cfg, env={}, overrides={"workers": 7}).workers == 7


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("workers = 'many'", "workers: 'many' is not a valid int"),
        ("colour = 1", "unknown setting 'colour'"),
        ("image_serving = 'ftp'", "image_serving: 'ftp' is not one of"),
        ("bind = 'localhost'", "bind: 'localhost' is not HOST:PORT"),
        ("public_url = 'ftp://x'", "public_url"),
        ("workers = 0", "workers: must be greater than 0"),
        ("[[naming]]\ntemplate = 'x'", "naming[0]: switch: required"),
        ("default_name_template = 'n1'", "naming: naming template 'n1'"),
        ("default_name_template = 'n-{rack}-{port_index}'", "unknown field {rack}"),
        ("local_boot = 'pxe'", "local_boot: 'pxe' is not one of exit, sanboot"),
        ("workers = ", "not valid TOML"),
    ],
)
def test_bad_config_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "cmt.toml"
    cfg.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cmt.toml"
    cfg.write_text("workers = 'x'\n")
    with pytest.raises(ConfigError, match=f"^{cfg}: workers: 'x' is not a valid int$"):
        load_settings(cfg, env={})


def test_bad_env_names_variable() -> None:
    with pytest.raises(ConfigError, match="CMT_WORKERS: 'x'"):
        load_settings(env={"CMT_WORKERS": "x"})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml", env={})
