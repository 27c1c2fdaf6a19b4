"""Nodes and their MACs."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ..errors import BadInput, Conflict
from ..states import NodeState
from ._util import jsonable
from .schema import node_macs, nodes

_MAC_HEX = re.compile(r"[0-9a-f]{12}")


def normalise_mac(text: str) -> str:
    """``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff``, ``aabbccddeeff`` ... -> ``aa:bb:cc:dd:ee:ff``.

    :raises BadInput: not 48 bits of hex.
    """
    stripped = text.strip().lower()
    digits = re.sub(r"[:.\-]", "", stripped)
    groups = re.split(r"[:.\-]", stripped)
    if not _MAC_HEX.fullmatch(digits) or len({len(g) for g in groups}) != 1:
        raise BadInput(f"MAC address {text!r} is not 6 bytes of hex", hint="write it as aa:bb:cc:dd:ee:ff")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    state: NodeState
    arch: str
    macs: tuple[str, ...]
    current_image: str | None
    target_image: str | None
    lldp_switch: str | None
    lldp_port: str | None
    port_index: int | None
    dmi_serial: str | None
    dmi_uuid: str | None
    disks: tuple[dict[str, Any], ...]
    boot_time: datetime | None
    last_seen: datetime | None
    reason: str | None
    node_token_hash: str | None
    created: datetime
    updated: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; never contains the token hash."""
        return {
            f.name: jsonable(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("id", "node_token_hash")
        }


def _node(row: RowMapping, macs: tuple[str, ...]) -> Node:
    values = dict(row)
    values["state"] = NodeState(values["state"])
    values["disks"] = tuple(values["disks"] or ())
    return Node(macs=macs, **values)


def _macs(conn: Connection, node_ids: list[int]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {i: [] for i in node_ids}
    if node_ids:
        query = (
            sa.select(node_macs.c.node_id, node_macs.c.mac)
            .where(node_macs.c.node_id.in_(node_ids))
            .order_by(node_macs.c.mac)
        )
        for node_id, mac in conn.execute(query):
            found[node_id].append(mac)
    return {i: tuple(m) for i, m in found.items()}


def _one(conn: Connection, where: sa.ColumnElement[bool]) -> Node | None:
    row = conn.execute(sa.select(nodes).where(where)).mappings().first()
    if row is None:
        return None
    return _node(row, _macs(conn, [row["id"]])[row["id"]])


def get(conn: Connection, name: str) -> Node | None:
    return _one(conn, nodes.c.name == name)


def get_by_mac(conn: Connection, mac: str) -> Node | None:
    owner = sa.select(node_macs.c.node_id).where(node_macs.c.mac == mac).scalar_subquery()
    return _one(conn, nodes.c.id == owner)


def list_all(conn: Connection) -> list[Node]:
    rows = conn.execute(sa.select(nodes).order_by(nodes.c.name)).mappings().all()
    macs = _macs(conn, [r["id"] for r in rows])
    return [_node(r, macs[r["id"]]) for r in rows]


def insert(conn: Connection, *, name: str, state: NodeState, now: datetime, **values: Any) -> Node:
    """Add a node row.

    :raises Conflict: the name is taken (also when another process inserted it a moment ago).
    """
    try:
        with conn.begin_nested():
            conn.execute(
                nodes.insert().values(name=name, state=str(state), created=now, updated=now, **values)
            )
    except sa.exc.IntegrityError:
        raise Conflict(
            f"node name {name!r} is already taken", hint="forget the old node first: cmt node forget NAME"
        ) from None
    node = get(conn, name)
    assert node is not None
    return node


def update(
    conn: Connection, name: str, *, now: datetime, expect_state: NodeState | None = None, **values: Any
) -> bool:
    """Set columns of one node; with ``expect_state``, only if it is still in that state.

    Returns whether a row changed: False means another writer moved the node first (or it is gone).
    """
    if "state" in values:
        values["state"] = str(values["state"])
    query = nodes.update().where(nodes.c.name == name).values(updated=now, **values)
    if expect_state is not None:
        query = query.where(nodes.c.state == str(expect_state))
    return conn.execute(query).rowcount == 1


def add_macs(conn: Connection, node: Node, macs: list[str], now: datetime) -> list[str]:
    """Attach MACs not yet known; returns the ones added.

    :raises Conflict: one of them belongs to another node.
    """
    added = []
    for mac in macs:
        if mac in node.macs:
            continue
        owner = conn.execute(
            sa.select(nodes.c.name).join(node_macs).where(node_macs.c.mac == mac)
        ).scalar_one_or_none()
        if owner is not None:
            raise Conflict(
                f"MAC {mac} belongs to node {owner!r}, not {node.name!r}",
                hint=f"forget {owner!r} first if the NIC moved: cmt node forget {owner}",
                details={"mac": mac, "node": owner},
            )
        try:
            with conn.begin_nested():
                conn.execute(node_macs.insert().values(mac=mac, node_id=node.id, created=now))
        except sa.exc.IntegrityError:
            raise Conflict(f"MAC {mac} was registered by another node at the same moment") from None
        added.append(mac)
    return added


def delete(conn: Connection, name: str) -> bool:
    return conn.execute(nodes.delete().where(nodes.c.name == name)).rowcount == 1


def count_by_state(conn: Connection) -> dict[NodeState, int]:
    rows = conn.execute(sa.select(nodes.c.state, sa.func.count()).group_by(nodes.c.state))
    counts = dict.fromkeys(NodeState, 0)
    for state, n in rows:
        counts[NodeState(state)] = n
    return counts
