"""The live reimager's options, read from the kernel command line by one pure function.

The iPXE script passes them as ``cmt.<name>=<value>`` words (docs/dev/contracts.md names them); values may
be double-quoted as the kernel allows. Words that are not ours are ignored; an unknown ``cmt.*`` word is
kept as a warning (printed on the console) rather than an error, so an older live env still boots with a
newer server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import BadInput

MODES = ("reimage", "discover")
DEFAULT_LLDP_TIMEOUT = 35.0


@dataclass(frozen=True)
class OptionHelp:
    key: str
    param: str
    text: str


#: Every option the agent reads, with the parameter its help names.
OPTIONS: tuple[OptionHelp, ...] = (
    OptionHelp("cmt.server", "URL", "boot server base URL, e.g. cmt.server=http://10.0.0.1:8080 (required)"),
    OptionHelp("cmt.mode", "MODE", "reimage (a deployment is planned) or discover (register via LLDP first)"),
    OptionHelp("cmt.deployment", "ID", "deployment this boot carries out (reimage mode)"),
    OptionHelp("cmt.token", "TOKEN", "one-time deployment token sent as the Bearer token on reports"),
    OptionHelp("cmt.disk", "DEVICE", "target disk, e.g. cmt.disk=/dev/vda (default: the plan's disk)"),
    OptionHelp("cmt.image_url", "URL", "image to write instead of the plan's URL (debugging)"),
    OptionHelp("cmt.sha256", "HEX", "expected sha256 of the image file instead of the plan's"),
    OptionHelp("cmt.iface", "NAME", "boot interface name (default: the one whose MAC is cmt.mac/BOOTIF)"),
    OptionHelp("cmt.mac", "MAC", "MAC address of the boot interface, e.g. cmt.mac=52:54:00:12:34:56"),
    OptionHelp("cmt.lldp_timeout", "SECONDS", "how long to wait for an LLDP frame (default 35)"),
    OptionHelp("cmt.debug", "", "flag: verbose console output; stay in the live env after a failure"),
)
_KNOWN = {o.key for o in OPTIONS}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AgentOptions:
    server: str
    mode: str = "reimage"
    deployment: str | None = None
    token: str | None = field(default=None, repr=False)
    disk: str | None = None
    image_url: str | None = None
    sha256: str | None = None
    iface: str | None = None
    mac: str | None = None
    lldp_timeout: float = DEFAULT_LLDP_TIMEOUT
    debug: bool = False
    #: Problems that did not stop parsing (unknown cmt.* words), to show on the console.
    warnings: tuple[str, ...] = ()


def split_cmdline(text: str) -> list[str]:
    """Split like the kernel does: on whitespace, except inside double quotes (which are removed)."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    in_word = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            in_word = True
        elif ch.isspace() and not quoted:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


def normalize_mac(raw: str) -> str:
    """``52-54-00-AB-CD-EF`` or ``52:54:00:ab:cd:ef`` → ``52:54:00:ab:cd:ef``; raises ``BadInput``."""
    mac = raw.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise BadInput(f"{raw!r} is not a MAC address", hint="write six hex pairs, e.g. 52:54:00:12:34:56")
    return mac


def parse_cmdline(text: str) -> AgentOptions:
    """Parse ``/proc/cmdline`` text into ``AgentOptions``.

    Also reads ``BOOTIF=01-<mac>`` (pxelinux/iPXE style) when ``cmt.mac`` is absent.

    :raises BadInput: a required option is missing or a value is malformed; the message names the word.
    """
    raw: dict[str, str | None] = {}
    warnings: list[str] = []
    bootif: str | None = None
    for word in split_cmdline(text):
        key, sep, value = word.partition("=")
        if key == "BOOTIF" and sep:
            # pxelinux prefixes the ARP hardware type ("01-" for Ethernet).
            bootif = value[3:] if re.match(r"^[0-9a-fA-F]{2}-", value) and len(value) == 20 else value
            continue
        if not key.startswith("cmt."):
            continue
        if key not in _KNOWN:
            warnings.append(f"ignoring unknown kernel option {word!r}")
            continue
        raw[key] = value if sep else None

    def value_of(key: str) -> str | None:
        v = raw.get(key)
        if key in raw and v is None and key != "cmt.debug":
            raise BadInput(f"kernel option {key} needs a value", hint=f"write {key}=<{_param(key)}>")
        return v or None

    server = value_of("cmt.server")
    if not server:
        raise BadInput(
            "kernel option cmt.server is missing",
            hint="the iPXE script must pass cmt.server=URL of the boot server",
        )
    if not server.startswith(("http://", "https://")):
        raise BadInput(
            f"cmt.server={server!r} is not an http(s) URL", hint="e.g. cmt.server=http://10.0.0.1:8080"
        )
    deployment = value_of("cmt.deployment")
    token = value_of("cmt.token")
    mode = value_of("cmt.mode") or ("reimage" if deployment else "discover")
    if mode not in MODES:
        raise BadInput(f"cmt.mode={mode!r} is not one of {', '.join(MODES)}", hint="write cmt.mode=reimage")
    if mode == "reimage" and not (deployment and token):
        missing = "cmt.deployment" if not deployment else "cmt.token"
        raise BadInput(
            f"cmt.mode=reimage needs {missing}",
            hint="the reimage iPXE script passes the deployment and token",
        )
    disk = value_of("cmt.disk")
    if disk is not None and not disk.startswith("/dev/"):
        raise BadInput(f"cmt.disk={disk!r} is not a device path", hint="e.g. cmt.disk=/dev/vda")
    sha = value_of("cmt.sha256")
    if sha is not None:
        sha = sha.lower()
        if not _HEX64.match(sha):
            raise BadInput(f"cmt.sha256={sha!r} is not 64 hex digits", hint="give the image file's sha256")
    mac_text = value_of("cmt.mac") or bootif
    mac = normalize_mac(mac_text) if mac_text else None
    timeout_text = value_of("cmt.lldp_timeout")
    lldp_timeout = DEFAULT_LLDP_TIMEOUT
    if timeout_text is not None:
        try:
            lldp_timeout = float(timeout_text)
        except ValueError:
            lldp_timeout = -1.0
        if not 0 < lldp_timeout <= 3600:
            raise BadInput(
                f"cmt.lldp_timeout={timeout_text!r} is not a number of seconds in (0, 3600]",
                hint="e.g. cmt.lldp_timeout=35",
            )
    return AgentOptions(
        server=server.rstrip("/"),
        mode=mode,
        deployment=deployment,
        token=token,
        disk=disk,
        image_url=value_of("cmt.image_url"),
        sha256=sha,
        iface=value_of("cmt.iface"),
        mac=mac,
        lldp_timeout=lldp_timeout,
        debug="cmt.debug" in raw,
        warnings=tuple(warnings),
    )


def _param(key: str) -> str:
    return next(o.param for o in OPTIONS if o.key == key)


def describe_options() -> str:
    """The option table for ``cmt-node agent --help``: each line names the option's parameter."""
    rows = [(f"{o.key}={o.param}" if o.param else o.key, o.text) for o in OPTIONS]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k.ljust(width)}  {t}" for k, t in rows)
