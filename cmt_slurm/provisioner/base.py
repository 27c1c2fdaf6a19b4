"""The provisioner's shared machinery: clock, settings, and the two ways state changes (with an event)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from ..catalogue import Catalogue, Image, load_catalogue
from ..config import Settings
from ..errors import Conflict, NotFound
from ..states import NodeState, Stage, check_node_transition, check_stage_transition
from ..store import Store, deployments, events, nodes
from ..store._util import utcnow
from ..store.deployments import Deployment
from ..store.nodes import Node
from .results import BootMode

#: Stages after which the old disk content is gone (a failure then leaves no intact image).
DISK_TOUCHED = frozenset({Stage.WRITE, Stage.GROW, Stage.IDENTITY, Stage.KEXEC, Stage.BOOT})


class Base:
    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.settings = settings
        self.clock = clock

    # -- reads shared by every noun

    def _node(self, conn: Connection, name: str) -> Node:
        node = nodes.get(conn, name)
        if node is None:
            raise NotFound(f"no node named {name!r}", hint="see the known nodes with: cmt node list")
        return node

    def reload_catalogue(self) -> None:
        """Read the manifest directory again (another server process may have added or removed one)."""
        directory = self.catalogue.directory
        if directory is not None:
            self.catalogue = load_catalogue(directory)

    def _image(self, name: str) -> Image:
        image = self.catalogue.get(name)
        if (
            image is None
            and self.catalogue.directory is not None
            and (self.catalogue.directory / f"{name}.toml").is_file()
        ):
            self.reload_catalogue()
            image = self.catalogue.get(name)
        if image is None:
            known = ", ".join(i.name for i in self.catalogue) or "none"
            raise NotFound(f"no image named {name!r} in the catalogue", hint=f"catalogue images: {known}")
        return image

    def image_url(self, image: Image) -> str:
        """Where a node downloads ``image`` from: our server, or the manifest's URL (``external`` mode)."""
        if self.settings.image_serving == "external" and image.local_path is None:
            return image.url
        return f"{self.settings.public_url.rstrip('/')}/images/{image.name}"

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.deployment_token_ttl)

    # -- writes: every change of state goes through the tables and leaves an event in the same transaction

    def _event(self, conn: Connection, actor: str, kind: str, **fields: Any) -> int:
        return events.append(conn, at=self.clock(), actor=actor, kind=kind, **fields)

    def _move_node(
        self,
        conn: Connection,
        node: Node,
        to: NodeState,
        actor: str,
        *,
        deployment: int | None = None,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> Node:
        why = check_node_transition(node.state, to)
        if not nodes.update(conn, node.name, now=self.clock(), expect_state=node.state, state=to, **values):
            raise Conflict(
                f"node {node.name!r} changed state while this request ran (it was {node.state})",
                hint="read it again (cmt node show) and retry",
            )
        self._event(
            conn,
            actor,
            "node",
            node=node.name,
            deployment=deployment,
            from_state=node.state,
            to_state=to,
            detail={"why": why, **(detail or {})},
        )
        return replace(node, state=to, **values)

    def _move_stage(
        self,
        conn: Connection,
        dep: Deployment,
        to: Stage,
        actor: str,
        *,
        outcome: str | None = None,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> Deployment:
        check_stage_transition(dep.stage, to)
        now = self.clock()
        spent = max((now - dep.stage_started).total_seconds(), 0.0)
        seconds = {
            **dep.stage_seconds,
            str(dep.stage): round(dep.stage_seconds.get(str(dep.stage), 0) + spent, 3),
        }
        values.update(stage=to, stage_started=now, stage_seconds=seconds)
        if to in (Stage.DONE, Stage.FAILED):
            values.update(ended=now, outcome=outcome or ("success" if to is Stage.DONE else "failed"))
            values.setdefault("token_used", True)
        if not deployments.update(conn, dep, **values):
            raise Conflict(
                f"deployment {dep.id} is no longer at stage {dep.stage} (another report moved it first)",
                hint="read it again (GET /api/v1/deployments/ID) and report the stage after its current one",
            )
        self._event(
            conn,
            actor,
            "stage",
            node=dep.node,
            deployment=dep.id,
            from_state=dep.stage,
            to_state=to,
            detail={"seconds": round(spent, 3), "image": dep.image, **(detail or {})},
        )
        return replace(dep, **values)

    def _fail(self, conn: Connection, dep: Deployment, actor: str, message: str) -> Deployment:
        """End ``dep`` as failed and move its node to failed with the reason Slurm will drain it with."""
        stage = dep.stage
        # The agent writes "<stage>: <why>"; the reason names the stage once.
        message = message.removeprefix(f"{stage}: ")
        reason = f"cmt: reimage to {dep.image} failed at {stage}: {message}"
        failed = self._move_stage(
            conn, dep, Stage.FAILED, actor, message=message, detail={"message": message}
        )
        node = nodes.get(conn, dep.node)
        if node is not None and node.state is NodeState.REIMAGING:
            extra: dict[str, Any] = {"current_image": None} if stage in DISK_TOUCHED else {}
            self._move_node(
                conn,
                node,
                NodeState.FAILED,
                actor,
                deployment=dep.id,
                detail={"reason": reason},
                reason=reason,
                **extra,
            )
        return failed

    def _boot_mode_without_deployment(self, node: Node) -> tuple[BootMode, str]:
        if node.current_image is None:
            return BootMode.WAIT, f"{node.state}: no intact image on disk; waiting for a target"
        return BootMode.LOCAL, f"{node.state}: runs {node.current_image}"
