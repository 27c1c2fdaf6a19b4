"""``cmt image``: the catalogue on disk: list, show, match, verify, add, rm.

File-based: every command reads the manifests in ``--catalogue`` (default: ``catalogue_dir`` from the
settings). ``add`` and ``rm`` change only that directory, and ``add`` validates the whole catalogue with the
new manifest before anything is written.
"""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..catalogue import (
    ARCHES,
    Catalogue,
    Image,
    check_catalogue,
    dump_manifest,
    image_features,
    load_catalogue,
    load_manifest,
    parse_manifest,
    read_manifest,
    select_image,
)
from ..catalogue.model import is_http_url
from ..catalogue.verify import Digest, verify_image
from ..constraints import requirement_from_constraint
from ..errors import BadInput, Conflict, NotFound
from .context import CliContext, emit, pass_cli, table

F = TypeVar("F", bound=Callable[..., Any])


def catalogue_option(f: F) -> F:
    return click.option(
        "--catalogue",
        "catalogue_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Directory of image manifests (default: catalogue_dir from cmt.toml / CMT_CATALOGUE_DIR).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _dir(cli: CliContext, catalogue_dir: Path | None) -> Path:
    return catalogue_dir if catalogue_dir is not None else cli.settings.catalogue_dir


def _find(catalogue: Catalogue, name: str) -> Image:
    image = catalogue.get(name)
    if image is None:
        close = difflib.get_close_matches(name, [i.name for i in catalogue], n=3, cutoff=0.5)
        raise NotFound(
            f"image {name!r} is not in the catalogue {catalogue.directory}"
            + (f" (closest: {', '.join(close)})" if close else ""),
            hint="`cmt image list` shows the names",
        )
    return image


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _image_json(catalogue: Catalogue, image: Image) -> dict[str, Any]:
    return {**image.to_json(), "slurm_features": list(image_features(catalogue, image))}


@click.group(
    "image",
)
def image() -> None:
    """Catalogue images: list, show, match, verify, add, rm."""


@image.command("list", short_help="List the catalogue's images.")
@catalogue_option
@json_option
@pass_cli
def list_(cli: CliContext, catalogue_dir: Path | None, as_json: bool) -> None:
    """List the catalogue's images (every manifest problem is reported, one per line)."""
    catalogue = load_catalogue(_dir(cli, catalogue_dir))

    def human(_: Any) -> None:
        rows = [
            {
                "name": i.name,
                "os": i.os,
                "glibc": str(i.glibc),
                "arch": i.arch,
                "format": i.format,
                "size": _human_size(i.size),
                "built": i.built.isoformat() if i.built else None,
                "default": "yes" if i.default else None,
            }
            for i in catalogue
        ]
        table(rows, ["name", "os", "glibc", "arch", "format", "size", "built", "default"])

    emit([_image_json(catalogue, i) for i in catalogue], as_json, human)


@image.command("show", short_help="Show one image and its Slurm features.")
@click.argument("name")
@catalogue_option
@json_option
@pass_cli
def show(cli: CliContext, name: str, catalogue_dir: Path | None, as_json: bool) -> None:
    """Show one image: its manifest, where its bytes are, and the Slurm features it gives a node."""
    catalogue = load_catalogue(_dir(cli, catalogue_dir))
    data = _image_json(catalogue, _find(catalogue, name))

    def human(d: dict[str, Any]) -> None:
        for key in ("name", "os", "os_name", "os_version", "glibc", "arch", "format", "url", "resolved_url",
                    "sha256", "size", "default", "built", "kernel_args", "manifest"):  # fmt: skip
            value = d[key]
            if key == "size":
                value = f"{value} ({_human_size(value)})"
            click.echo(f"{key:<13} {'-' if value in (None, '') else value}")
        click.echo(f"{'features':<13} {', '.join(d['features']) or '-'}")
        click.echo(f"{'slurm':<13} {','.join(d['slurm_features'])}")

    emit(data, as_json, human)


@image.command("match", short_help="Which image a --constraint gets.")
@catalogue_option
@click.option("--constraint", "constraint", required=True, help="Slurm --constraint text, e.g. os:rocky9&ib.")
@click.option(
    "--arch", type=click.Choice(ARCHES), default="x86_64", show_default=True, help="The node's arch."
)
@click.option(
    "--mode",
    type=click.Choice(["helpers", "prolog"]),
    default=None,
    help="Slurm integration mode (default: slurm_mode setting); helpers also refuses [ ] ( ) | * next to "
    "os/libc/image terms, as Slurm does.",
)
@json_option
@pass_cli
def match(
    cli: CliContext,
    *,
    catalogue_dir: Path | None,
    constraint: str,
    arch: str,
    mode: str | None,
    as_json: bool,
) -> None:
    """Which image a job with --constraint=EXPR gets on an ARCH node (exit 3 if none, 2 if EXPR is bad)."""
    mode = mode or cli.settings.slurm_mode
    requirement = requirement_from_constraint(constraint, helpers=mode == "helpers")
    catalogue = load_catalogue(_dir(cli, catalogue_dir))
    chosen = select_image(catalogue, requirement, arch)
    data = {
        "image": chosen.name,
        "features": list(image_features(catalogue, chosen)),
        "arch": arch,
        "os": chosen.os,
        "glibc": str(chosen.glibc),
        "default": chosen.default,
        "url": chosen.resolved_url,
        "sha256": chosen.sha256,
        "size": chosen.size,
        "requirement": {
            "os": requirement.os,
            "libc": str(requirement.libc) if requirement.libc else None,
            "image": requirement.image,
            "features": list(requirement.features),
        },
    }

    def human(d: dict[str, Any]) -> None:
        click.echo(d["image"])
        click.echo(f"  {chosen.os_name} {chosen.os_version} (os {d['os']}), glibc {d['glibc']}, {arch}")
        click.echo(f"  features: {','.join(d['features'])}")

    emit(data, as_json, human)


def _hash(image_: Image) -> Digest:
    with click.progressbar(
        length=image_.size, label=f"hashing {image_.name}", file=sys.stderr, show_pos=True
    ) as bar:
        return verify_image(image_, on_progress=bar.update)


@image.command("verify", short_help="Re-hash an image, compare with its manifest.")
@click.argument("name")
@catalogue_option
@json_option
@pass_cli
def verify(cli: CliContext, name: str, catalogue_dir: Path | None, as_json: bool) -> None:
    """Re-hash an image's bytes (file or http URL) and compare size and sha256 with its manifest."""
    catalogue = load_catalogue(_dir(cli, catalogue_dir))
    image_ = _find(catalogue, name)
    got = _hash(image_)
    data = {
        "image": image_.name,
        "ok": True,
        "size": got.size,
        "sha256": got.sha256,
        "url": image_.resolved_url,
    }
    emit(data, as_json, lambda d: click.echo(f"ok: {d['image']}: {d['size']} bytes, sha256 {d['sha256']}"))


def _url_for(image_: Image, source: Path, target_dir: Path) -> str | None:
    """The url to write into the catalogue copy, or None when the original still points at the file."""
    if is_http_url(image_.url) or Path(image_.url).is_absolute():
        return None
    here = (source.parent / image_.url).resolve()
    if (target_dir / image_.url).resolve() == here:
        return None
    try:
        return here.relative_to(target_dir.resolve()).as_posix()
    except ValueError:
        return str(here)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@image.command("add", short_help="Validate a manifest and add it.")
@click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
@catalogue_option
@click.option("--no-verify", is_flag=True, help="Do not hash the local image file before adding.")
@click.option("--replace", is_flag=True, help="Replace an image of the same name.")
@pass_cli
def add(cli: CliContext, manifest: Path, catalogue_dir: Path | None, no_verify: bool, replace: bool) -> None:
    """Validate MANIFEST, check its file, and copy it into the catalogue as NAME.toml.

    Nothing is written unless the whole catalogue, with the new manifest, passes validation.
    """
    directory = _dir(cli, catalogue_dir)
    new = load_manifest(manifest)
    catalogue = load_catalogue(directory)
    old = catalogue.get(new.name)
    if old is not None and not replace:
        raise Conflict(
            f"image {new.name} is already in the catalogue ({old.manifest_path})",
            hint="pass --replace to overwrite it, or give the new build its own name",
        )
    target = directory / f"{new.name}.toml"
    if target.exists() and (
        old is None or old.manifest_path is None or not target.samefile(old.manifest_path)
    ):
        raise Conflict(
            f"{target} exists and does not define image {new.name}",
            hint="rename or remove that file first",
        )
    url = _url_for(new, manifest, directory)
    text = manifest.read_text(encoding="utf-8") if url is None else dump_manifest(new, url=url)
    placed, problems = parse_manifest(tomllib.loads(text), str(target), target)
    if placed is None:  # cannot happen for a manifest that just loaded; kept as a guard, not a crash
        raise BadInput(problems[0], details={"problems": problems})
    check_catalogue([*(i for i in catalogue if i.name != new.name), placed], directory)
    if not no_verify:
        if placed.local_path is not None:
            _hash(placed)
        else:
            click.echo(f"note: {placed.url} not fetched; run `cmt image verify {placed.name}`", err=True)
    _write_atomically(target, text)
    if old is not None and old.manifest_path is not None and old.manifest_path != target:
        old.manifest_path.unlink(missing_ok=True)
    if url is not None:
        click.echo(f"note: url rewritten to {url} (relative to {directory})", err=True)
    click.echo(f"{'replaced' if old else 'added'} {placed.name} -> {target}")


@image.command("rm", short_help="Remove an image's manifest.")
@click.argument("name")
@catalogue_option
@click.option("--delete-file", is_flag=True, help="Also delete the local image file.")
@pass_cli
def rm(cli: CliContext, name: str, catalogue_dir: Path | None, delete_file: bool) -> None:
    """Remove an image's manifest from the catalogue (its file only with --delete-file).

    Works on a catalogue with problems elsewhere, so a broken or duplicate entry can be removed.
    """
    directory = _dir(cli, catalogue_dir)
    if not directory.is_dir():
        load_catalogue(directory)  # raises the uniform "does not exist" error with its hint
    scanned = [read_manifest(p)[0] for p in sorted(directory.glob("*.toml"))]
    images = [i for i in scanned if i is not None]
    found = [i for i in images if i.name == name]
    if not found:
        _find(Catalogue.of(images, directory), name)
    image_ = found[0]
    if len(found) > 1:
        raise Conflict(
            f"image {name} is defined by {len(found)} manifests: "
            + ", ".join(str(i.manifest_path) for i in found),
            hint="delete the extra manifest by hand",
        )
    path = image_.local_path
    if delete_file and path is not None:
        users = [
            i.name
            for i in images
            if i is not image_ and i.local_path and i.local_path.resolve() == path.resolve()
        ]
        if users:
            raise Conflict(
                f"image file {path} is also used by {', '.join(users)}; not deleting it",
                hint="run without --delete-file",
            )
    assert image_.manifest_path is not None
    image_.manifest_path.unlink()
    click.echo(f"removed {name} ({image_.manifest_path})")
    if delete_file:
        if path is None:
            click.echo(f"note: {image_.url} is remote; not deleted", err=True)
        elif path.exists():
            path.unlink()
            click.echo(f"deleted {path}")
        else:
            click.echo(f"note: {path} was already gone", err=True)
