"""iPXE scripts: whole-file golden comparisons per mode, value validation, operator overrides.

Regenerate the golden files after an intended template change with
``CMT_TEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_ipxe.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.errors import BadInput, ConfigError
from cmt_slurm.ipxe import (
    SHIPPED_TEMPLATES,
    BootContext,
    DiscoverBoot,
    IpxeRenderer,
    LocalBoot,
    ReimageBoot,
    UnknownMac,
    WaitBoot,
    render_ipxe,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ipxe"
SERVER = "http://10.0.0.1:8080"
LIVE = f"{SERVER}/boot/live"
SHA = "3f" * 32


def reimage(**change: Any) -> ReimageBoot:
    values: dict[str, Any] = {
        "server_url": SERVER,
        "kernel_url": f"{LIVE}/vmlinuz",
        "initrd_url": f"{LIVE}/initrd.img",
        "node": "node-7",
        "image": "debian13-2026.11",
        "deployment": 42,
        "token": "Zm9vYmFy-0_Zm9vYmFy",
        "image_url": f"{SERVER}/images/debian13-2026.11",
        "image_sha256": SHA,
        "disk": "/dev/vda",
        "extra_args": ("console=ttyS0,115200n8", "quiet"),
    }
    return ReimageBoot(**(values | change))


CASES: dict[str, BootContext] = {
    "local": LocalBoot(server_url=SERVER, node="node-7", image="debian12-2026.10"),
    "local-sanboot": LocalBoot(server_url=SERVER, node="node-7", method="sanboot", drive="0x80"),
    "reimage": reimage(),
    "reimage-exit": reimage(disk="", extra_args=(), retries=5, retry_delay=2, on_failure="exit"),
    "reimage-reboot": reimage(on_failure="reboot", failure_delay=10),
    "discover": DiscoverBoot(
        server_url=SERVER,
        kernel_url=f"{LIVE}/vmlinuz",
        initrd_url=f"{LIVE}/initrd.img",
        mac="52:54:00:12:34:56",
        extra_args=("console=ttyS0,115200n8",),
    ),
    "unknown": UnknownMac(server_url=SERVER, mac="52:54:00:AB:CD:EF", retry_delay=60),
    "wait": WaitBoot(server_url=SERVER, node="node-7", reason="4 reimages are transferring", retry_delay=15),
}


@pytest.mark.parametrize("name", list(CASES))
def test_golden(name: str) -> None:
    text = render_ipxe(CASES[name])
    path = GOLDEN / f"{name}.ipxe"
    if os.environ.get("CMT_TEST_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("reimage", "discover"))])
def test_every_fetch_is_retried_and_fails_to_a_label(name: str) -> None:
    text = render_ipxe(CASES[name])
    lines = text.splitlines()
    retries = CASES[name].retries
    fetches = [line for line in lines if line.startswith(("kernel ", "initrd ", "chain ", "imgfetch "))]
    assert fetches
    for line in fetches:
        # a download either jumps on success and falls through to the retry code, or goes to an error
        assert line.endswith((" ||", "|| goto failed")), line
    labels = {line[1:] for line in lines if line.startswith(":")}
    for target in re.findall(r"goto (\w+)", text):
        assert target in labels
    assert f"iseq ${{cmt_tries}} {retries} && goto kernel_failed ||" in text
    assert f"iseq ${{cmt_tries}} {retries} && goto initrd_failed ||" in text
    assert "echo cmt: ERROR: could not download the live kernel" in text


def test_reimage_command_line() -> None:
    assert reimage().cmdline == (
        "initrd=initrd.img cmt.server=http://10.0.0.1:8080 cmt.mode=reimage cmt.deployment=42 "
        "cmt.token=Zm9vYmFy-0_Zm9vYmFy cmt.disk=/dev/vda "
        f"cmt.image_url=http://10.0.0.1:8080/images/debian13-2026.11 cmt.sha256={SHA} "
        "cmt.mac=${netX/mac} console=ttyS0,115200n8 quiet"
    )
    assert "cmt.disk" not in reimage(disk="").cmdline


def test_token_is_not_in_repr() -> None:
    assert "Zm9vYmFy" not in repr(reimage())


def test_server_url_trailing_slash_dropped() -> None:
    assert reimage(server_url="http://10.0.0.1:8080/").server_url == SERVER


# --- injection: values from the catalogue or the DB cannot add commands -----------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node": "node-7\nshell"}, "node contains a control character"),
        ({"node": "node-7\rshell"}, "control character"),
        ({"image": "deb${net0/mac}"}, r"image contains '\$\{'"),
        ({"image": "Debian 13"}, "is not a catalogue image name"),
        ({"token": "abc def"}, "is not a token"),
        ({"token": "abc;reboot"}, "is not a token"),
        ({"deployment": "42 || reboot"}, "'&&' or '||'"),
        ({"kernel_url": "http://x/vmlinuz shell"}, "kernel_url='http://x/vmlinuz shell' is not an http"),
        ({"kernel_url": "tftp://x/vmlinuz"}, "is not an http"),
        ({"initrd_url": "http://x/i\n#!ipxe"}, "initrd_url contains a control character"),
        ({"image_url": "http://x/a?b=${uuid}"}, r"image_url contains '\$\{'"),
        ({"image_url": 'http://x/a"b'}, "is not an http"),
        ({"image_url": "http://x/a&&reboot"}, "'&&' or '||'"),
        ({"image_sha256": "ABC"}, "64 lowercase hex"),
        ({"disk": "/dev/vda cmt.debug"}, "is not a device path"),
        ({"extra_args": ("console=ttyS0 quiet",)}, "extra_args"),
        ({"extra_args": ('init="/bin/sh"',)}, "extra_args"),
        ({"extra_args": "quiet ${x}"}, r"'\$\{'"),
        ({"retries": 0}, "retries=0 must be an integer 1..20"),
        ({"fetch_timeout": 0}, "fetch_timeout"),
        ({"retries": True}, "retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"on_failure": "shell"}, "on_failure='shell' is not one of"),
        ({"server_url": "10.0.0.1:8080"}, "server_url"),
        ({"extra_args": ("x" * 500,) * 5}, "more than 2000"),
    ],
)
def test_injected_values_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message) as err:
        reimage(**change)
    assert err.value.message.startswith("iPXE context: ")


def test_other_modes_validate_too() -> None:
    with pytest.raises(BadInput, match="mac"):
        UnknownMac(server_url=SERVER, mac="52:54:00:12:34:56\necho x")
    with pytest.raises(BadInput, match="mac"):
        DiscoverBoot(server_url=SERVER, kernel_url=f"{LIVE}/v", initrd_url=f"{LIVE}/i", mac="nope")
    with pytest.raises(BadInput, match="reason"):
        WaitBoot(server_url=SERVER, node="n1", reason="busy || reboot")
    with pytest.raises(BadInput, match="reason"):
        WaitBoot(server_url=SERVER, node="n1", reason="x" * 201)
    with pytest.raises(BadInput, match="method"):
        LocalBoot(server_url=SERVER, node="n1", method="grub")
    with pytest.raises(BadInput, match="drive"):
        LocalBoot(server_url=SERVER, node="n1", drive="0x80 || shell")
    with pytest.raises(BadInput, match="node"):
        LocalBoot(server_url=SERVER, node="N1")


def test_contexts_are_frozen() -> None:
    ctx = LocalBoot(server_url=SERVER, node="node-7")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.node = "x"  # type: ignore[misc]


# --- templates -------------------------------------------------------------------------------------------


def test_one_shipped_template_per_mode() -> None:
    names = {p.name for p in SHIPPED_TEMPLATES.glob("*.ipxe.j2") if not p.name.startswith("_")}
    assert names == {f"{m}.ipxe.j2" for m in ("local", "reimage", "discover", "unknown", "wait")}


def test_operator_template_overrides_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "local.ipxe.j2").write_text("#!ipxe\necho site {{ node }}\nexit\n")
    assert render_ipxe(CASES["local"], tmp_path) == "#!ipxe\necho site node-7\nexit\n"
    # modes the operator did not override still use the shipped templates
    assert render_ipxe(CASES["reimage"], tmp_path) == render_ipxe(CASES["reimage"])


def test_operator_can_override_the_shared_retry_macro(tmp_path: Path) -> None:
    (tmp_path / "_retry.ipxe.j2").write_text(
        "{% macro fetch(label, command, what, url) %}{{ command }} || goto failed{% endmacro %}"
    )
    text = IpxeRenderer(tmp_path).render(CASES["reimage"])
    assert (
        "initrd --name initrd.img --timeout 30000 http://10.0.0.1:8080/boot/live/initrd.img || goto failed"
        in text
    )


def test_edited_operator_template_is_reloaded(tmp_path: Path) -> None:
    renderer = IpxeRenderer(tmp_path)
    path = tmp_path / "wait.ipxe.j2"
    path.write_text("#!ipxe\necho one\n")
    assert renderer.render(CASES["wait"]) == "#!ipxe\necho one\n"
    path.write_text("#!ipxe\necho two, longer\n")
    os.utime(path, (1, 4_000_000_000))
    assert renderer.render(CASES["wait"]) == "#!ipxe\necho two, longer\n"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("#!ipxe\necho {{ nodename }}\n", "'nodename' is undefined"),
        ("#!ipxe\n{% if %}\n", r"local.ipxe.j2:2: "),
        ("#!ipxe\n{{ node.__class__.__mro__ }}\n", "iPXE template local.ipxe.j2"),
        ("#!ipxe\n{{ ''.__class__.__subclasses__() }}\n", "refused by the sandbox|undefined"),
        ("echo no magic line\n", "does not start with '#!ipxe'"),
    ],
)
def test_broken_operator_templates_are_config_errors(tmp_path: Path, template: str, message: str) -> None:
    (tmp_path / "local.ipxe.j2").write_text(template)
    with pytest.raises(ConfigError, match=message) as err:
        IpxeRenderer(tmp_path).render(CASES["local"])
    assert err.value.hint


def test_crlf_operator_template_renders_with_lf(tmp_path: Path) -> None:
    (tmp_path / "local.ipxe.j2").write_text("#!ipxe\r\necho x\r\n")
    assert IpxeRenderer(tmp_path).render(CASES["local"]) == "#!ipxe\necho x\n"


def test_missing_template_dir_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        IpxeRenderer(tmp_path / "nope")


def test_missing_template_is_config_error(tmp_path: Path) -> None:
    # an operator directory cannot remove a shipped template, so simulate a context with no template
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Odd(WaitBoot):
        mode = "odd"

    with pytest.raises(ConfigError, match=r"odd\.ipxe\.j2 not found"):
        render_ipxe(Odd(server_url=SERVER, node="n1"))


def test_variables_are_documented_in_each_docstring() -> None:
    common = {"server_url", "retries", "retry_delay", "on_failure", "failure_delay", "mode", "boot_url"}
    for ctx in CASES.values():
        doc = (type(ctx).__doc__ or "") + (type(ctx).__mro__[1].__doc__ or "")
        for name in set(ctx.variables()) - common:
            assert f"``{name}``" in doc, f"{type(ctx).__name__} does not document {name}"
