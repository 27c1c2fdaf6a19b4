"""Property tests: whatever the catalogue or database holds, a script gains no command, line or setting."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cmt_slurm.errors import BadInput
from cmt_slurm.ipxe import DiscoverBoot, ReimageBoot, WaitBoot, render_ipxe

SERVER = "http://10.0.0.1:8080"
SAFE: dict[str, Any] = {
    "server_url": SERVER,
    "kernel_url": f"{SERVER}/boot/live/vmlinuz",
    "initrd_url": f"{SERVER}/boot/live/initrd.img",
    "node": "node-7",
    "image": "debian13-2026.11",
    "deployment": "42",
    "token": "tok",
    "image_url": f"{SERVER}/images/debian13-2026.11",
    "image_sha256": "0" * 64,
    "disk": "/dev/vda",
    "extra_args": (),
}
COMMANDS = {
    "echo",
    "set",
    "kernel",
    "initrd",
    "inc",
    "iseq",
    "sleep",
    "goto",
    "boot",
    "chain",
    "exit",
    "reboot",
}
KNOWN_SETTINGS = {
    "${cmt_tries}",
    "${netX/mac}",
    "${net0/mac}",
    "${uuid}",
    "${serial:uristring}",
    "${buildarch}",
}
NASTY = st.text(alphabet=st.sampled_from(list("ab1-_./:?&=|$%{}#\"' \t\n\r\\;")), max_size=30)
BASELINE = render_ipxe(ReimageBoot(**SAFE))


def shape(text: str) -> list[str]:
    """Each line's first word (labels and comments as such): what iPXE will execute, in order."""
    out = []
    for line in text.splitlines():
        word = line.split(" ", 1)[0]
        out.append(":label" if word.startswith(":") else "#" if word.startswith("#") else word)
    return out


def check_script(text: str) -> None:
    assert shape(text) == shape(BASELINE)
    for word in shape(text):
        assert word in COMMANDS | {":label", "#", "#!ipxe"}
    assert set(re.findall(r"\$\{[^}]*\}", text)) <= KNOWN_SETTINGS
    assert text.count("&&") == BASELINE.count("&&")
    assert text.count("||") == BASELINE.count("||")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["node", "image", "deployment", "token", "image_url", "kernel_url", "disk", "image_sha256"]
    ),
    st.one_of(NASTY, st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True)),
)
def test_one_hostile_field(field: str, value: str) -> None:
    if field.endswith("_url"):
        value = f"{SERVER}/{value}"
    try:
        ctx = ReimageBoot(**(SAFE | {field: value}))
    except BadInput:
        return
    check_script(render_ipxe(ctx))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(NASTY, st.from_regex(r"[a-z]{1,8}(=[a-z0-9,]{1,8})?", fullmatch=True)), max_size=4))
def test_hostile_kernel_args(args: list[str]) -> None:
    try:
        ctx = ReimageBoot(**(SAFE | {"extra_args": tuple(args)}))
    except BadInput:
        return
    text = render_ipxe(ctx)
    kernel_lines = [line for line in text.splitlines() if line.startswith("kernel ")]
    assert len(kernel_lines) == 1
    assert kernel_lines[0].endswith(
        " ".join(["cmt.mac=${netX/mac}", *args]).strip() + " && goto kernel_ok ||"
    )


@settings(max_examples=200, deadline=None)
@given(NASTY)
def test_hostile_reason_and_mac(value: str) -> None:
    for build in (
        lambda: WaitBoot(server_url=SERVER, node="n1", reason=value),
        lambda: DiscoverBoot(
            server_url=SERVER, kernel_url=SAFE["kernel_url"], initrd_url=SAFE["initrd_url"], mac=value
        ),
    ):
        try:
            ctx = build()
        except BadInput:
            continue
        text = render_ipxe(ctx)
        assert set(re.findall(r"\$\{[^}]*\}", text)) <= KNOWN_SETTINGS
        assert "\r" not in text
        assert all(shape_word in COMMANDS | {":label", "#", "#!ipxe"} for shape_word in shape(text))
