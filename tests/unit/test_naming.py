"""node_name: rule matching, templates, and the errors an operator sees."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmt_slurm.agent.lldp import LldpInfo, port_index_of
from cmt_slurm.config import NamingRule
from cmt_slurm.errors import BadInput
from cmt_slurm.naming import HOSTNAME, node_name, switch_label, validate_template


def info(
    port_id: str = "Ethernet1/7",
    system_name: str | None = "sw-r07",
    chassis_id: str = "00:11:22:aa:bb:cc",
    port_id_subtype: str = "interface-name",
    port_description: str | None = None,
) -> LldpInfo:
    return LldpInfo(
        chassis_id=chassis_id,
        chassis_id_subtype="mac",
        port_id=port_id,
        port_id_subtype=port_id_subtype,
        port_description=port_description,
        system_name=system_name,
        system_description=None,
        ttl=120,
        port_index=port_index_of(port_id, port_id_subtype, port_description),
    )


DEFAULT = "node-{port_index}"


def test_default_template_when_no_rule() -> None:
    assert node_name(info(), (), DEFAULT) == "node-7"


def test_issue_example_rack_offset() -> None:
    # switch sw-r07 ports 1-40 -> node-{241+port_index}
    rules = [
        NamingRule(switch="sw-r07", template="node-{port_index}", offset=241, first_port=1, last_port=40)
    ]
    assert node_name(info("Ethernet1/1"), rules, DEFAULT) == "node-242"
    assert node_name(info("Ethernet1/40"), rules, DEFAULT) == "node-281"
    assert node_name(info("Ethernet1/41"), rules, DEFAULT) == "node-41"  # outside the range: default


def test_first_matching_rule_wins() -> None:
    rules = [
        NamingRule(switch="sw-r07", template="r7n{port_index:02d}"),
        NamingRule(switch="sw-*", template="other-{port_index}"),
    ]
    assert node_name(info("swp3"), rules, DEFAULT) == "r7n03"
    assert node_name(info("swp3", system_name="sw-r08"), rules, DEFAULT) == "other-3"


def test_glob_is_case_insensitive() -> None:
    rules = [NamingRule(switch="LEAF-R?7*", template="l{port_index}")]
    assert node_name(info(system_name="leaf-r07.example.org"), rules, DEFAULT) == "l7"


def test_rule_by_chassis_id() -> None:
    rules = [NamingRule(switch="00:11:22:AA:BB:CC", template="c{port_index}")]
    assert node_name(info(system_name=None), rules, DEFAULT) == "c7"
    assert node_name(info(), rules, DEFAULT) == "c7"
    assert node_name(info(chassis_id="00:11:22:aa:bb:cd"), rules, DEFAULT) == "node-7"


def test_glob_on_chassis_id_and_star_matches_all() -> None:
    assert (
        node_name(
            info(system_name=None), [NamingRule(switch="00:11:22:*", template="v{port_index}")], DEFAULT
        )
        == "v7"
    )
    assert (
        node_name(info(system_name=None), [NamingRule(switch="*", template="s{port_index}")], DEFAULT) == "s7"
    )


def test_exact_name_with_glob_characters() -> None:
    rules = [NamingRule(switch="sw[1]", template="b{port_index}")]
    assert node_name(info(system_name="SW[1]"), rules, DEFAULT) == "b7"


def test_port_range_bounds_are_inclusive_and_use_raw_index() -> None:
    rules = [NamingRule(switch="sw-r07", template="a{port_index}", offset=100, first_port=5, last_port=7)]
    assert node_name(info("swp5"), rules, DEFAULT) == "a105"
    assert node_name(info("swp7"), rules, DEFAULT) == "a107"
    assert node_name(info("swp4"), rules, DEFAULT) == "node-4"
    assert node_name(info("swp8"), rules, DEFAULT) == "node-8"


def test_switch_and_raw_index_fields() -> None:
    rules = [NamingRule(switch="*", template="{switch}-p{raw_index}-n{port_index}", offset=10)]
    assert node_name(info(system_name="SW_R07.example.org"), rules, DEFAULT) == "sw-r07-p7-n17"


def test_switch_label() -> None:
    assert switch_label(info(system_name="Leaf 07.dc1")) == "leaf-07"
    assert switch_label(info(system_name=None)) == "00-11-22-aa-bb-cc"


def test_no_port_index_is_a_clear_error() -> None:
    frame = info("00:11:22:33:44:17", port_id_subtype="mac")
    with pytest.raises(BadInput) as err:
        node_name(frame, (), DEFAULT)
    assert err.value.message.startswith("switch 'sw-r07' sent no usable port number")
    assert err.value.hint is not None
    assert "register the node's MAC by hand" in err.value.hint


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("node-{port}", r"unknown field \{port\}"),
        ("node-{}", r"empty field"),
        ("node-{0}", r"unknown field \{0\}"),
        ("node-{port_index.real}", r"unknown field"),
        ("node-{switch[0]}", r"unknown field"),
        ("node-{port_index:{switch}}", r"nested fields"),
        ("node-{port_index", r"expected '\}'"),
        ("node", r"uses no port number"),
        ("{switch}", r"uses no port number"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as err:
        validate_template(template)
    assert err.value.hint is not None
    assert "{port_index}" in err.value.hint


@pytest.mark.parametrize(
    "template",
    ["Node-{port_index}", "node_{port_index}", "-{port_index}", "{port_index}-", "n{port_index:>70}"],
)
def test_result_must_be_a_hostname(template: str) -> None:
    with pytest.raises(BadInput, match="is not a valid host name"):
        node_name(info(), [NamingRule(switch="sw-r07", template=template)], DEFAULT)


def test_bad_format_spec_is_bad_input() -> None:
    with pytest.raises(BadInput, match="naming template"):
        node_name(info(), [NamingRule(switch="sw-r07", template="n{port_index:q}")], DEFAULT)


def test_negative_index_after_offset_refused() -> None:
    with pytest.raises(BadInput, match="gives -3"):
        node_name(info("swp7"), [NamingRule(switch="sw-r07", offset=-10)], DEFAULT)


def test_invalid_default_template_refused_too() -> None:
    with pytest.raises(BadInput, match="unknown field"):
        node_name(info(), (), "node-{mac}")


def test_rules_are_plain_config_objects() -> None:
    # node_name takes any sequence of NamingRule, e.g. Settings.naming (a tuple)
    rule = NamingRule(switch="sw-r07", template="x{port_index}")
    assert node_name(info(), (dataclasses.replace(rule, offset=1),), DEFAULT) == "x8"


_PIECES = st.sampled_from([*"node-{}_:0123>.!rs[]aw", "{port_index}", "{switch}", "{raw_index:03d}"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_PIECES, max_size=12).map("".join),
    st.integers(-5, 5000),
    st.one_of(st.none(), st.text(max_size=20)),
)
def test_any_template_gives_a_hostname_or_bad_input(
    template: str, offset: int, system_name: str | None
) -> None:
    rule = NamingRule(switch="*", template=template, offset=offset)
    try:
        name = node_name(info(system_name=system_name or None), [rule], DEFAULT)
    except BadInput:
        return
    assert len(name) <= 63
    assert HOSTNAME.fullmatch(name)
