"""What each boot mode's iPXE script is rendered from: frozen, validated contexts. Pure.

Every value that can come from the catalogue, the database or a request is checked when the context is
built, so that no value can add an iPXE command, expand an iPXE setting or split a kernel argument:
no control characters (newline, CR, tab...), no ``${``, no whitespace or quotes where iPXE would split
or the kernel would unquote, and narrow character sets for names, tokens, digests and devices. iPXE
(Debian 12 ships a 2019 snapshot) has no quoting in its command lines, so anything that would need
quoting is refused rather than quoted.

Each context lists the template variables it provides (``variables()``), with an example, in its
docstring; templates get those and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..errors import BadInput
from ..patterns import HOSTNAME as _HOSTNAME
from ..patterns import MAC as _MAC

#: The query iPXE fills in when it (re)fetches its script; iPXE expands the ``${...}`` settings itself.
BOOT_QUERY = "mac=${net0/mac}&uuid=${uuid}&serial=${serial:uristring}&arch=${buildarch}"
#: Linux's x86 COMMAND_LINE_SIZE less a margin for what the bootloader adds.
MAX_CMDLINE = 2000
ON_FAILURE = ("retry", "exit", "reboot")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3986 characters, less `$` (iPXE settings), quotes and backslash (kernel command-line quoting).
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DEVICE = re.compile(r"/dev/[A-Za-z0-9/_.:-]{1,200}")
_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
# A kernel argument: `word` or `key=value`, no spaces, quotes, `$` or backslash.
_KERNEL_ARG = re.compile(r"[A-Za-z0-9_.,:/=@+%~\[\]-]{1,512}")
_DRIVE = re.compile(r"0x[0-9a-fA-F]{2}")
# Free text shown with `echo`: nothing iPXE or a terminal would interpret.
_REASON = re.compile(r"[A-Za-z0-9 .,:;()/_=+-]{1,200}")


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"iPXE context: {name} must be a string, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise BadInput(
            f"iPXE context: {name} contains a control character (newline, CR, tab...)",
            hint="a value in an iPXE script must be one line; fix the catalogue entry or node record",
        )
    if "${" in value:
        raise BadInput(
            f"iPXE context: {name} contains '${{', which iPXE would expand as a setting",
            hint="remove '${' from the value",
        )
    if "&&" in value or "||" in value:
        raise BadInput(
            f"iPXE context: {name} contains '&&' or '||', which iPXE reads as command operators",
            hint="remove them from the value",
        )
    return value


def _check(value: object, name: str, pattern: re.Pattern[str], what: str) -> str:
    text = _check_text(value, name)
    if not pattern.fullmatch(text):
        raise BadInput(f"iPXE context: {name}={text!r} is not {what}", hint=f"give {what}")
    return text


def _url(value: object, name: str) -> str:
    return _check(value, name, _URL, "an http(s) URL without spaces, quotes, '$' or backslashes")


def _int(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadInput(f"iPXE context: {name}={value!r} must be an integer {low}..{high}")
    return value


def _kernel_args(args: object, name: str) -> tuple[str, ...]:
    if isinstance(args, str):
        args = tuple(args.split())
    if not isinstance(args, tuple | list):
        raise BadInput(f"iPXE context: {name} must be a list of kernel arguments")
    for arg in args:
        _check(arg, name, _KERNEL_ARG, "kernel arguments like 'console=ttyS0,115200n8' (no spaces or quotes)")
    return tuple(args)


@dataclass(frozen=True, kw_only=True)
class _Base:
    """Fields every mode has.

    - ``server_url``: the boot server as nodes reach it, e.g. ``http://10.0.0.1:8080``
    - ``retries``: attempts per download before the error label, e.g. ``3``
    - ``retry_delay``: seconds between attempts, e.g. ``5``
    - ``on_failure``: after the last attempt: ``retry`` (wait ``failure_delay`` s, then ask the server
      again), ``exit`` (return to the firmware: its next boot device) or ``reboot``
    - ``failure_delay``: seconds before ``retry``, e.g. ``30``
    """

    mode: ClassVar[str]
    server_url: str
    retries: int = 3
    retry_delay: int = 5
    on_failure: str = "retry"
    failure_delay: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "server_url", _url(self.server_url, "server_url").rstrip("/"))
        _int(self.retries, "retries", 1, 20)
        _int(self.retry_delay, "retry_delay", 0, 600)
        _int(self.failure_delay, "failure_delay", 1, 3600)
        if self.on_failure not in ON_FAILURE:
            raise BadInput(
                f"iPXE context: on_failure={self.on_failure!r} is not one of {', '.join(ON_FAILURE)}"
            )

    @property
    def template(self) -> str:
        return f"{self.mode}.ipxe.j2"

    def variables(self) -> dict[str, Any]:
        """The template variables: every field, plus ``mode`` and ``boot_url`` (the script's own URL,
        e.g. ``http://10.0.0.1:8080/boot/ipxe?mac=${net0/mac}&uuid=${uuid}&...``)."""
        # not dataclasses.asdict: its deep copy is most of a render's cost, and every value is immutable
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["mode"] = self.mode
        data["boot_url"] = f"{self.server_url}/boot/ipxe?{BOOT_QUERY}"
        return data


@dataclass(frozen=True, kw_only=True)
class LocalBoot(_Base):
    """Boot the installed disk.

    Variables (besides those of every mode: ``server_url``, ``retries``, ``retry_delay``, ``on_failure``,
    ``failure_delay``, ``mode`` = ``local``, ``boot_url``):

    - ``node``: the node's name, e.g. ``node-7``
    - ``image``: the image installed there, e.g. ``debian12-2026.11`` (``""`` when unknown)
    - ``method``: ``exit`` (default) hands control back to the firmware, which boots its next boot
      device; it works on BIOS and UEFI when the boot order is network first, then disk.
      ``sanboot`` boots BIOS drive ``drive`` directly (``sanboot --no-describe --drive 0x80``), for
      BIOS machines whose firmware does not fall through to the disk after a network boot; it does
      not work under UEFI. A failed sanboot falls back to ``exit``.
    - ``drive``: the BIOS drive for ``sanboot``, e.g. ``0x80``
    """

    mode: ClassVar[str] = "local"
    node: str
    image: str = ""
    method: str = "exit"
    drive: str = "0x80"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.node, "node", _HOSTNAME, "a host name")
        if self.image:
            _check(self.image, "image", _IMAGE_NAME, "a catalogue image name")
        if self.method not in ("exit", "sanboot"):
            raise BadInput(f"iPXE context: method={self.method!r} is not one of exit, sanboot")
        _check(self.drive, "drive", _DRIVE, "a BIOS drive number like 0x80")


