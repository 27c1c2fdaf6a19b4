"""``cmt lldp decode``: read one captured LLDP frame and show the switch, port and resulting node name."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from ..agent.lldp import parse_lldp
from ..config import NamingRule
from ..errors import BadInput, CmtError
from ..naming import node_name, validate_template
from .context import CliContext, emit, pass_cli

MAX_INPUT = 1 << 20
_OFFSET = re.compile(r"^\s*0x[0-9a-fA-F]+:\s+")  # tcpdump -xx / -XX line prefixes


def hex_to_bytes(text: str, where: str) -> bytes:
    """Hex text to bytes: whitespace and ``:``/``-`` separators, ``#`` comments and tcpdump offsets allowed.

    :raises BadInput: naming the first character that is not hex.
    """
    digits: list[str] = []
    for lineno, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.split("#", 1)[0]
        if _OFFSET.match(line):
            # a tcpdump line: hex groups, then (with -X) an ASCII column after two spaces
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


@lldp.command("decode")
@click.argument("file", metavar="FILE")
@click.option("--hex", "as_hex", is_flag=True, help="FILE holds hex text (spaces, colons, tcpdump -xx).")
@click.option(
    "--template",
    help="Name template to apply, e.g. 'node-{port_index}' (default: the configured naming rules).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def decode(cli: CliContext, file: str, as_hex: bool, template: str | None, as_json: bool) -> None:
    """Decode one LLDP frame from FILE ('-' for stdin): a whole Ethernet frame or a bare LLDPDU.

    Prints the switch (chassis id, system name), the port (id, description), the port index taken
    from them and the node name the template or the configured naming rules give it.
    """
    info = parse_lldp(read_frame(file, as_hex))
    rules: tuple[NamingRule, ...] = ()
    if template is not None:
        validate_template(template)
        default = template
    else:
        rules, default = cli.settings.naming, cli.settings.default_name_template
    data: dict[str, Any] = info.as_dict()
    try:
        data["node_name"] = node_name(info, rules, default)
    except CmtError as exc:
        if info.port_index is not None:
            raise  # a bad template: the operator must fix it
        data["node_name"] = None
        data["node_name_error"] = exc.message

    def human(d: dict[str, Any]) -> None:
        for key in (
            "chassis_id",
            "chassis_id_subtype",
            "port_id",
            "port_id_subtype",
            "port_description",
            "system_name",
            "ttl",
            "port_index",
            "node_name",
        ):
            value = d[key]
            click.echo(f"{key + ':':20} {'-' if value is None else value}")
        if d.get("node_name_error"):
            click.echo(f"note: {d['node_name_error']}", err=True)

    emit(data, as_json, human)
