"""Manifest validation: every problem of a file, each as `<path>: <key>: <problem>`."""

import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmt_slurm.catalogue import dump_manifest, load_catalogue, load_manifest, parse_manifest, read_manifest
from cmt_slurm.errors import BadInput

BAD = Path(__file__).resolve().parent.parent / "data" / "catalogue-bad"

GOOD: dict[str, Any] = {
    "name": "rocky9-2026.11",
    "os": "rocky9",
    "os_name": "Rocky Linux",
    "os_version": "9.6",
    "glibc": "2.34",
    "arch": "x86_64",
    "format": "qcow2",
    "url": "rocky9.qcow2",
    "sha256": "A" * 64,
    "size": 123,
}


def problems(**changes: Any) -> list[str]:
    data = {**GOOD, **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    image, found = parse_manifest(data, "cat/rocky9.toml")
    assert (image is None) == bool(found)
    return found


def test_good_manifest_normalises_digest() -> None:
    image, found = parse_manifest(GOOD, "x.toml")
    assert found == []
    assert image is not None
    assert image.sha256 == "a" * 64
    assert image.features == ()
    assert image.default is False


CASES = [
    ({"glibc": "2.3x"}, 'cat/rocky9.toml: glibc: "2.3x" is not a version like 2.34'),
    ({"glibc": 2.34}, 'cat/rocky9.toml: glibc: write the version as a string: glibc = "2.34"'),
    ({"glibc": None}, "cat/rocky9.toml: glibc: missing (required)"),
    ({"name": "Rocky9"}, 'cat/rocky9.toml: name: "Rocky9" is not an image name'),
    ({"name": "-x"}, 'cat/rocky9.toml: name: "-x" is not an image name'),
    ({"name": "a" * 65}, "cat/rocky9.toml: name: "),
    ({"os": "rocky-9"}, 'cat/rocky9.toml: os: "rocky-9" cannot be a Slurm feature (os=rocky-9)'),
    ({"os": "el9:4"}, 'cat/rocky9.toml: os: "el9:4" cannot be a Slurm feature'),
    ({"os": "a=b"}, 'cat/rocky9.toml: os: "a=b" cannot be a Slurm feature'),
    ({"os_name": "  "}, "cat/rocky9.toml: os_name: must not be empty"),
    ({"os_version": 9}, "cat/rocky9.toml: os_version: must be a string, not an integer (9)"),
    ({"arch": "amd64"}, 'cat/rocky9.toml: arch: "amd64" is not one of x86_64, aarch64'),
    ({"format": "vmdk"}, 'cat/rocky9.toml: format: "vmdk" is not one of qcow2, raw'),
    ({"url": "s3://bucket/x"}, 'cat/rocky9.toml: url: "s3://bucket/x" is neither an http(s) URL nor a path'),
    ({"url": "http://"}, 'cat/rocky9.toml: url: "http://" is neither an http(s) URL nor a path'),
    ({"url": "my image.qcow2"}, 'cat/rocky9.toml: url: "my image.qcow2" contains blanks'),
    ({"url": "x\ny"}, "cat/rocky9.toml: url: must be one line"),
    ({"sha256": "abc"}, 'cat/rocky9.toml: sha256: "abc" is not a sha256 digest (64 hex digits)'),
    ({"sha256": "g" * 64}, "cat/rocky9.toml: sha256: "),
    ({"size": 0}, "cat/rocky9.toml: size: 0 is not a size: the image file's length in bytes, > 0"),
    ({"size": "12"}, "cat/rocky9.toml: size: must be an integer number of bytes, not a string ('12')"),
    ({"size": True}, "cat/rocky9.toml: size: must be an integer number of bytes, not a boolean (True)"),
    ({"size": None}, "cat/rocky9.toml: size: missing (required)"),
    ({"default": "yes"}, "cat/rocky9.toml: default: must be true or false, not a string ('yes')"),
    ({"built": "2026-13-01"}, "cat/rocky9.toml: built: '2026-13-01' is not a date like 2026-11-30"),
    ({"built": "30.11.2026"}, "cat/rocky9.toml: built: '30.11.2026' is not a date like 2026-11-30"),
    ({"kernel_args": ["a"]}, "cat/rocky9.toml: kernel_args: must be a string, not an array (['a'])"),
    ({"kernel_args": "a\nb"}, "cat/rocky9.toml: kernel_args: must be one line"),
    ({"features": "cuda12"}, 'cat/rocky9.toml: features: must be an array of strings, e.g. ["cuda12"]'),
    ({"features": ["cuda-12"]}, 'cat/rocky9.toml: features[0]: "cuda-12" is not a valid Slurm feature name'),
    ({"features": ["ok", "libc=2.17"]}, 'cat/rocky9.toml: features[1]: "libc=2.17" starts with libc='),
    ({"defualt": True}, 'cat/rocky9.toml: defualt: unknown key (did you mean "default"?)'),
    ({"colour": "red"}, "cat/rocky9.toml: colour: unknown key"),
    ({"size": {"a": 1}}, "cat/rocky9.toml: size: must be an integer number of bytes, not a table"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[str(c[0])[:40] for c in CASES])
def test_each_problem_names_file_and_key(changes: dict[str, Any], expected: str) -> None:
    found = problems(**changes)
    assert len(found) == 1, found
    assert found[0].startswith(expected)


def test_valid_optional_forms() -> None:
    assert problems(built=date(2026, 11, 30)) == []
    assert problems(built="2026-11-30") == []
    assert problems(built=datetime(2026, 11, 30, 12, 0))[0].startswith(
        "cat/rocky9.toml: built: 2026-11-30T12:00"
    )
    assert problems(url="https://images.example.org/r9.qcow2") == []
    assert problems(url="/srv/images/r9.qcow2") == []
    assert problems(features=["cuda12", "gpu.a100", "cuda12"]) == []
    assert problems(os="el9_4") == []


def test_all_problems_of_a_file_at_once() -> None:
    with pytest.raises(BadInput) as exc:
        load_manifest(BAD / "rocky9.toml")
    found = exc.value.details["problems"]
    keys = [p.split(": ")[1] for p in found]
    assert keys == [
        "defualt", "name", "os", "os_name", "os_version", "glibc", "arch", "format", "url", "sha256",
        "size", "default", "built", "kernel_args", "features[0]", "features[1]", "features[2]",
    ]  # fmt: skip
    assert all(p.startswith(f"{BAD / 'rocky9.toml'}: ") for p in found)
    assert exc.value.message == found[0]
    assert exc.value.hint and "17 problems in all" in exc.value.hint


def test_unreadable_and_odd_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_manifest(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(BadInput, match=r"bin.toml: not UTF-8 text \(byte 8\)"):
        load_manifest(tmp_path / "bin.toml")
    (tmp_path / "big.toml").write_bytes(b"#" * 70_000)
    with pytest.raises(BadInput, match="too big for a manifest"):
        load_manifest(tmp_path / "big.toml")
    (tmp_path / "syntax.toml").write_text('name = "broken\n')
    with pytest.raises(BadInput) as exc:
        load_manifest(tmp_path / "syntax.toml")
    assert exc.value.message.startswith(f"{tmp_path / 'syntax.toml'}: not valid TOML: ")
    assert "line 1" in exc.value.message


def test_catalogue_lists_every_problem_of_every_file() -> None:
    with pytest.raises(BadInput) as exc:
        load_catalogue(BAD)
    found: list[str] = exc.value.details["problems"]
    assert exc.value.message == found[0]
    assert len(found) == 21
    cross = [p for p in found if "good-" in p]
    assert cross == [
        f'{BAD}/good-b.toml: name: "twin" is already defined in {BAD}/good-a.toml',
        f"{BAD}/good-c.toml: default: twin ({BAD}/good-a.toml) is already the x86_64 default; "
        "only one image per arch may be",
        f'{BAD}/good-c.toml: os: tag "el9" already names "Rocky Linux" (twin), not "AlmaLinux"; '
        "give each OS its own tag",
    ]
    assert any(p.startswith(f"{BAD}/syntax.toml: not valid TOML") for p in found)


def test_one_default_per_arch_but_any_number_of_arches(tmp_path: Path) -> None:
    image, _ = parse_manifest({**GOOD, "default": True}, "x")
    assert image is not None
    (tmp_path / "a.toml").write_text(dump_manifest(image))
    arm = type(image)(**{**image.__dict__, "name": "rocky9-arm", "arch": "aarch64"})
    (tmp_path / "b.toml").write_text(dump_manifest(arm))
    cat = load_catalogue(tmp_path)
    assert {i.name for i in cat if i.default} == {"rocky9-2026.11", "rocky9-arm"}


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.dates(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=5,
)


@given(st.dictionaries(st.sampled_from([*GOOD, "default", "built", "features", "kernel_args", "x"]), _values))
@settings(max_examples=300)
def test_any_manifest_data_gives_problems_not_crashes(changes: dict[str, Any]) -> None:
    data = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    image, found = parse_manifest(data, "f.toml")
    assert (image is None) == bool(found)
    assert all(p.startswith("f.toml: ") and "\n" not in p for p in found)


@given(st.text(max_size=200))
def test_any_file_text_gives_problems_not_crashes(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        image, found = read_manifest(path)
        assert (image is None) == bool(found)