@dataclass(frozen=True, kw_only=True)
class _LiveBoot(_Base):
    kernel_url: str
    initrd_url: str
    extra_args: tuple[str, ...] = ()
    #: seconds a download may make no progress before the attempt counts as failed
    fetch_timeout: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        _int(self.fetch_timeout, "fetch_timeout", 1, 600)
        _url(self.kernel_url, "kernel_url")
        _url(self.initrd_url, "initrd_url")
        object.__setattr__(self, "extra_args", _kernel_args(self.extra_args, "extra_args"))
        cmdline = self.cmdline
        if len(cmdline) > MAX_CMDLINE:
            raise BadInput(
                f"iPXE context: kernel command line is {len(cmdline)} characters, more than {MAX_CMDLINE}",
                hint="shorten the URLs or the extra kernel arguments",
            )

    def cmdline_words(self) -> list[str]:
        raise NotImplementedError

    @property
    def cmdline(self) -> str:
        # `initrd=` names the initrd for UEFI's EFI-stub loader; BIOS ignores it. `${netX/mac}` is
        # expanded by iPXE: the MAC of the interface it booted from.
        return " ".join(["initrd=initrd.img", *self.cmdline_words(), "cmt.mac=${netX/mac}", *self.extra_args])

    def variables(self) -> dict[str, Any]:
        data = super().variables()
        data["cmdline"] = self.cmdline
        data["extra_args"] = list(self.extra_args)
        return data


