"""Settings: one frozen dataclass, loaded from ``cmt.toml`` and ``CMT_*`` environment variables.

Precedence, lowest first: defaults < TOML file < environment < command-line flags (the CLI passes flags as
``overrides``). Everything is validated once, at start, with messages that name the key and the fix. No
module-level settings object exists: whoever needs settings is handed them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, ConfigError

ENV_PREFIX = "CMT_"
DEFAULT_CONFIG_PATH = Path("/etc/cmt/cmt.toml")


@dataclass(frozen=True)
class NamingRule:
    """Names nodes seen on one switch: ``template`` gets ``port_index`` (offset added) and ``switch``."""

    switch: str
    template: str = "node-{port_index}"
    offset: int = 0
    first_port: int | None = None
    last_port: int | None = None


@dataclass(frozen=True)
class Settings:
    #: Where the server keeps its SQLite database, uploaded images and live env (unless set separately).
    data_dir: Path = Path("/var/lib/cmt")
    #: SQLAlchemy URL; empty means ``sqlite:///<data_dir>/cmt.db``.
    db_url: str = ""
    #: Directory of image manifests (``*.toml``).
    catalogue_dir: Path = Path("/etc/cmt/catalogue")
    #: Address the boot server listens on.
    bind: str = "127.0.0.1:8080"
    #: URL nodes and hooks use to reach the boot server (what goes into iPXE scripts and kernel args).
    public_url: str = "http://127.0.0.1:8080"
    #: gunicorn worker processes.
    workers: int = 2
    #: gunicorn threads per worker (the SSE stream holds one per client).
    threads: int = 8
    #: Directory holding the live reimager's ``vmlinuz`` and ``initrd.img``; empty means ``<data_dir>/live``.
    live_dir: Path | None = None
    #: Operator iPXE template directory; files there override the shipped templates of the same name.
    template_dir: Path | None = None
    #: How image bytes reach nodes: served by us, via nginx ``X-Accel-Redirect``, or the manifest URL as is.
    image_serving: str = "direct"
    #: Prefix nginx maps to the catalogue directory in ``x-accel`` mode.
    x_accel_prefix: str = "/protected-images/"
    #: How the iPXE ``local`` script boots the installed disk: ``exit`` (back to the firmware's next boot
    #: entry; BIOS and UEFI) or ``sanboot`` (BIOS drive 0x80, for firmware that does not fall through).
    local_boot: str = "exit"
    #: What an unknown MAC gets: the live env in discovery mode, or a script that shows its MAC and retries.
    unknown_mac: str = "discover"
    #: Deployments allowed in the transfer stage at once (image bandwidth is the limit).
    max_concurrent_reimages: int = 4
    #: Lifetime of a one-time deployment token, seconds.
    deployment_token_ttl: int = 3600
    #: Bandwidth one node gets from the image source, MB/s; sizes Slurm's ResumeTimeout.
    image_bandwidth_mbps: float = 100.0
    #: Extra seconds a reimage needs besides the transfer (firmware, live boot, grow, kexec, OS boot).
    reimage_overhead_s: int = 300
    #: Name for nodes on switches without a rule.
    default_name_template: str = "node-{port_index}"
    naming: tuple[NamingRule, ...] = ()
    #: Slurm integration: ``helpers`` (node_features/helpers, Slurm >= 22.05) or ``prolog``.
    slurm_mode: str = "helpers"
    #: After a job: ``keep`` the node's image, or return it to the site ``default`` image when idle.
    epilog_policy: str = "keep"
    #: Where the cmt CLI and the Slurm hooks reach the server, and the admin token they present.
    server_url: str = "http://127.0.0.1:8080"
    token: str = field(default="", repr=False)
    #: Installed path of ``cmt-node`` on nodes (goes into helpers.conf and slurm.conf).
    node_command: str = "/usr/local/bin/cmt-node"
    #: Installed path of ``cmt`` on the controller (PrologSlurmctld, Epilog).
    cmt_command: str = "/usr/local/bin/cmt"
    #: JSON list of files written into every new root (munge key, slurmd defaults), in the plan's
    #: ``files`` format (docs/dev/contracts.md); read at every plan. Unset: none.
    site_files: Path | None = None

    @property
    def effective_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'cmt.db'}"

    @property
    def effective_live_dir(self) -> Path:
        return self.live_dir or self.data_dir / "live"


_CHOICES: dict[str, tuple[str, ...]] = {
    "image_serving": ("direct", "x-accel", "external"),
    "unknown_mac": ("discover", "wait"),
    "local_boot": ("exit", "sanboot"),
    "slurm_mode": ("helpers", "prolog"),
    "epilog_policy": ("keep", "default"),
}
_POSITIVE = ("workers", "threads", "max_concurrent_reimages", "deployment_token_ttl", "image_bandwidth_mbps")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _convert(key: str, raw: Any, typ: Any, where: str) -> Any:
    """Turn a TOML value or an environment string into the field's type, or raise a one-line error."""
    optional = False
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        optional, typ = True, args[0]
    if optional and (raw is None or raw == ""):
        return None
    try:
        if typ is Path:
            if not isinstance(raw, str):
                raise TypeError
            return Path(raw)
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return raw.lower() in ("1", "true", "yes", "on")
            raise TypeError
        if typ is int:
            if isinstance(raw, bool):
                raise TypeError
            return int(raw)
        if typ is float:
            if isinstance(raw, bool):
                raise TypeError
            return float(raw)
        if typ is str:
            if not isinstance(raw, str):
                raise TypeError
            return raw
    except (TypeError, ValueError):
        pass
    else:
        raise ConfigError(f"{where}: unsupported setting type")
    want = getattr(typ, "__name__", str(typ))
    raise ConfigError(f"{where}: {raw!r} is not a valid {want}", hint=f"set {key} to a {want} value")


