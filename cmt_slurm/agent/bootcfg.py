"""Find the kernel, initrd and command line to kexec in a freshly written root.

Order (first that yields a kernel wins): BLS entries under ``/boot/loader/entries/*.conf``; the default
entry of ``grub.cfg`` (``/boot/grub/grub.cfg``, ``/boot/grub2/grub.cfg``); the Debian-style symlinks
``/boot/vmlinuz`` + ``/boot/initrd.img`` (or ``/vmlinuz`` + ``/initrd.img``) with the command line from
``/etc/kernel/cmdline``. The parsers are pure functions on text; ``find_boot_config`` does the file access.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import NotFound


@dataclass(frozen=True)
class BootEntry:
    """A bootable kernel as the boot loader config names it (paths as written there)."""

    title: str
    kernel: str
    initrds: tuple[str, ...] = ()
    options: str = ""
    version: str = ""
    source: str = ""


@dataclass(frozen=True)
class BootConfig:
    """What ``kexec -l`` needs, with paths resolved inside the mounted root."""

    kernel: Path
    initrd: Path | None
    cmdline: str
    source: str


def parse_bls_entry(text: str, source: str = "") -> BootEntry | None:
    """One Boot Loader Specification entry; ``None`` when it has no ``linux`` line."""
    fields: dict[str, str] = {}
    initrds: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "initrd":
            initrds.extend(value.split())
        elif key == "options":
            options.append(value)
        else:
            fields.setdefault(key, value)
    if "linux" not in fields:
        return None
    return BootEntry(
        title=fields.get("title", fields.get("version", source)),
        kernel=fields["linux"],
        initrds=tuple(initrds),
        options=" ".join(options),
        version=fields.get("version", ""),
        source=source,
    )


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order kernel versions like humans do: 6.12.1 > 6.9.3 > 6.1.0 (digits compare as numbers)."""
    parts = re.findall(r"\d+|[A-Za-z]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def choose_bls(entries: list[BootEntry]) -> BootEntry | None:
    """The newest entry: highest ``version`` (then file name), as systemd-boot sorts by default."""
    if not entries:
        return None
    return max(entries, key=lambda e: (version_key(e.version or e.source), e.source))


_MENUENTRY = re.compile(r"^\s*menuentry\s+(['\"])(?P<title>.*?)\1(?P<rest>.*)\{\s*$")
_SET_DEFAULT = re.compile(r"^\s*set\s+default=(['\"]?)(?P<value>[^'\"]*)\1\s*$")


def parse_grub_cfg(text: str) -> tuple[list[BootEntry], str]:
    """Top-level ``menuentry`` blocks (submenus flattened in order) and the ``set default=`` value."""
    entries: list[BootEntry] = []
    default = "0"
    title: str | None = None
    kernel: str | None = None
    options = ""
    initrds: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        match = _SET_DEFAULT.match(line)
        if match and title is None:
            default = match.group("value")
            continue
        match = _MENUENTRY.match(line)
        if match:
            title, kernel, options, initrds = match.group("title"), None, "", []
            continue
        if title is None:
            continue
        words = line.split(None, 2)
        if words and words[0] in ("linux", "linux16", "linuxefi") and len(words) >= 2:
            kernel = words[1]
            options = words[2] if len(words) > 2 else ""
        elif words and words[0] in ("initrd", "initrd16", "initrdefi"):
            initrds = line.split()[1:]
        elif line == "}":
            if kernel is not None:
                entries.append(BootEntry(title, kernel, tuple(initrds), options, source="grub.cfg"))
            title = None
    return entries, default


def choose_grub(entries: list[BootEntry], default: str, saved_entry: str | None = None) -> BootEntry | None:
    """The entry grub would boot: ``default`` by index or title; ``saved`` uses grubenv's entry."""
    if not entries:
        return None
    wanted = saved_entry if default in ("saved", "${saved_entry}") and saved_entry else default
    if wanted.isdigit():
        index = int(wanted)
        return entries[index] if index < len(entries) else entries[0]
    for entry in entries:
        if entry.title == wanted:
            return entry
    return entries[0]


def parse_grubenv(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def expand_grub_vars(options: str, env: dict[str, str]) -> str:
    """Replace ``$kernelopts`` / ``${kernelopts}`` style references from grubenv (EL8+ BLS entries)."""

    def sub(match: re.Match[str]) -> str:
        return env.get(match.group(1) or match.group(2), "")

    return " ".join(re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, options).split())


def merge_cmdline(base: str, extra: str) -> str:
    """``base`` plus the words of ``extra`` whose key is not already set there (extra wins on conflict)."""
    extra_words = shlex.split(extra) if extra.strip() else []
    keys = {w.partition("=")[0] for w in extra_words}
    kept = [w for w in base.split() if w.partition("=")[0] not in keys]
    return " ".join([*kept, *extra_words])


def resolve_in_root(root: Path, path: str) -> Path | None:
    """A loader path inside the root: as written (``/boot/...``), else relative to ``/boot`` (separate
    boot partitions write ``/vmlinuz-...``). Symlinks are resolved inside the root, never the live env."""
    rel = PurePosixPath(path.split(")", 1)[-1])  # grub may prefix a device: (hd0,gpt2)/vmlinuz
    for candidate in (rel, PurePosixPath("/boot") / rel.relative_to("/") if rel.is_absolute() else rel):
        resolved = _resolve_symlinks(root, PurePosixPath("/") / candidate)
        if resolved is not None and resolved.is_file():
            return resolved
    return None


def _resolve_symlinks(root: Path, path: PurePosixPath, depth: int = 0) -> Path | None:
    if depth > 20:
        return None
    current = PurePosixPath("/")
    for i, part in enumerate(path.parts[1:], start=1):
        nxt = current / part
        host = root / nxt.relative_to("/")
        if host.is_symlink():
            target = PurePosixPath(str(host.readlink()))
            joined = target if target.is_absolute() else current / target
            rest = PurePosixPath(*path.parts[i + 1 :]) if i + 1 < len(path.parts) else None
            full = joined / rest if rest else joined
            return _resolve_symlinks(root, PurePosixPath(_normpath(full)), depth + 1)
        current = nxt
    return root / current.relative_to("/")


def _normpath(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def find_boot_config(root: Path, fallback_cmdline: str = "") -> BootConfig:
    """The kernel to kexec in the root mounted at ``root``.

    :param fallback_cmdline: used when the config names no options (e.g. ``root=UUID=... ro``).
    :raises NotFound: no BLS entry, grub entry or vmlinuz symlink names a kernel that exists.
    """
    grubenv: dict[str, str] = {}
    for env_path in ("boot/grub2/grubenv", "boot/grub/grubenv"):
        if (root / env_path).is_file():
            grubenv = parse_grubenv((root / env_path).read_text(errors="replace"))
            break
    candidates: list[BootEntry] = []
    entries_dir = root / "boot/loader/entries"
    if entries_dir.is_dir():
        bls = [
            e
            for f in sorted(entries_dir.glob("*.conf"))
            if (e := parse_bls_entry(f.read_text(errors="replace"), f.name)) is not None
        ]
        chosen = choose_bls(bls)
        if chosen:
            candidates.append(chosen)
    for cfg in ("boot/grub/grub.cfg", "boot/grub2/grub.cfg"):
        if (root / cfg).is_file():
            entries, default = parse_grub_cfg((root / cfg).read_text(errors="replace"))
            chosen = choose_grub(entries, default, grubenv.get("saved_entry"))
            if chosen:
                candidates.append(chosen)
    for entry in candidates:
        kernel = resolve_in_root(root, entry.kernel)
        if kernel is None:
            continue
        initrds = [p for p in (expand_grub_vars(i, grubenv) for i in entry.initrds) if p]
        initrd = resolve_in_root(root, initrds[0]) if initrds else None
        options = expand_grub_vars(entry.options, grubenv) or fallback_cmdline
        return BootConfig(kernel, initrd, options, f"{entry.source or 'grub.cfg'}: {entry.title}")
    for kname, iname in (("/boot/vmlinuz", "/boot/initrd.img"), ("/vmlinuz", "/initrd.img")):
        kernel = resolve_in_root(root, kname)
        if kernel is not None:
            cmdline_file = root / "etc/kernel/cmdline"
            options = cmdline_file.read_text().strip() if cmdline_file.is_file() else ""
            return BootConfig(kernel, resolve_in_root(root, iname), options or fallback_cmdline, kname)
    raise NotFound(
        f"no kernel found in the new root ({root}): no BLS entry, grub.cfg entry or /boot/vmlinuz",
        hint="the image must ship /boot/loader/entries/*.conf, a grub.cfg, or /boot/vmlinuz + initrd.img",
    )
