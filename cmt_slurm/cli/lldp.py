"""``cmt lldp decode``: read one captured LLDP frame and show the switch, port and resulting node name."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from ..agent.lldp import parse_lldp
from ..config import NamingRule
from ..errors import BadInput, CmtError, NoMatch
from ..naming import node_name, validate_template
from .context import CliContext, emit, pass_cli

MAX_INPUT = 1 << 20
_OFFSET = re.compile(r"^\s*0x[0-9a-fA-F]+:\s+")  # tcpdump -xx / -XX line prefixes


def hex_to_bytes(text: str, where: str) -> bytes:
    """Hex text to bytes: whitespace and ``:``/``-`` separators, ``#`` comments and tcpdump offsets allowed.

    :raises BadInput: naming the first character that is not hex.
    """
    digits: list[str] = []
    lines = text.splitlines()
    # tcpdump -xx/-XX output: only the offset lines hold the frame (the others are packet summaries)
    tcpdump = any(_OFFSET.match(line) for line in lines)
    for lineno, raw_line in enumerate(lines, 1):
        line = raw_line.split("#", 1)[0]
        if tcpdump and not _OFFSET.match(line):
            continue
        if tcpdump:
            # hex groups, then (with -X) an ASCII column after two spaces
            line = _OFFSET.sub("", line).strip().split("  ", 1)[0]
        cleaned = re.sub(r"[\s:.-]", "", line)
        bad = re.search(r"[^0-9a-fA-F]", cleaned)
        if bad:
            raise BadInput(
                f"{where}: line {lineno}: {bad.group()!r} is not a hex digit",
                hint="give hex bytes like '01 80 c2 00 00 0e ...' (or drop --hex for a binary file)",
            )
        digits.append(cleaned)
    joined = "".join(digits)
    if len(joined) % 2:
        raise BadInput(f"{where}: odd number of hex digits ({len(joined)})", hint="each byte is two digits")
    return bytes.fromhex(joined)


def read_frame(path: str, as_hex: bool) -> bytes:
    where = "stdin" if path == "-" else path
    if path == "-":
        raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    else:
        try:
            with Path(path).open("rb") as fh:
                raw = fh.read(MAX_INPUT + 1)
        except OSError as exc:
            raise BadInput(
                f"{where}: {exc.strerror or exc}", hint="pass a file with one captured frame"
            ) from None
    if len(raw) > MAX_INPUT:
        raise BadInput(f"{where}: larger than {MAX_INPUT} bytes; one LLDP frame is far smaller")
    if not as_hex:
        return raw
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadInput(f"{where}: not hex text", hint="drop --hex for a binary capture") from None
    return hex_to_bytes(text, where)


@click.group("lldp")
def lldp() -> None:
    """Decode LLDP frames and test naming templates."""


def _show(cli: CliContext, frame: bytes, template: str | None, as_json: bool, **extra: Any) -> None:
    info = parse_lldp(frame)
    rules: tuple[NamingRule, ...] = ()
    if template is not None:
        validate_template(template)
        default = template
    else:
        rules, default = cli.settings.naming, cli.settings.default_name_template
    data: dict[str, Any] = {**extra, **info.as_dict()}
    try:
        data["node_name"] = node_name(info, rules, default)
    except CmtError as exc:
        if info.port_index is not None:
            raise  # a bad template: the operator must fix it
        data["node_name"] = None
        data["node_name_error"] = exc.message

    def human(d: dict[str, Any]) -> None:
        for key in (*extra, *SHOWN):
            value = d[key]
            click.echo(f"{key + ':':20} {'-' if value is None else value}")
        if d.get("node_name_error"):
            click.echo(f"note: {d['node_name_error']}", err=True)

    emit(data, as_json, human)


SHOWN = (
    "chassis_id",
    "chassis_id_subtype",
    "port_id",
    "port_id_subtype",
    "port_description",
    "system_name",
    "ttl",
    "port_index",
    "node_name",
)
_TEMPLATE_HELP = "Name template to apply, e.g. 'node-{port_index}' (default: the configured naming rules)."


@lldp.command("decode")
@click.argument("file", metavar="FILE")
@click.option("--hex", "as_hex", is_flag=True, help="FILE holds hex text (spaces, colons, tcpdump -xx).")
@click.option("--template", help=_TEMPLATE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def decode(cli: CliContext, file: str, as_hex: bool, template: str | None, as_json: bool) -> None:
    """Decode one LLDP frame from FILE ('-' for stdin): a whole Ethernet frame or a bare LLDPDU.

    Prints the switch (chassis id, system name), the port (id, description), the port index taken
    from them and the node name the template or the configured naming rules give it.
    """
    _show(cli, read_frame(file, as_hex), template, as_json)


def _up_interfaces(sys_net: Path = Path("/sys/class/net")) -> list[str]:
    """Interfaces that are up, except loopback and virtual bridges/bonds' own devices."""
    names = []
    for dev in sorted(sys_net.iterdir()):
        try:
            up = (dev / "operstate").read_text().strip() in ("up", "unknown")
            loopback = (dev / "type").read_text().strip() == "772"
        except OSError:
            continue
        if up and not loopback and not (dev / "bridge").exists():
            names.append(dev.name)
    return names


@lldp.command("capture")
@click.argument("interfaces", nargs=-1, metavar="[IFACE]...")
@click.option(
    "--timeout", default=35.0, show_default=True, help="Seconds to wait (switches send every 30 s)."
)
@click.option("--save", type=click.Path(path_type=Path), help="Also write the raw frame to this file.")
@click.option("--template", help=_TEMPLATE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def capture(  # noqa: PLR0917 - one parameter per flag, as click passes them
    cli: CliContext,
    interfaces: tuple[str, ...],
    timeout: float,
    save: Path | None,
    template: str | None,
    as_json: bool,
) -> None:
    """Wait for one LLDP frame on IFACE (default: every interface that is up) and decode it.

    Needs root (a raw packet socket). The frame saved with --save can be given to `cmt lldp decode`.
    """
    from ..agent.lldp_capture import LldpCapture  # noqa: PLC0415 - only this command opens sockets

    names = list(interfaces) or _up_interfaces()
    with LldpCapture(names) as cap:
        got = cap.receive(timeout)
    if got is None:
        raise NoMatch(
            f"no LLDP frame on {', '.join(names)} within {timeout:g} s",
            hint="check the cabling and that LLDP is enabled on the switch port",
        )
    if save is not None:
        save.write_bytes(got.frame)
    _show(cli, got.frame, template, as_json, interface=got.ifname)
