"""Nodes: registration from the live env, listing, and the operator's clear/forget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..agent.lldp import LldpInfo
from ..catalogue import ARCHES
from ..errors import BadInput, CmtError, Conflict, Unauthorized
from ..naming import node_name
from ..states import NodeState, Stage
from ..store import deployments, nodes
from ..store.deployments import Deployment
from ..store.nodes import Node, normalise_mac
from . import secrets
from .deploy import Deployer
from .results import Registration


def _text(value: Any, where: str, limit: int) -> str | None:
    """Registration text as the columns hold it (PostgreSQL refuses what is longer than the column)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise BadInput(f"{where}: must be printable text of at most {limit} characters")
    return value


def _fields(lldp: LldpInfo | None, dmi: Mapping[str, Any] | None, arch: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if lldp is not None:
        fields["lldp_switch"] = _text(lldp.system_name or lldp.chassis_id, "lldp.system_name", 255)
        fields["lldp_port"] = _text(lldp.port_id, "lldp.port_id", 255)
        fields["port_index"] = lldp.port_index
    if dmi:
        fields["dmi_serial"] = _text(dmi.get("serial"), "dmi.serial", 255)
        fields["dmi_uuid"] = _text(dmi.get("uuid"), "dmi.uuid", 64)
    if arch:
        if arch not in ARCHES:
            raise BadInput(f"arch: {arch!r} is not one of {', '.join(ARCHES)}")
        fields["arch"] = arch
    return fields


class Registry(Deployer):
    def list_nodes(self) -> list[Node]:
        with self.store.read() as conn:
            return nodes.list_all(conn)

    def get_node(self, name: str) -> Node:
        """:raises NotFound: no such node."""
        with self.store.read() as conn:
            return self._node(conn, name)

    def node_deployments(self, name: str, limit: int = 20) -> list[Deployment]:
        """The node's deployments, newest first. :raises NotFound: no such node."""
        with self.store.read() as conn:
            return deployments.list_for_node(conn, self._node(conn, name).id, limit)

    def node_counts(self) -> dict[NodeState, int]:
        with self.store.read() as conn:
            return nodes.count_by_state(conn)

    def register_node(
        self,
        macs: Sequence[str],
        lldp: LldpInfo | None = None,
        dmi: Mapping[str, Any] | None = None,
        disks: Sequence[Mapping[str, Any]] = (),
        *,
        arch: str | None = None,
        remote: str | None = None,
    ) -> Registration:
        """Record a node the live env reports: a known MAC finds its node, an unknown one is named by LLDP.

        A name already held by other MACs is refused (and logged), never taken over. When the node has a
        deployment waiting to start, the registration answers its plan (a discovery-mode live env then
        moves it to ``identify`` and works with the fresh token in the plan).

        :raises BadInput: no or malformed MACs, no LLDP frame for an unknown node, no port number in it.
        :raises Conflict: the MACs belong to different nodes, or the LLDP name is another node's.
        """
        if not macs:
            raise BadInput("registration lists no MAC address", hint="send the MACs of the node's NICs")
        wanted = sorted({normalise_mac(m) for m in macs})
        now = self.clock()
        fields = _fields(lldp, dmi, arch)
        if disks:
            fields["disks"] = [dict(d) for d in disks]
        refused: CmtError | None = None
        result: Registration | None = None
        with self.store.begin() as conn:
            owners = {n.name: n for m in wanted if (n := nodes.get_by_mac(conn, m)) is not None}
            if len(owners) > 1:
                refused = Conflict(
                    f"MACs {', '.join(wanted)} belong to different nodes: {', '.join(sorted(owners))}",
                    hint="forget the stale node (cmt node forget NAME) if hardware moved",
                )
            elif owners:
                node = next(iter(owners.values()))
                added = nodes.add_macs(conn, node, wanted, now)
                changed = {
                    k: v for k, v in fields.items() if getattr(node, k) != (tuple(v) if k == "disks" else v)
                }
                nodes.update(conn, node.name, now=now, last_seen=now, **fields)
                node = self._node(conn, node.name)
                if added or changed:  # the agent re-registers every 20 s while it waits: log changes only
                    detail = {"added_macs": added, **{k: v for k, v in changed.items() if k != "disks"}}
                    self._event(conn, f"node:{node.name}", "registered", node=node.name, detail=detail)
                result = Registration(node, self._plan_for_discovery(conn, node))
            else:
                refused, result = self._create(conn, wanted, lldp, fields)
            if refused is not None:
                detail = {"macs": wanted, "error": refused.message, **({"remote": remote} if remote else {})}
                self._event(conn, "server", "conflict", detail=detail)
        if refused is not None:
            raise refused
        assert result is not None
        return result

    def _create(
        self, conn: Any, macs: list[str], lldp: LldpInfo | None, fields: dict[str, Any]
    ) -> tuple[CmtError | None, Registration | None]:
        if lldp is None:
            raise BadInput(
                f"unknown MACs {', '.join(macs)} and no LLDP frame to name the node by",
                hint="check that the switch sends LLDP on that port (lldpd/LLDP enabled)",
            )
        name = node_name(lldp, self.settings.naming, self.settings.default_name_template)
        holder = nodes.get(conn, name)
        if holder is not None:
            return Conflict(
                f"node name {name!r} (from switch {fields.get('lldp_switch')!r} port {lldp.port_id!r}) "
                f"is held by MACs {', '.join(holder.macs)}; refusing {', '.join(macs)}",
                hint=f"if the node's NICs were replaced, forget the old entry: cmt node forget {name}",
                details={"node": name, "macs": macs},
            ), None
        node = nodes.insert(
            conn, name=name, state=NodeState.DISCOVERED, now=self.clock(), last_seen=self.clock(), **fields
        )
        nodes.add_macs(conn, node, macs, self.clock())
        node = self._node(conn, name)
        self._event(
            conn,
            f"node:{name}",
            "node",
            node=name,
            from_state=NodeState.UNKNOWN,
            to_state=NodeState.DISCOVERED,
            detail={
                "why": "first registration",
                "macs": macs,
                "switch": node.lldp_switch,
                "port": node.lldp_port,
            },
        )
        return None, Registration(node, None, created=True)

    def clear_failed(self, name: str, actor: str) -> Node:
        """An operator says the failure is handled: back to ready (image intact) or discovered.

        :raises NotFound: no such node. :raises Conflict: the node is not failed.
        """
        with self.store.begin() as conn:
            node = self._node(conn, name)
            if node.state is not NodeState.FAILED:
                raise Conflict(
                    f"node {name!r} is {node.state}, not failed", hint="only failed nodes are cleared"
                )
            to = NodeState.READY if node.current_image else NodeState.DISCOVERED
            return self._move_node(
                conn, node, to, actor, detail={"cleared": node.reason}, reason=None, target_image=None
            )

    def forget(self, name: str, actor: str) -> None:
        """Remove the node, its MACs and deployments; its events stay in the audit trail.

        :raises NotFound: no such node.
        """
        with self.store.begin() as conn:
            node = self._node(conn, name)
            dep = deployments.active_for_node(conn, node.id)
            detail: dict[str, Any] = {"macs": list(node.macs), "state": str(node.state)}
            if dep is not None:
                detail["cancelled_deployment"] = dep.id
                if dep.stage not in (Stage.REQUESTED, Stage.QUEUED):
                    detail["cancelled_at_stage"] = str(dep.stage)
            nodes.delete(conn, name)
            self._event(conn, actor, "forgotten", node=name, from_state=node.state, detail=detail)

    def verify_node_token(self, name: str, token: str | None, remote: str | None = None) -> str:
        """The actor ``node:<name>`` if ``token`` is the node's token (or the one its deployment's plan
        issued, which becomes the node's token when that deployment is done).

        :raises NotFound: no such node. :raises Unauthorized: wrong or missing token (logged).
        """
        with self.store.begin() as conn:
            node = self._node(conn, name)
            if self._node_token_ok(conn, node, token):
                return f"node:{name}"
            detail = {"token": "node", "why": "wrong node token", **({"remote": remote} if remote else {})}
            self._event(conn, "server", "auth_failed", node=name, detail=detail)
        raise Unauthorized(
            f"node {name}: wrong or missing node token",
            hint="the token is in /etc/cmt/node.json, written when the node was last reimaged",
        )

    def _node_token_ok(self, conn: Any, node: Node, token: str | None) -> bool:
        dep = deployments.active_for_node(conn, node.id)
        pending = dep.node_token_hash if dep is not None else None
        # Both compared, always: the time taken does not say which one matched.
        return secrets.matches(token, node.node_token_hash) | secrets.matches(token, pending)

    def node_ready(
        self,
        name: str,
        image: str,
        boot_time: datetime | None,
        node_token: str | None,
        remote: str | None = None,
    ) -> Node:
        """The installed OS checked in (``cmt-node ready`` at boot) saying it runs ``image``.

        Finishes a deployment that reached identity/kexec/boot with that image (the plan's node token then
        becomes the node's); a node back on another image mid-deployment failed (it fell back to the old
        disk). A discovered node running a catalogue image is adopted as ready.

        :raises NotFound: no such node. :raises Unauthorized: wrong node token.
        """
        if _text(image, "image", 128) is None:
            raise BadInput("image: the node must say which image it runs", hint="see /etc/cmt/node.json")
        if boot_time is not None and boot_time.tzinfo is None:
            raise BadInput(
                "boot_time: needs a time zone", hint="send ISO 8601 with an offset, e.g. ...+00:00"
            )
        actor = self.verify_node_token(name, node_token, remote)
        with self.store.begin() as conn:
            node = self._node(conn, name)
            seen: dict[str, Any] = {"boot_time": boot_time, "last_seen": self.clock()}
            dep = deployments.active_for_node(conn, node.id)
            if (
                dep is not None
                and dep.stage in (Stage.IDENTITY, Stage.KEXEC, Stage.BOOT)
                and image == dep.image
            ):
                if dep.stage is not Stage.BOOT:
                    dep = self._move_stage(conn, dep, Stage.BOOT, actor)
                dep = self._move_stage(conn, dep, Stage.DONE, actor, detail={"boot_time": boot_time})
                self._finish(conn, dep, actor, **seen)
            elif dep is not None and dep.stage not in (Stage.REQUESTED, Stage.QUEUED):
                self._fail(conn, dep, actor, f"node came back running {image}")
                nodes.update(conn, name, now=self.clock(), current_image=image, **seen)
            elif node.state is NodeState.DISCOVERED:
                detail = {"image": image}
                self._move_node(
                    conn, node, NodeState.READY, actor, detail=detail, current_image=image, **seen
                )
            else:
                if image != node.current_image:
                    self._event(
                        conn, actor, "image", node=name, detail={"from": node.current_image, "to": image}
                    )
                nodes.update(conn, name, now=self.clock(), current_image=image, **seen)
            return self._node(conn, name)
