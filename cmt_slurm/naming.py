"""Node names from LLDP: which switch and port a node is cabled to decides what it is called. Pure.

A rule (``[[naming]]`` in cmt.toml, :class:`~cmt_slurm.config.NamingRule`) matches a frame when

- its ``switch`` equals, or is a glob (``fnmatch``) matching, the frame's system name or its chassis
  id, case-insensitively (so ``*`` matches every switch, ``00:11:22:*`` a vendor's MAC range), and
- the frame's port index lies within ``first_port``..``last_port`` (each optional, inclusive; compared
  with the raw index, before ``offset``).

Rules are tried in the order written and the **first** match wins, so put specific rules before globs.
A frame no rule matches is named by the default template with offset 0.

Templates are ``str.format`` text over three fields only: ``port_index`` (raw index + offset),
``raw_index`` (the number the switch sent) and ``switch`` (the system name, else the chassis id, made
hostname-safe: lowercased, up to the first dot, other characters than ``a-z 0-9 -`` turned into ``-``).
Format specs are allowed (``node{port_index:03d}``); attribute and item access are not. The result must
be a valid host name: ``[a-z0-9]([a-z0-9-]*[a-z0-9])?``, at most 63 characters.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Sequence

from .agent.lldp import LldpInfo
from .config import NamingRule
from .errors import BadInput

TEMPLATE_FIELDS = ("port_index", "raw_index", "switch")
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_TEMPLATE_HINT = "write e.g. 'node-{port_index}' or 'r07n{port_index:02d}'; fields: " + ", ".join(
    "{" + f + "}" for f in TEMPLATE_FIELDS
)


def validate_template(template: str) -> None:
    """Refuse a template that uses unknown fields, attribute/item access, or no port number at all.

    :raises BadInput: naming the template and the offending part.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BadInput(f"naming template {template!r}: {exc}", hint=_TEMPLATE_HINT) from None
    used = set()
    for _, field, spec, _conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            raise BadInput(
                f"naming template {template!r}: unknown field {{{field}}}"
                if field
                else f"naming template {template!r}: empty field {{}}",
                hint=_TEMPLATE_HINT,
            )
        if spec and "{" in spec:
            raise BadInput(
                f"naming template {template!r}: nested fields are not allowed", hint=_TEMPLATE_HINT
            )
        used.add(field)
    if not used & {"port_index", "raw_index"}:
        raise BadInput(
            f"naming template {template!r}: uses no port number, so every node would get the same name",
            hint=_TEMPLATE_HINT,
        )


def switch_label(info: LldpInfo) -> str:
    """The ``{switch}`` value: the system name (else chassis id), lowercased, first label, hostname-safe."""
    raw = (info.system_name or info.chassis_id).strip().lower()
    label = raw.split(".", 1)[0] or raw
    return re.sub(r"[^a-z0-9-]+", "-", label).strip("-")


def rule_matches(rule: NamingRule, info: LldpInfo, index: int) -> bool:
    """Whether ``rule`` applies to a frame from switch ``info`` whose port index is ``index``."""
    pattern = rule.switch.lower()
    candidates = [c.lower() for c in (info.system_name, info.chassis_id) if c]
    if not any(c == pattern or fnmatch.fnmatchcase(c, pattern) for c in candidates):
        return False
    if rule.first_port is not None and index < rule.first_port:
        return False
    return rule.last_port is None or index <= rule.last_port


def render_name(template: str, *, index: int, offset: int, switch: str) -> str:
    """Format one template and check the result is a host name.

    :raises BadInput: a bad template, or a result that is not a valid host name.
    """
    validate_template(template)
    port_index = index + offset
    if port_index < 0:
        raise BadInput(
            f"naming template {template!r}: port {index} with offset {offset} gives {port_index}",
            hint="make the rule's offset at least minus its first port",
        )
    try:
        name = template.format(port_index=port_index, raw_index=index, switch=switch)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"naming template {template!r}: {exc}", hint=_TEMPLATE_HINT) from None
    if len(name) > 63 or not HOSTNAME.fullmatch(name):
        raise BadInput(
            f"naming template {template!r} gives {name!r}, which is not a valid host name",
            hint="names are lowercase letters, digits and inner '-', 1 to 63 characters",
        )
    return name


def node_name(lldp: LldpInfo, rules: Sequence[NamingRule], default_template: str) -> str:
    """The name of the node cabled to the port ``lldp`` describes.

    :raises BadInput: the frame carries no usable port number, or the chosen template is invalid.
    """
    index = lldp.port_index
    switch = lldp.system_name or lldp.chassis_id
    if index is None:
        raise BadInput(
            f"switch {switch!r} sent no usable port number (port id {lldp.port_id!r}, "
            f"description {lldp.port_description!r})",
            hint="make the switch send interface names as port ids (then add a naming rule if needed), "
            "or register the node's MAC by hand",
        )
    for rule in rules:
        if rule_matches(rule, lldp, index):
            return render_name(rule.template, index=index, offset=rule.offset, switch=switch_label(lldp))
    return render_name(default_template, index=index, offset=0, switch=switch_label(lldp))
