"""`cmt lldp decode`: files, hex text, stdin, JSON, and one-line errors with exit 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cli_run import run

from cmt_slurm.cli.lldp import _up_interfaces, hex_to_bytes
from cmt_slurm.errors import BadInput

DATA = Path(__file__).resolve().parents[1] / "data" / "lldp"
LOCAL = DATA / "lldpd-local.bin"


@pytest.fixture(autouse=True)
def _no_config(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "cmt.toml"
    cfg.write_text("")
    monkeypatch.setenv("CMT_CONFIG", str(cfg))


def test_decode_binary_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["lldp", "decode", str(LOCAL)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert {k: v.strip() for k, v in lines.items()} == {
        "chassis_id": "02:00:00:00:12:01",
        "chassis_id_subtype": "mac",
        "port_id": "Ethernet1/7",
        "port_id_subtype": "local",
        "port_description": "node uplink 7",
        "system_name": "sw-r07",
        "ttl": "4",
        "port_index": "7",
        "node_name": "node-7",
    }


def test_decode_hex_json_with_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = LOCAL.read_bytes()
    hexfile = tmp_path / "frame.hex"
    hexfile.write_text(
        "# captured on sw-r07\n" + ":".join(f"{b:02X}" for b in raw[:20]) + "\n" + raw[20:].hex(" ")
    )
    assert run(["lldp", "decode", "--hex", "--json", "--template", "r07n{port_index:03d}", str(hexfile)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["node_name"] == "r07n007"
    assert data["port_index"] == 7
    assert data["management_addresses"] == ["192.0.2.1", "fe80::ff:fe00:1201"]


def test_decode_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(LOCAL.read_bytes())))
    assert run(["lldp", "decode", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["system_name"] == "sw-r07"


def test_decode_uses_configured_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[[naming]]\nswitch = "sw-r07"\ntemplate = "node-{port_index}"\noffset = 241\n')
    monkeypatch.setenv("CMT_CONFIG", str(cfg))
    assert run(["lldp", "decode", "--json", str(LOCAL)]) == 0
    assert json.loads(capsys.readouterr().out)["node_name"] == "node-248"


def test_no_port_index_prints_null_name_and_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # chassis MAC, port id MAC, TTL 120, End: nothing to take a port number from
    frame = tmp_path / "mac.bin"
    frame.write_bytes(
        bytes.fromhex("0180c200000e02000000020388cc020704020000000200040703020000000217060200780000")
    )
    assert run(["lldp", "decode", "--json", str(frame)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["node_name"] is None
    assert data["port_index"] is None
    assert "sent no usable port number" in data["node_name_error"]


def test_tcpdump_xx_output_is_accepted() -> None:
    text = (
        "\t0x0000:  0180 c200 000e 0200 0000 1201 88cc 0207  ................\n"
        "\t0x0010:  0402 0000 0012 0104 0c07 4574 6865 726e  ..........Ethern\n"
    )
    assert hex_to_bytes(text, "x")[:6] == bytes.fromhex("0180c200000e")
    assert len(hex_to_bytes(text, "x")) == 32


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"\x01\x80\xc2\x00\x00\x0e" + b"\x00" * 6 + b"\x08\x00", [], "is not LLDP (0x88cc)"),
        (LOCAL.read_bytes()[:40], [], "runs past the end of the frame"),
        (b"01 80 zz", ["--hex"], "line 1: 'z' is not a hex digit"),
        (b"018", ["--hex"], "odd number of hex digits"),
        (b"\xff\xfe", ["--hex"], "not hex text"),
        (LOCAL.read_bytes(), ["--template", "node-{mac}"], "unknown field {mac}"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, args: list[str], message: str
) -> None:
    f = tmp_path / "in"
    f.write_bytes(content)
    assert run(["lldp", "decode", *args, str(f)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert all(line.startswith(("error: ", "hint: ")) for line in err)


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["lldp", "decode", str(tmp_path / "nope.bin")]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_hex_to_bytes_raises_bad_input() -> None:
    with pytest.raises(BadInput):
        hex_to_bytes("0g", "x")


def test_up_interfaces_skips_loopback_bridges_and_down(tmp_path: Path) -> None:
    for name, state, kind, bridge in (
        ("lo", "unknown", "772", False),
        ("eth0", "up", "1", False),
        ("eth1", "down", "1", False),
        ("br0", "up", "1", True),
        ("tap0", "unknown", "1", False),
    ):
        dev = tmp_path / name
        dev.mkdir()
        (dev / "operstate").write_text(state + "\n")
        (dev / "type").write_text(kind + "\n")
        if bridge:
            (dev / "bridge").mkdir()
    (tmp_path / "odd").mkdir()  # no attributes: skipped
    assert _up_interfaces(tmp_path) == ["eth0", "tap0"]


@pytest.mark.parametrize("name", ["lldpd-local.tcpdump-xx.txt", "lldpd-local.tcpdump-XX.txt"])
def test_real_tcpdump_output(name: str) -> None:
    # the summary line is skipped, offsets and the ASCII column dropped
    text = (DATA / name).read_text()
    assert hex_to_bytes(text, name) == LOCAL.read_bytes()