def _naming_rules(raw: Any, source: str) -> tuple[NamingRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: naming: must be an array of tables", hint="write [[naming]] sections")
    rules = []
    allowed = {f.name for f in dataclasses.fields(NamingRule)}
    for i, item in enumerate(raw):
        where = f"{source}: naming[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a table", hint="write [[naming]] sections with switch = ...")
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}",
                hint=f"allowed keys: {', '.join(sorted(allowed))}",
            )
        if not isinstance(item.get("switch"), str) or not item["switch"]:
            raise ConfigError(f"{where}: switch: required", hint="name the switch as its LLDP system name")
        try:
            rules.append(NamingRule(**item))
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return tuple(rules)


def _validate(s: Settings) -> None:
    for key, choices in _CHOICES.items():
        value = getattr(s, key)
        if value not in choices:
            raise ConfigError(
                f"{key}: {value!r} is not one of {', '.join(choices)}", hint=f"set {key} to one of them"
            )
    for key in _POSITIVE:
        if getattr(s, key) <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {getattr(s, key)}")
    for key in ("public_url", "server_url"):
        url = getattr(s, key)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{key}: {url!r} is not an http(s) URL", hint=f"e.g. {key} = 'http://10.0.0.1:8080'"
            )
    host, sep, port = s.bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"bind: {s.bind!r} is not HOST:PORT", hint="e.g. bind = '0.0.0.0:8080'")
    # naming imports this module (for NamingRule), so its template check is imported here, at use.
    from .naming import validate_template  # noqa: PLC0415

    for rule in (*s.naming, NamingRule(switch="*", template=s.default_name_template)):
        try:
            validate_template(rule.template)
        except BadInput as exc:
            raise ConfigError(f"naming: {exc.message}", hint=exc.hint) from None


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated settings.

    ``path`` defaults to ``$CMT_CONFIG``, else ``/etc/cmt/cmt.toml`` if it exists. ``overrides`` are
    command-line flags (already typed; ``None`` values are ignored).

    :raises ConfigError: with the file or variable and key at fault.
    """
    env = os.environ if env is None else env
    types_ = _field_types()
    values: dict[str, Any] = {}

    if path is None and env.get("CMT_CONFIG"):
        path = Path(env["CMT_CONFIG"])
        if not path.is_file():
            raise ConfigError(
                f"CMT_CONFIG: {path} does not exist", hint="point CMT_CONFIG at a cmt.toml file"
            )
    elif path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no such file", hint="create it or pass --config with a path that exists"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path}: not valid TOML: {exc}", hint="fix the syntax at the line shown"
            ) from None
        for key, raw in data.items():
            if key == "naming":
                values["naming"] = _naming_rules(raw, str(path))
                continue
            if key not in types_:
                raise ConfigError(
                    f"{path}: unknown setting {key!r}", hint="see docs/configuration.md for the keys"
                )
            values[key] = _convert(key, raw, types_[key], f"{path}: {key}")

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "CMT_CONFIG" or name.startswith("CMT_TEST_"):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in types_ or key == "naming":
            continue  # other tools' CMT_* variables are not ours to reject
        values[key] = _convert(key, raw, types_[key], name)

    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in types_:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = (
            raw if not isinstance(raw, str) else _convert(key, raw, types_[key], f"--{key.replace('_', '-')}")
        )

    settings = Settings(**values)
    _validate(settings)
    return settings
