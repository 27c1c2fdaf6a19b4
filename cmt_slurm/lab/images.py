"""Built artefacts the lab, the demo and the tests boot: the live env and the test OS images.

Public API (everything slow is cached, see :mod:`.imagebuild.cache`):

- ``ensure_live_env(force=False) -> LiveEnv``: kernel + combined initrd (cached base + current cmt_slurm
  overlay) in one directory holding ``vmlinuz`` and ``initrd.img``, as the boot server's ``live_dir`` wants.
- ``ensure_image(recipe, catalogue_dir=None, force=False) -> BuiltImage``: a qcow2 from
  ``images/recipes/<recipe>/``; with ``catalogue_dir`` its manifest is written there and the qcow2 linked in.
- ``cached_image(recipe)`` / ``cached_live_base()``: look-ups that never build.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from .imagebuild import cache, disk, kernel, live, recipe, rootfs
from .imagebuild.manifest import render_manifest
from .imagebuild.tools import package_versions


def repo_root() -> Path:
    """The source checkout that holds ``images/`` (the package is installed editable from it)."""
    raw = os.environ.get("CMT_REPO", "").strip()
    root = Path(raw) if raw else Path(__file__).resolve().parents[2]
    if not (root / "images" / "recipes").is_dir():
        raise ConfigError(
            f"{root} holds no images/recipes/ (image builds need the source checkout)",
            hint="run from a git clone installed with pip install -e, or set CMT_REPO=/path/to/clone",
        )
    return root


@dataclass(frozen=True)
class LiveEnv:
    #: Directory with ``vmlinuz`` and ``initrd.img`` (serve it as the boot server's live_dir).
    directory: Path
    kernel: Path
    #: Base + overlay, concatenated: what to boot.
    initrd: Path
    base_initrd: Path
    overlay: Path
    kernel_release: str
    sha256s: dict[str, str]
    sizes: dict[str, int]
    #: Seconds the base took when it was built (cold), and whether this call built it.
    base_build_seconds: float
    built_now: bool


@dataclass(frozen=True)
class BuiltImage:
    name: str
    recipe: str
    os: str
    os_name: str
    os_version: str
    glibc: str
    path: Path
    sha256: str
    size: int
    virtual_size: int
    kernel_release: str
    #: The BLS entry's ``options`` line (root=UUID=... rw console=...).
    kernel_args: str
    #: Kernel and initrd copied out of the image's /boot: for direct ``-kernel/-initrd`` boots.
    kernel: Path
    initrd: Path
    built: date
    build_seconds: float
    built_now: bool
    manifest_path: Path | None
    info: dict[str, Any]


# -- live env -----------------------------------------------------------------------------------------------


def _live_sources() -> live.LiveSources:
    return live.LiveSources(repo_root() / "images" / "live")


def cached_live_base() -> cache.Entry | None:
    """The newest complete live-env base in the cache, whatever its key (never builds)."""
    found = []
    for path in (cache.cache_root() / "live-base").glob("*"):
        entry = cache.read_entry(path, path.name) if not path.name.startswith(".") else None
        if entry is not None:
            found.append((str(entry.info.get("built_at", "")), entry))
    return max(found, key=lambda pair: pair[0])[1] if found else None


def ensure_live_base(force: bool = False) -> cache.Entry:
    src = _live_sources()
    try:
        kdeb = kernel.resolve_kernel_package()
    except BackendError:
        # No apt lists (a fresh or cleaned machine, no network): a cached base still boots.
        fallback = cached_live_base()
        if fallback is None or force:
            raise
        return fallback
    key = live.base_key(src, kdeb).digest()
    debs = cache.cache_root() / "debs"
    return cache.build_entry("live-base", key, lambda out: live.build_base(out, src, kdeb, debs), force=force)


def ensure_live_env(force: bool = False) -> LiveEnv:
    """The live env to boot now: the cached base plus an overlay of the cmt_slurm code this process runs."""
    base = ensure_live_base(force=force)
    pkg = live.package_root()
    overlay_key = live.overlay_key(pkg)
    overlay_key.add("base", base.key)
    key = overlay_key.digest()

    def build(out: Path) -> dict[str, Any]:
        overlay = live.build_overlay(pkg)
        (out / "overlay.cpio.gz").write_bytes(overlay)
        os.link(base.path / "vmlinuz", out / "vmlinuz")
        with (out / "initrd.img").open("wb") as fh:
            with (base.path / "base.cpio.zst").open("rb") as src:
                shutil.copyfileobj(src, fh)
            fh.write(overlay)
        return {
            "overlay_bytes": len(overlay),
            "initrd_bytes": (out / "initrd.img").stat().st_size,
            "initrd_sha256": cache.sha256_file(out / "initrd.img"),
            "overlay_sha256": cache.sha256_file(out / "overlay.cpio.gz"),
        }

    env = cache.build_entry("live", key, build, force=force)
    d = env.path
    return LiveEnv(
        directory=d,
        kernel=d / "vmlinuz",
        initrd=d / "initrd.img",
        base_initrd=base.path / "base.cpio.zst",
        overlay=d / "overlay.cpio.gz",
        kernel_release=str(base.info["kernel_release"]),
        sha256s={
            "vmlinuz": str(base.info["vmlinuz_sha256"]),
            "base_initrd": str(base.info["base_initrd_sha256"]),
            "overlay": str(env.info["overlay_sha256"]),
            "initrd": str(env.info["initrd_sha256"]),
        },
        sizes={
            "vmlinuz": int(base.info["vmlinuz_bytes"]),
            "base_initrd": int(base.info["base_initrd_bytes"]),
            "base_cpio": int(base.info["base_cpio_bytes"]),
            "python_stdlib": int(base.info["python_stdlib_bytes"]),
            "overlay": int(env.info["overlay_bytes"]),
            "initrd": int(env.info["initrd_bytes"]),
        },
        base_build_seconds=float(base.info["build_seconds"]),
        built_now=base.built_now,
    )


# -- OS images ----------------------------------------------------------------------------------------------

#: Host packages whose versions decide an image's bytes (besides the recipe files).
_IMAGE_TOOLS = ("mmdebstrap", "e2fsprogs", "fdisk", "qemu-utils")


def image_recipes() -> list[str]:
    return recipe.available(repo_root())


def _image_key(rec: recipe.Recipe) -> str:
    key = cache.KeyBuilder()
    key.add_tree("recipe", rec.directory)
    key.add_tree("shared", rec.shared)
    builder = Path(__file__).parent / "imagebuild"
    for name in ("rootfs.py", "disk.py", "recipe.py"):
        key.add_file(f"builder/{name}", builder / name)
    for pkg, version in package_versions(_IMAGE_TOOLS).items():
        key.add(f"pkg/{pkg}", version)
    return key.digest()


def _build_image(rec: recipe.Recipe, key: str, out: Path) -> dict[str, Any]:
    ids = disk.disk_ids(key)
    work = out / "work"
    work.mkdir()
    log = out / "build.log"
    tree = work / "tree"
    facts = rootfs.build_tree(rec, tree, ids.fs_uuid, log)
    shutil.copy2(tree / "boot" / f"vmlinuz-{facts.kernel_release}", out / "vmlinuz")
    shutil.copy2(tree / "boot" / f"initrd.img-{facts.kernel_release}", out / "initrd.img")
    (out / "bls.conf").write_text(facts.bls_entry)
    disk_facts = disk.make_qcow2(tree, key, work, out / "image.qcow2", log)
    shutil.rmtree(work)
    options = next(ln.split(None, 1)[1] for ln in facts.bls_entry.splitlines() if ln.startswith("options "))
    return {
        **disk_facts,
        "recipe": rec.name,
        "os": rec.os,
        "glibc": facts.glibc,
        "kernel_release": facts.kernel_release,
        "kernel_args": options.strip(),
        "size": (out / "image.qcow2").stat().st_size,
        "sha256": cache.sha256_file(out / "image.qcow2"),
    }


def _to_image(rec: recipe.Recipe, entry: cache.Entry, manifest_path: Path | None) -> BuiltImage:
    info = entry.info
    built = datetime.strptime(str(info["built_at"]), "%Y-%m-%dT%H:%M:%SZ").date()
    return BuiltImage(
        name=f"{rec.os}-{entry.key[:10]}",
        recipe=rec.name,
        os=rec.os,
        os_name=rec.os_name,
        os_version=rec.os_version,
        glibc=str(info["glibc"]),
        path=entry.path / "image.qcow2",
        sha256=str(info["sha256"]),
        size=int(info["size"]),
        virtual_size=int(info["virtual_size"]),
        kernel_release=str(info["kernel_release"]),
        kernel_args=str(info["kernel_args"]),
        kernel=entry.path / "vmlinuz",
        initrd=entry.path / "initrd.img",
        built=built,
        build_seconds=float(info["build_seconds"]),
        built_now=entry.built_now,
        manifest_path=manifest_path,
        info=info,
    )


def cached_image(name: str) -> BuiltImage | None:
    """The cached build of recipe ``name`` for the current recipe files, or None (never builds)."""
    rec = recipe.load_recipe(repo_root(), name)
    key = _image_key(rec)
    entry = cache.read_entry(cache.cache_root() / "image" / key, key)
    return _to_image(rec, entry, None) if entry else None


def ensure_image(name: str, catalogue_dir: Path | None = None, *, force: bool = False) -> BuiltImage:
    """Build (or reuse) the image of recipe ``name``; with ``catalogue_dir``, publish it there."""
    rec = recipe.load_recipe(repo_root(), name)
    key = _image_key(rec)
    entry = cache.build_entry("image", key, lambda out: _build_image(rec, key, out), force=force)
    image = _to_image(rec, entry, None)
    if catalogue_dir is None:
        return image
    return publish(image, catalogue_dir)


def publish(image: BuiltImage, catalogue_dir: Path) -> BuiltImage:
    """Hard-link (or copy) the qcow2 into ``catalogue_dir`` and write ``<name>.toml`` beside it."""
    catalogue_dir.mkdir(parents=True, exist_ok=True)
    target = catalogue_dir / f"{image.name}.qcow2"
    if not (target.exists() and os.path.samefile(target, image.path)):
        tmp = target.with_suffix(".qcow2.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(image.path, tmp)
        except OSError:
            shutil.copy2(image.path, tmp)
        tmp.replace(target)
    fields: dict[str, Any] = {
        "name": image.name,
        "os": image.os,
        "os_name": image.os_name,
        "os_version": image.os_version,
        "glibc": image.glibc,
        "arch": "x86_64",
        "format": "qcow2",
        "url": target.name,
        "sha256": image.sha256,
        "size": image.size,
        "built": image.built,
        # Appended by the reimager to the BLS options, which already name the root: only the extras here.
        "kernel_args": " ".join(
            w for w in image.kernel_args.split() if not w.startswith("root=") and w not in ("rw", "ro")
        ),
    }
    comment = (
        f"Generated by cmt_slurm.lab.images from images/recipes/{image.recipe}/\n"
        f"(cache key {image.info['key']}).\n"
        f"Kernel {image.kernel_release}; virtual disk {image.virtual_size} bytes."
    )
    path = catalogue_dir / f"{image.name}.toml"
    tmp_manifest = path.with_suffix(".toml.tmp")
    tmp_manifest.write_text(render_manifest(fields, comment))
    tmp_manifest.replace(path)
    return dataclasses.replace(image, manifest_path=path)
