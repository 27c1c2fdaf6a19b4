"""Image manifests: one flat TOML file per image, validated field by field, all problems at once.

Every problem reads ``<path>: <key>: <problem>``, e.g.
``images/catalogue/rocky9.toml: glibc: "2.3x" is not a version like 2.34``. A file's problems are all
reported together; ``load_catalogue`` adds the cross-file rules (unique names, one default per arch, one OS
per os tag) and raises one ``BadInput`` whose message is the first problem and whose
``details["problems"]`` holds them all.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..versions import Version
from .features import feature_name_problem, os_tag_problem
from .model import ARCHES, FORMATS, IMAGE_NAME, Catalogue, Image, has_scheme, is_http_url

REQUIRED = ("name", "os", "os_name", "os_version", "glibc", "arch", "format", "url", "sha256", "size")
OPTIONAL = ("default", "built", "kernel_args", "features")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Manifests are a few hundred bytes; refusing big files keeps a stray image out of the TOML parser.
MAX_MANIFEST_BYTES = 64 * 1024
MAX_NAME = 64


@dataclass
class _Checker:
    where: str
    data: Mapping[str, Any]
    problems: list[str]

    def add(self, key: str, problem: str) -> None:
        self.problems.append(f"{self.where}: {key}: {problem}")

    def text(self, key: str, *, required: bool = True) -> str | None:
        if key not in self.data:
            if required:
                self.add(key, "missing (required)")
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.add(key, f"must be a string, not {_toml_type(value)} ({_short(value)})")
            return None
        if required and not value.strip():
            self.add(key, "must not be empty")
            return None
        if any(ch in value for ch in "\n\r\0"):
            self.add(key, "must be one line")
            return None
        return value

    def check(self, key: str, value: str | None, ok: Callable[[str], bool], problem: str) -> str | None:
        if value is None:
            return None
        if not ok(value):
            self.add(key, problem.format(value=value))
            return None
        return value


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date):
        return "a date"
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_manifest(
    data: Mapping[str, Any], where: str, path: Path | None = None
) -> tuple[Image | None, list[str]]:
    """Validate one manifest's keys; return the image (None if any problem) and every problem found."""
    c = _Checker(where, data, [])
    for key in data:
        if key not in REQUIRED and key not in OPTIONAL:
            close = difflib.get_close_matches(key, REQUIRED + OPTIONAL, n=1, cutoff=0.6)
            c.add(key, "unknown key" + (f' (did you mean "{close[0]}"?)' if close else ""))

    name = c.check(
        "name",
        c.text("name"),
        lambda v: IMAGE_NAME.fullmatch(v) is not None and len(v) <= MAX_NAME,
        f'"{{value}}" is not an image name: lower-case letters, digits, ".", "_", "-", starting with a '
        f"letter or digit, at most {MAX_NAME} characters",
    )
    os_tag = c.text("os")
    if os_tag is not None and (problem := os_tag_problem(os_tag)):
        c.add("os", problem)
        os_tag = None
    os_name = c.text("os_name")
    os_version = c.text("os_version")
    glibc = _glibc(c)
    arch = c.check(
        "arch", c.text("arch"), lambda v: v in ARCHES, f'"{{value}}" is not one of {", ".join(ARCHES)}'
    )
    fmt = c.check(
        "format", c.text("format"), lambda v: v in FORMATS, f'"{{value}}" is not one of {", ".join(FORMATS)}'
    )
    url = _url(c)
    sha = c.check(
        "sha256",
        c.text("sha256"),
        lambda v: _SHA256.fullmatch(v) is not None,
        '"{value}" is not a sha256 digest (64 hex digits)',
    )
    size = _size(c)
    default = _bool(c, "default")
    built = _built(c)
    kernel_args = c.text("kernel_args", required=False) or ""
    features = _features(c)

    if c.problems:
        return None, c.problems
    assert name and os_tag and os_name and os_version and glibc and arch and fmt and url and sha and size
    image = Image(
        name=name,
        os=os_tag,
        os_name=os_name,
        os_version=os_version,
        glibc=glibc,
        arch=arch,
        format=fmt,
        url=url,
        sha256=sha.lower(),
        size=size,
        default=default,
        built=built,
        kernel_args=kernel_args,
        features=features,
        manifest_path=path,
    )
    return image, []


def _glibc(c: _Checker) -> Version | None:
    if isinstance(c.data.get("glibc"), float | int) and not isinstance(c.data.get("glibc"), bool):
        c.add(
            "glibc",
            f'write the version as a string: glibc = "{c.data["glibc"]}" (a TOML number loses 2.30 -> 2.3)',
        )
        return None
    raw = c.text("glibc")
    if raw is None:
        return None
    try:
        return Version.parse(raw)
    except BadInput:
        c.add("glibc", f'"{raw}" is not a version like 2.34')
        return None


def _url(c: _Checker) -> str | None:
    url = c.text("url")
    if url is None:
        return None
    if any(ch.isspace() for ch in url):
        c.add("url", f'"{url}" contains blanks (percent-encode them as %20)')
    elif is_http_url(url):
        return url
    elif has_scheme(url):
        c.add("url", f'"{url}" is neither an http(s) URL nor a path (other schemes are not fetched)')
    else:
        return url
    return None


def _size(c: _Checker) -> int | None:
    if "size" not in c.data:
        c.add("size", "missing (required)")
        return None
    value = c.data["size"]
    if isinstance(value, bool) or not isinstance(value, int):
        c.add("size", f"must be an integer number of bytes, not {_toml_type(value)} ({_short(value)})")
        return None
    if value <= 0:
        c.add("size", f"{value} is not a size: the image file's length in bytes, > 0")
        return None
    return value


