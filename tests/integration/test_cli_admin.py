"""``cmt node``, ``cmt events``, ``cmt token``, ``cmt db`` against a real database, in-process."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_run import run
from provisioner_helpers import CATALOGUE, Clock, lldp, mac, make

from cmt_slurm.catalogue import dump_manifest
from cmt_slurm.cli import events as events_cmd
from cmt_slurm.cli import node as node_cmd
from cmt_slurm.provisioner import Provisioner
from cmt_slurm.runner import FakeRunner
from cmt_slurm.slurm.client import SlurmCli
from cmt_slurm.states import Stage
from cmt_slurm.store import Store, head_revision


@pytest.fixture
def env(
    tmp_path: Path, db_url: str, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    for image in CATALOGUE:
        (catalogue / f"{image.name}.toml").write_text(dump_manifest(image))
    monkeypatch.setenv("CMT_DB_URL", db_url)
    monkeypatch.setenv("CMT_CATALOGUE_DIR", str(catalogue))
    store = Store.open(db_url)
    prov = make(store, Clock())
    yield {"prov": prov, "db": db_url, "catalogue": catalogue}
    store.dispose()


def out_json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_node_list_show_set_target_clear_forget(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    prov: Provisioner = env["prov"]
    name = prov.register_node([mac(5)], lldp(5), {"serial": "S5"}).node.name

    assert run(["node", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "IMAGE", "TARGET", "MACS", "SWITCH_PORT", "LAST_SEEN"]
    assert lines[1].split()[:5] == [name, "discovered", "-", "-", mac(5)]
    assert run(["node", "list", "--json"]) == 0
    assert [n["name"] for n in out_json(capsys)] == [name]

    assert run(["node", "set-target", name, "debian13-2026.11"]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: reimage to debian13-2026.11 requested (deployment ")
    assert run(["node", "show", name, "--json"]) == 0
    shown = out_json(capsys)
    assert shown["node"]["state"] == "reimaging" and shown["node"]["dmi_serial"] == "S5"
    assert shown["deployments"][0]["image"] == "debian13-2026.11" and "token" not in shown["deployments"][0]
    assert run(["node", "show", name]) == 0
    assert "target image:   debian13-2026.11" in capsys.readouterr().out

    assert run(["node", "set-target", name, "nope"]) == 4
    assert "no image named 'nope'" in capsys.readouterr().err

    boot = prov.boot_decision(mac(5))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.FAILED, message="disk gone")
    assert run(["node", "clear", name, "--json"]) == 0
    assert out_json(capsys)["state"] == "discovered"
    assert run(["node", "clear", name]) == 5  # not failed any more: conflict
    assert "not failed" in capsys.readouterr().err

    assert run(["node", "forget", name, "--yes"]) == 0
    assert capsys.readouterr().out == f"{name}: forgotten\n"
    assert run(["node", "show", name]) == 4


def test_forget_asks_and_a_no_changes_nothing(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    prov: Provisioner = env["prov"]
    name = prov.register_node([mac(5)], lldp(5)).node.name
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert run(["node", "forget", name]) == 130
    assert prov.get_node(name).name == name


def test_events_json_node_filter_and_follow(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prov: Provisioner = env["prov"]
    a = prov.register_node([mac(1)], lldp(1)).node.name
    b = prov.register_node([mac(2)], lldp(2)).node.name
    assert run(["events", "--json"]) == 0
    assert [e["node"] for e in out_json(capsys)] == [a, b]
    assert run(["events", "--node", b]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "discovered" in out[0] and b in out[0]

    polls = []

    def fake_sleep(_seconds: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            prov.set_target(a, "rocky9-2026.10", "admin:t")  # arrives while following
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(events_cmd, "sleep", fake_sleep)
    assert run(["events", "--follow", "--json", "--node", a]) == 0
    followed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["kind"], e["to_state"]) for e in followed] == [
        ("node", "discovered"), ("node", "reimaging"), ("stage", "requested"),
    ]  # fmt: skip


def test_tokens_create_list_revoke(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    prov: Provisioner = env["prov"]
    assert run(["token", "create", "ops"]) == 0
    captured = capsys.readouterr()
    secret = captured.out.strip()
    assert "shown only once" in captured.err
    assert prov.verify_admin(secret) == "admin:ops"
    assert run(["token", "create", "ops"]) == 5
    assert run(["token", "create", "Bad Name"]) == 2
    capsys.readouterr()
    assert run(["token", "list", "--json"]) == 0
    listed = out_json(capsys)
    assert [t["name"] for t in listed] == ["ops"] and "hash" not in listed[0] and listed[0]["last_used"]
    assert run(["token", "revoke", "ops"]) == 0
    assert run(["token", "revoke", "ops"]) == 4
    assert prov.events(limit=1)[0].actor.startswith("cli:")


def test_db_current_and_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert run(["db", "current", "--db", url, "--json"]) == 0
    assert out_json(capsys) == {"url": url, "revision": None, "head": head_revision(), "up_to_date": False}
    assert run(["db", "upgrade", "--db", url]) == 0
    assert "upgraded (empty) -> " in capsys.readouterr().out
    assert run(["db", "upgrade", "--db", url]) == 0
    assert "already at revision" in capsys.readouterr().out
    assert run(["db", "current", "--db", url]) == 0
    assert "(up to date)" in capsys.readouterr().out


def test_bad_db_url_is_a_config_error(capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    assert run(["node", "list", "--db", "not a url"]) == 2
    assert "is not a database URL" in capsys.readouterr().err


SLURM_DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"


def sinfo_with(name: str) -> str:
    """Real `sinfo --json` output of this Slurm, with its first node renamed to ``name``."""
    data = json.loads((SLURM_DATA / "sinfo-idle.json").read_text())
    data["nodes"][0]["name"] = name
    return json.dumps(data)


def test_reimage_sets_the_target_and_asks_slurm_to_reboot(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prov: Provisioner = env["prov"]
    name = prov.register_node([mac(5)], lldp(5)).node.name
    runner = FakeRunner()  # the Slurm process boundary; SlurmCli builds the real command lines
    runner.on("sinfo", stdout=sinfo_with(name))
    monkeypatch.setattr(node_cmd, "slurm_client", lambda: SlurmCli(runner=runner))
    assert run(["node", "reimage", name, "rocky9-2026.10", "--json"]) == 0
    assert out_json(capsys)["reboot_requested"] is True
    assert runner.argvs[-1] == [
        "scontrol", "reboot", "ASAP", "nextstate=resume", "reason=cmt: reimage to rocky9-2026.10", name
    ]  # fmt: skip
    assert prov.get_node(name).target_image == "rocky9-2026.10"
    runner.on("scontrol", returncode=1, stderr="slurm_reboot error: Invalid node name specified")
    prov.forget(name, "test")
    name = prov.register_node([mac(5)], lldp(5)).node.name
    assert run(["node", "reimage", name, "rocky9-2026.10"]) == 1  # Slurm refused: backend error
    err = capsys.readouterr().err
    assert "target set to rocky9-2026.10" in err and "Invalid node name" in err
    assert run(["node", "reimage", name, "debian12-2026.11", "--no-reboot"]) == 0
    assert "reboot it to start" in capsys.readouterr().out


def test_reimage_unknown_to_slurm_records_nothing(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prov: Provisioner = env["prov"]
    name = prov.register_node([mac(6)], lldp(6)).node.name
    runner = FakeRunner().on("sinfo", stdout=sinfo_with("someone-else"))
    monkeypatch.setattr(node_cmd, "slurm_client", lambda: SlurmCli(runner=runner))
    assert run(["node", "reimage", name, "rocky9-2026.10", "--when", "now"]) == 4
    assert "is not in Slurm" in capsys.readouterr().err
    assert prov.get_node(name).target_image is None


def test_unreachable_database_is_one_line_exit_1(capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    assert run(["db", "current", "--db", "postgresql+psycopg://cmt:secret@127.0.0.1:1/cmt"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: database postgresql+psycopg://cmt:***@127.0.0.1:1/cmt: ")
    assert "secret" not in "".join(err) and err[1].startswith("hint: ") and len(err) == 2
