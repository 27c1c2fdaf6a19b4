import json
from pathlib import Path

import pytest
from cli_run import run


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes:" in out
    assert "3  nothing matches" in out


def test_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    cfg = tmp_path / "cmt.toml"
    cfg.write_text("workers = 'x'\n")
    assert run(["--config", str(cfg), "config", "show"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {cfg}: workers: 'x' is not a valid int"
    assert err[1].startswith("hint: ")


def test_config_show_json_masks_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    monkeypatch.setenv("CMT_TOKEN", "secret")
    cfg = tmp_path / "cmt.toml"
    cfg.write_text("workers = 4\n")
    assert run(["--config", str(cfg), "config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["workers"] == 4
    assert data["token"] == "********"


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["frobnicate"]) == 2
