import pytest

from cmt_slurm.agent.cmdline import OPTIONS, describe_options, parse_cmdline, split_cmdline
from cmt_slurm.errors import BadInput

SHA = "ab" * 32


def test_reimage_line_from_the_ipxe_script() -> None:
    opts = parse_cmdline(
        "console=ttyS0 quiet cmt.server=http://10.77.0.1:8080/ cmt.mode=reimage cmt.deployment=7 "
        f"cmt.token=tok-1 cmt.disk=/dev/vda cmt.sha256={SHA.upper()} cmt.debug\n"
    )
    assert opts.server == "http://10.77.0.1:8080"
    assert (opts.mode, opts.deployment, opts.token, opts.disk) == ("reimage", "7", "tok-1", "/dev/vda")
    assert opts.sha256 == SHA
    assert opts.debug is True
    assert opts.lldp_timeout == 35.0
    assert opts.warnings == ()


def test_mode_defaults_to_discover_without_a_deployment() -> None:
    opts = parse_cmdline("cmt.server=http://s:1")
    assert opts.mode == "discover"
    assert opts.debug is False


def test_bootif_gives_the_mac_and_cmt_mac_wins() -> None:
    assert parse_cmdline("cmt.server=http://s BOOTIF=01-52-54-00-AB-CD-EF").mac == "52:54:00:ab:cd:ef"
    line = "cmt.server=http://s BOOTIF=01-52-54-00-ab-cd-ef cmt.mac=52:54:00:00:00:01"
    assert parse_cmdline(line).mac == "52:54:00:00:00:01"


def test_quoted_values_keep_their_spaces() -> None:
    assert split_cmdline('a="b c" d  e=""') == ["a=b c", "d", "e="]
    assert parse_cmdline('cmt.server="http://s:1" cmt.iface="eth0"').iface == "eth0"


def test_unknown_cmt_words_are_warnings_not_errors() -> None:
    opts = parse_cmdline("cmt.server=http://s cmt.sever=x cmt.selftest")
    assert len(opts.warnings) == 2
    assert "cmt.sever=x" in opts.warnings[0]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("cmt.mode=discover", "cmt.server is missing"),
        ("cmt.server=ftp://x", "not an http(s) URL"),
        ("cmt.server=http://s cmt.mode=reimage cmt.token=t", "needs cmt.deployment"),
        ("cmt.server=http://s cmt.deployment=3", "needs cmt.token"),
        ("cmt.server=http://s cmt.mode=wipe", "not one of reimage, discover"),
        ("cmt.server=http://s cmt.disk=vda", "not a device path"),
        ("cmt.server=http://s cmt.sha256=123", "not 64 hex digits"),
        ("cmt.server=http://s cmt.mac=zz", "not a MAC address"),
        ("cmt.server=http://s cmt.lldp_timeout=soon", "cmt.lldp_timeout='soon'"),
        ("cmt.server=http://s cmt.token", "needs a value"),
    ],
)
def test_bad_lines_name_the_word(line: str, needle: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_cmdline(line)
    assert needle in err.value.message
    assert err.value.hint


def test_every_option_help_names_its_parameter() -> None:
    text = describe_options()
    for opt in OPTIONS:
        assert (f"{opt.key}={opt.param}" if opt.param else opt.key) in text