@dataclass(frozen=True, kw_only=True)
class ReimageBoot(_LiveBoot):
    """Boot the live reimager to write ``image_url`` to the disk.

    Variables (besides those of every mode):

    - ``mode``: ``reimage``
    - ``node``: e.g. ``node-7``
    - ``image``: the catalogue image being written, e.g. ``debian13-2026.11``
    - ``kernel_url``, ``initrd_url``: the live env, e.g. ``http://10.0.0.1:8080/boot/live/vmlinuz``
    - ``deployment``: the deployment id, e.g. ``42``
    - ``token``: the one-time deployment token, ``[A-Za-z0-9_-]``, e.g. ``Zm9v-YmFy_0``
    - ``disk``: the target disk, e.g. ``/dev/vda``, or ``""`` (the agent uses the plan's)
    - ``image_url``: where the agent reads the image, e.g. ``http://10.0.0.1:8080/images/debian13-2026.11``
    - ``image_sha256``: 64 lowercase hex digits
    - ``extra_args``: more kernel arguments, e.g. ``["console=ttyS0,115200n8"]``
    - ``fetch_timeout``: seconds without progress before a download attempt fails (iPXE's
      ``--timeout``, in ms there), e.g. ``30``: a stalled server costs an attempt, not a hung node
    - ``cmdline``: the whole kernel command line, e.g. ``initrd=initrd.img cmt.server=http://10.0.0.1:8080
      cmt.mode=reimage cmt.deployment=42 cmt.token=... cmt.disk=/dev/vda cmt.image_url=...
      cmt.sha256=... cmt.mac=${netX/mac} console=ttyS0,115200n8``
    """

    mode: ClassVar[str] = "reimage"
    node: str
    image: str
    #: an int id is accepted and stored as its decimal text
    deployment: str | int
    token: str = field(repr=False)
    image_url: str
    image_sha256: str
    disk: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.deployment, int) and not isinstance(self.deployment, bool):
            object.__setattr__(self, "deployment", str(self.deployment))
        _check(self.node, "node", _HOSTNAME, "a host name")
        _check(self.image, "image", _IMAGE_NAME, "a catalogue image name")
        _check(self.deployment, "deployment", _TOKEN, "a deployment id")
        _check(self.token, "token", _TOKEN, "a token of letters, digits, '_' and '-'")
        _url(self.image_url, "image_url")
        _check(self.image_sha256, "image_sha256", _SHA256, "64 lowercase hex digits")
        if self.disk:
            _check(self.disk, "disk", _DEVICE, "a device path like /dev/vda")
        super().__post_init__()

    def cmdline_words(self) -> list[str]:
        words = [
            f"cmt.server={self.server_url}",
            "cmt.mode=reimage",
            f"cmt.deployment={self.deployment}",
            f"cmt.token={self.token}",
        ]
        if self.disk:
            words.append(f"cmt.disk={self.disk}")
        return [*words, f"cmt.image_url={self.image_url}", f"cmt.sha256={self.image_sha256}"]


@dataclass(frozen=True, kw_only=True)
class DiscoverBoot(_LiveBoot):
    """Boot the live env in discovery mode: it reads LLDP, registers, and the server names the node.

    Variables (besides those of every mode):

    - ``mode``: ``discover``
    - ``mac``: the MAC that asked, e.g. ``52:54:00:12:34:56`` (``""`` when unknown)
    - ``kernel_url``, ``initrd_url``, ``extra_args``, ``fetch_timeout``: as for ``reimage``
    - ``cmdline``: e.g. ``initrd=initrd.img cmt.server=http://10.0.0.1:8080 cmt.mode=discover
      cmt.mac=${netX/mac} console=ttyS0,115200n8``
    """

    mode: ClassVar[str] = "discover"
    mac: str = ""

    def __post_init__(self) -> None:
        if self.mac:
            object.__setattr__(self, "mac", _check(str(self.mac).lower(), "mac", _MAC, "a MAC address"))
        super().__post_init__()

    def cmdline_words(self) -> list[str]:
        return [f"cmt.server={self.server_url}", "cmt.mode=discover"]


@dataclass(frozen=True, kw_only=True)
class UnknownMac(_Base):
    """A MAC the server does not know, at a site that does not auto-discover: show it, then ask again.

    Variables (besides those of every mode; ``on_failure`` is not used):

    - ``mode``: ``unknown``
    - ``mac``: e.g. ``52:54:00:12:34:56``
    - ``retry_delay``: seconds before asking the server again, e.g. ``60``
    """

    mode: ClassVar[str] = "unknown"
    mac: str
    retry_delay: int = 60

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", _check(str(self.mac).lower(), "mac", _MAC, "a MAC address"))
        super().__post_init__()
        _int(self.retry_delay, "retry_delay", 1, 3600)  # it asks again forever: never in a tight loop


@dataclass(frozen=True, kw_only=True)
class WaitBoot(_Base):
    """The node must wait (e.g. admission control: too many reimages at once): say why, ask again later.

    Variables (besides those of every mode):

    - ``mode``: ``wait``
    - ``node``: e.g. ``node-7``
    - ``reason``: one line, e.g. ``4 reimages are transferring; waiting for a slot``
    - ``retry_delay``: seconds before asking again, e.g. ``15``
    """

    mode: ClassVar[str] = "wait"
    node: str
    reason: str = ""
    retry_delay: int = 15

    def __post_init__(self) -> None:
        _check(self.node, "node", _HOSTNAME, "a host name")
        if self.reason:
            _check(self.reason, "reason", _REASON, "one line of plain text (letters, digits, .,:;()/_=+-)")
        super().__post_init__()
        _int(self.retry_delay, "retry_delay", 1, 3600)


BootContext = LocalBoot | ReimageBoot | DiscoverBoot | UnknownMac | WaitBoot
