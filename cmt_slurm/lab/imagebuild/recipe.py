"""Image recipes: ``images/recipes/<name>/recipe.toml`` plus the shared hooks and package list."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ...errors import BadInput, NotFound

#: Kernel options every test image boots with (serial console, quiet boot: the notes measured ~2 s saved).
DEFAULT_KERNEL_ARGS = "console=ttyS0,115200 quiet systemd.show_status=0"


@dataclass(frozen=True)
class Recipe:
    name: str
    directory: Path
    shared: Path
    os: str
    os_name: str
    os_version: str
    suite: str
    mirrors: tuple[str, ...]
    packages: tuple[str, ...]
    apt_preferences: str | None
    kernel_args: str


def recipes_dir(repo: Path) -> Path:
    return repo / "images" / "recipes"


def available(repo: Path) -> list[str]:
    root = recipes_dir(repo)
    return sorted(p.parent.name for p in root.glob("*/recipe.toml"))


def load_recipe(repo: Path, name: str) -> Recipe:
    """Read and check ``images/recipes/<name>/recipe.toml``; BadInput names the file and the key."""
    directory = recipes_dir(repo) / name
    path = directory / "recipe.toml"
    if not path.is_file():
        raise NotFound(
            f"no image recipe {name!r} ({path} does not exist)",
            hint=f"known recipes: {', '.join(available(repo)) or 'none'}",
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: {exc}", hint="fix the TOML syntax") from exc
    problems = []
    for key in ("os", "os_name", "os_version", "suite"):
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key}: a non-empty string is required")
    for key in ("mirrors", "packages"):
        if not isinstance(data.get(key, []), list) or not all(isinstance(x, str) for x in data.get(key, [])):
            problems.append(f"{key}: a list of strings is required")
    if not data.get("mirrors"):
        problems.append("mirrors: at least one apt source line is required")
    prefs = data.get("apt_preferences")
    if prefs is not None and not (directory / str(prefs)).is_file():
        problems.append(f"apt_preferences: {directory / str(prefs)} does not exist")
    if problems:
        raise BadInput(f"{path}: " + "; ".join(problems), hint="see images/recipes/debian12/recipe.toml")
    shared = recipes_dir(repo) / "shared"
    base_packages = [
        ln.split("#", 1)[0].strip()
        for ln in (shared / "packages.txt").read_text().splitlines()
        if ln.split("#", 1)[0].strip()
    ]
    return Recipe(
        name=name,
        directory=directory,
        shared=shared,
        os=data["os"],
        os_name=data["os_name"],
        os_version=data["os_version"],
        suite=data["suite"],
        mirrors=tuple(data["mirrors"]),
        packages=tuple(dict.fromkeys([*base_packages, *data.get("packages", [])])),
        apt_preferences=str(prefs) if prefs is not None else None,
        kernel_args=str(data.get("kernel_args", DEFAULT_KERNEL_ARGS)),
    )
