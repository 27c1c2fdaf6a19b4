"""cmt-node must import only the module of the command it runs (slurmd calls the helper per Feature line)."""

import sys

import pytest

from cmt_slurm.agent import cli


def test_chosen_command() -> None:
    assert cli.chosen_command(["--debug", "helper", "os=x"]) == "helper"
    assert cli.chosen_command(["features"]) == "features"
    assert cli.chosen_command(["--help"]) is None
    assert cli.chosen_command(["bogus", "helper"]) is None


def test_only_the_chosen_module_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cmt_slurm.agent.main", "cmt_slurm.agent.hooks_reboot", "cmt_slurm.agent.hooks_ready"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    cli._parser("features")
    assert "cmt_slurm.agent.hooks_helper" in sys.modules
    assert "cmt_slurm.agent.main" not in sys.modules
    assert "cmt_slurm.agent.hooks_reboot" not in sys.modules


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)