def _bool(c: _Checker, key: str) -> bool:
    value = c.data.get(key, False)
    if not isinstance(value, bool):
        c.add(key, f"must be true or false, not {_toml_type(value)} ({_short(value)})")
        return False
    return value


def _built(c: _Checker) -> date | None:
    value = c.data.get("built")
    if value is None:
        return None
    if isinstance(value, datetime):
        c.add("built", f"{value.isoformat()} has a time; write the date only, e.g. built = {value.date()}")
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    c.add("built", f"{_short(value)} is not a date like 2026-11-30")
    return None


def _features(c: _Checker) -> tuple[str, ...]:
    value = c.data.get("features", [])
    if not isinstance(value, list):
        c.add("features", f'must be an array of strings, e.g. ["cuda12"], not {_toml_type(value)}')
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            c.add(f"features[{i}]", f"must be a string, not {_toml_type(item)} ({_short(item)})")
        elif problem := feature_name_problem(item):
            c.add(f"features[{i}]", problem)
        elif item not in out:
            out.append(item)
    return tuple(out)


def read_manifest(path: Path) -> tuple[Image | None, list[str]]:
    """Read and validate one manifest file; problems instead of exceptions (so a catalogue lists all)."""
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [f"{where}: no such file"]
    except OSError as exc:
        return None, [f"{where}: cannot read: {exc.strerror or exc}"]
    if len(raw) > MAX_MANIFEST_BYTES:
        return None, [f"{where}: {len(raw)} bytes is too big for a manifest (is this an image file?)"]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, [f"{where}: not UTF-8 text (byte {exc.start})"]
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{where}: not valid TOML: {exc}"]
    return parse_manifest(data, where, path)


def _raise(problems: Sequence[str], hint: str) -> None:
    more = f" ({len(problems)} problems in all)" if len(problems) > 1 else ""
    raise BadInput(problems[0], hint=hint + more, details={"problems": list(problems)})


def load_manifest(path: Path) -> Image:
    """One manifest as an ``Image``; ``BadInput`` listing all of the file's problems otherwise."""
    image, problems = read_manifest(path)
    if problems or image is None:
        _raise(problems, "fix the manifest (keys: see docs or `cmt image show` of a working image)")
    assert image is not None
    return image


def catalogue_problems(images: Sequence[Image]) -> list[str]:
    """The rules that span files: unique names, at most one default per arch, one OS per os tag."""
    problems: list[str] = []
    by_name: dict[str, Image] = {}
    default: dict[str, Image] = {}
    os_of_tag: dict[str, Image] = {}
    for image in images:
        where = str(image.manifest_path) if image.manifest_path else image.name
        if (first := by_name.setdefault(image.name, image)) is not image:
            problems.append(f'{where}: name: "{image.name}" is already defined in {first.manifest_path}')
            continue
        if image.default and (first := default.setdefault(image.arch, image)) is not image:
            problems.append(
                f"{where}: default: {first.name} ({first.manifest_path}) is already the {image.arch} "
                "default; only one image per arch may be"
            )
        first = os_of_tag.setdefault(image.os, image)
        if first.os_name != image.os_name:
            problems.append(
                f'{where}: os: tag "{image.os}" already names "{first.os_name}" ({first.name}), '
                f'not "{image.os_name}"; give each OS its own tag'
            )
    return problems


def check_catalogue(images: Sequence[Image], directory: Path | None = None) -> Catalogue:
    """A ``Catalogue`` of ``images`` if the cross-file rules hold, else ``BadInput`` listing every problem."""
    problems = catalogue_problems(images)
    if problems:
        _raise(problems, "fix or remove the manifests named")
    return Catalogue.of(images, directory)


def load_catalogue(directory: Path) -> Catalogue:
    """Every ``*.toml`` in ``directory`` (not recursive), all checked; one ``BadInput`` with all problems."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BadInput(
            f"catalogue directory {directory} {what}",
            hint="create it (mkdir -p) and add manifests with `cmt image add`, or point --catalogue / "
            "catalogue_dir (CMT_CATALOGUE_DIR) at the right place",
        )
    images: list[Image] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        image, found = read_manifest(path)
        problems += found
        if image is not None:
            images.append(image)
    problems += catalogue_problems(images)
    if problems:
        _raise(problems, "fix or remove the manifests named")
    return Catalogue.of(images, directory)


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump_manifest(image: Image, *, url: str | None = None) -> str:
    """TOML text of ``image`` (``url`` overrides the stored one); ``read_manifest`` reads it back equal."""
    lines = [
        f"name = {_toml_str(image.name)}",
        f"os = {_toml_str(image.os)}",
        f"os_name = {_toml_str(image.os_name)}",
        f"os_version = {_toml_str(image.os_version)}",
        f"glibc = {_toml_str(str(image.glibc))}",
        f"arch = {_toml_str(image.arch)}",
        f"format = {_toml_str(image.format)}",
        f"url = {_toml_str(url if url is not None else image.url)}",
        f"sha256 = {_toml_str(image.sha256)}",
        f"size = {image.size}",
    ]
    if image.default:
        lines.append("default = true")
    if image.built:
        lines.append(f"built = {image.built.isoformat()}")
    if image.kernel_args:
        lines.append(f"kernel_args = {_toml_str(image.kernel_args)}")
    if image.features:
        lines.append(f"features = [{', '.join(_toml_str(f) for f in image.features)}]")
    return "\n".join(lines) + "\n"
