"""Deployments: targets, Slurm feature requests, boot decisions, the reimager's reports, node check-in.

Token policy (one-time deployment tokens):

- A token is random, stored as its sha256, bound to one deployment, and slides: each accepted report
  extends its expiry by ``deployment_token_ttl``. A deployment whose token runs out fails.
- A token is handed out only while the deployment has not started (``requested``/``queued``): by
  ``set_target``/``request_features`` (to the admin or the node's own hook, for the kexec fast path), by
  ``boot_decision`` in the iPXE script, or in a discovery-mode registration's plan. Each hand-out issues
  a *fresh* token and invalidates the previous one, so a script fetched earlier cannot be replayed.
- Once the reimager has started, no request yields a token; once the deployment ended (``done`` consumes
  the token, ``failed`` too), the token is dead and the node's boot script is ``local``/``wait``.

Admission: ``max_concurrent_reimages`` slots, held from the token hand-out (for at most the admission
lease until the reimager reports) through ``grow``; beyond that a boot gets ``wait`` and an agent's first
report gets ``Busy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..catalogue import Image, image_features, select_image
from ..constraints import requirement_from_constraint, split_term
from ..errors import BadInput, Busy, CmtError, Conflict, NotFound, Unauthorized
from ..states import SLOT_STAGES, NodeState, Stage
from ..store import deployments, nodes
from ..store.deployments import Deployment
from ..store.nodes import Node, normalise_mac
from . import secrets
from .base import DISK_TOUCHED, Base
from .results import BootDecision, BootMode, Plan
from .site_files import load_site_files

_WAITING = (Stage.REQUESTED, Stage.QUEUED)
#: Seconds an admitted deployment may take to boot the reimager before its slot goes to another node
#: (a node that fetched its script but never came up must not hold a slot for the whole token lifetime).
ADMISSION_LEASE_S = 600


def _merge_features(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Slurm calls the helper once per feature of one reboot: later ``key=`` words replace earlier ones."""
    merged: dict[str, str] = {}
    for word in (*old, *new):
        term = split_term(word)
        merged[term[0] if term else word] = word
    return list(merged.values())


class Deployer(Base):
    def get_deployment(self, deployment_id: int) -> Deployment:
        """:raises NotFound: no such deployment."""
        with self.store.read() as conn:
            return self._deployment(conn, deployment_id)

    def active_deployments(self) -> list[Deployment]:
        with self.store.read() as conn:
            return deployments.list_active(conn)

    def _deployment(self, conn: Connection, deployment_id: int) -> Deployment:
        dep = deployments.get(conn, deployment_id)
        if dep is None:
            raise NotFound(
                f"no deployment {deployment_id}", hint="see cmt node show NAME for its deployments"
            )
        return dep

    # -- creating deployments

    def set_target(self, name: str, image_name: str, actor: str) -> Deployment:
        """Reimage ``name`` with ``image_name`` (also when it runs that image already: a reinstall).

        A deployment that has not started yet is retargeted in place (its token stays valid).
        :raises NotFound: node or image unknown. :raises Conflict: a reimage is running, or arch differs.
        """
        image = self._image(image_name)
        with self.store.begin() as conn:
            return self._target(conn, self._node(conn, name), image, [f"image={image.name}"], actor)

    def request_features(self, name: str, features: Sequence[str], actor: str) -> Deployment | None:
        """Turn the features Slurm asks the node for into a target image; None if it runs that already.

        Several calls before the node reboots accumulate (``os=debian13`` then ``libc=2.28``).
        :raises BadInput: the features are not a provisionable constraint. :raises NoMatch: no image fits.
        """
        if not features or any(not isinstance(f, str) or not f for f in features):
            raise BadInput("no features requested", hint='send e.g. {"features": ["os=debian13"]}')
        with self.store.begin() as conn:
            node = self._node(conn, name)
            pending = deployments.active_for_node(conn, node.id)
            words = list(features)
            if pending is not None and pending.stage in _WAITING and pending.actor == actor:
                words = _merge_features(pending.features, features)
            image = select_image(self.catalogue, requirement_from_constraint("&".join(words)), node.arch)
            if image.name == node.current_image:
                if pending is None and node.state is NodeState.READY:
                    return None
                if pending is not None and pending.stage in _WAITING:
                    self._cancel(conn, node, pending, actor, f"node already runs {image.name}")
                    return None
                # else: a reimage is rewriting the disk, or the node is failed/discovered: reimage.
            return self._target(conn, node, image, words, actor)

    def _target(self, conn: Connection, node: Node, image: Image, words: list[str], actor: str) -> Deployment:
        if image.arch != node.arch:
            raise Conflict(
                f"image {image.name} is for {image.arch}, node {node.name} is {node.arch}",
                hint=f"pick an {node.arch} image (cmt image list)",
            )
        now = self.clock()
        dep = deployments.active_for_node(conn, node.id)
        if dep is not None:
            if dep.stage not in _WAITING:
                raise Conflict(
                    f"node {node.name} is being reimaged to {dep.image} "
                    f"(deployment {dep.id}, stage {dep.stage})",
                    hint="wait for it to finish or fail, then set the target again",
                )
            if not deployments.update(conn, dep, image=image.name, features=words, total_bytes=image.size):
                raise Conflict(f"deployment {dep.id} started while it was being retargeted", hint="retry")
            nodes.update(conn, node.name, now=now, target_image=image.name)
            self._event(
                conn, actor, "retarget", node=node.name, deployment=dep.id,
                detail={"from_image": dep.image, "image": image.name, "features": words},
            )  # fmt: skip
            return self._deployment(conn, dep.id)
        token = secrets.new_token()
        try:
            with conn.begin_nested():
                dep = deployments.insert(
                    conn, node_id=node.id, node=node.name, image=image.name, features=words, actor=actor,
                    token_hash=secrets.hash_token(token), token_expires=now + self.ttl, now=now,
                    total_bytes=image.size,
                )  # fmt: skip
        except sa.exc.IntegrityError:
            raise Conflict(
                f"another request created a deployment for {node.name} just now", hint="retry"
            ) from None
        self._move_node(
            conn, node, NodeState.REIMAGING, actor, deployment=dep.id,
            detail={"image": image.name, "features": words}, target_image=image.name, reason=None,
        )  # fmt: skip
        self._event(
            conn, actor, "stage", node=node.name, deployment=dep.id, to_state=Stage.REQUESTED,
            detail={"image": image.name, "features": words, "from_image": node.current_image},
        )  # fmt: skip
        return replace(dep, token=token)

    def _cancel(self, conn: Connection, node: Node, dep: Deployment, actor: str, why: str) -> None:
        self._move_stage(
            conn, dep, Stage.FAILED, actor, outcome="cancelled", message=why, detail={"why": why}
        )
        if node.state is NodeState.REIMAGING:
            self._move_node(
                conn, node, NodeState.READY, actor, deployment=dep.id, detail={"why": why}, target_image=None
            )

    # -- admission and token hand-out (only before the reimager starts)

    def _admit(self, conn: Connection, dep: Deployment, actor: str) -> tuple[Deployment, bool]:
        if self._holds_slot(dep):
            return dep, True
        self.store.lock(conn, "cmt-admission")
        dep = self._deployment(conn, dep.id)  # read again under the lock: a racer may have admitted it
        if self._holds_slot(dep):
            return dep, True
        now = self.clock()
        used = deployments.count_admitted(
            conn, SLOT_STAGES, now, waiting=_WAITING, lease_start=now - self._lease
        )
        if used < self.settings.max_concurrent_reimages:
            if not deployments.update(conn, dep, admitted=now):
                raise Conflict(f"deployment {dep.id} moved on while being admitted", hint="retry")
            return self._deployment(conn, dep.id), True
        if dep.stage is Stage.REQUESTED:
            detail = {"slots": self.settings.max_concurrent_reimages, "in_use": used}
            dep = self._move_stage(conn, dep, Stage.QUEUED, actor, detail=detail)
        return dep, False

    @property
    def _lease(self) -> timedelta:
        return min(self.ttl, timedelta(seconds=ADMISSION_LEASE_S))

    def _holds_slot(self, dep: Deployment) -> bool:
        if dep.admitted is None:
            return False
        return dep.stage not in _WAITING or dep.admitted > self.clock() - self._lease

    def _issue(self, conn: Connection, dep: Deployment) -> tuple[Deployment, str]:
        token = secrets.new_token()
        values: dict[str, Any] = {
            "token_hash": secrets.hash_token(token),
            "token_expires": self.clock() + self.ttl,
        }
        if not deployments.update(conn, dep, **values):
            raise Conflict(f"deployment {dep.id} moved on while issuing its token", hint="retry")
        return self._deployment(conn, dep.id), token

    def boot_decision(self, mac: str) -> BootDecision:
        """What the node with ``mac`` should boot now (see the module docstring for the token policy).

        :raises BadInput: ``mac`` is not a MAC address.
        """
        mac = normalise_mac(mac)
        self.reap_expired()
        with self.store.begin() as conn:
            node = nodes.get_by_mac(conn, mac)
            if node is None:
                if self.settings.unknown_mac == "discover":
                    return BootDecision(BootMode.DISCOVER, mac, reason="unknown MAC: discovery")
                return BootDecision(BootMode.UNKNOWN, mac, reason="unknown MAC", retry_after=30)
            nodes.update(conn, node.name, now=self.clock(), last_seen=self.clock())
            dep = deployments.active_for_node(conn, node.id)
            if dep is None:
                mode, why = self._boot_mode_without_deployment(node)
                return BootDecision(mode, mac, node, reason=why)
            actor = f"node:{node.name}"
            if dep.stage in _WAITING:
                dep, admitted = self._admit(conn, dep, actor)
                if not admitted:
                    return BootDecision(
                        BootMode.WAIT, mac, node, dep, reason="queued: all reimage slots busy"
                    )
                dep, token = self._issue(conn, dep)
                image = self._image(dep.image)
                return BootDecision(
                    BootMode.REIMAGE, mac, node, dep, token, image, self.image_url(image),
                    reason=f"reimage to {dep.image}",
                )  # fmt: skip
            if dep.stage in (Stage.IDENTITY, Stage.KEXEC, Stage.BOOT):
                if dep.stage is not Stage.BOOT:
                    dep = self._move_stage(conn, dep, Stage.BOOT, actor, detail={"via": "firmware reboot"})
                return BootDecision(BootMode.LOCAL, mac, node, dep, reason=f"boot the new {dep.image} disk")
            # The reimager was running and the node network-booted again: it crashed or was reset.
            disk = "damaged" if dep.stage in DISK_TOUCHED else "intact"
            dep = self._fail(conn, dep, actor, f"node network-booted again (old disk {disk})")
            node = self._node(conn, node.name)
            mode, why = self._boot_mode_without_deployment(node)
            return BootDecision(mode, mac, node, dep, reason=why)

    def _plan_for_discovery(self, conn: Connection, node: Node) -> Plan | None:
        dep = deployments.active_for_node(conn, node.id)
        if dep is None or dep.stage not in _WAITING:
            return None
        dep, admitted = self._admit(conn, dep, f"node:{node.name}")
        if not admitted:
            return None
        dep, token = self._issue(conn, dep)
        dep = self._move_stage(conn, dep, Stage.IDENTIFY, f"node:{node.name}", detail={"via": "discovery"})
        return self._plan(conn, dep, token)

    def _plan(self, conn: Connection, dep: Deployment, token: str | None) -> Plan:
        image = self._image(dep.image)
        node_token = secrets.new_token()
        if not deployments.update(conn, dep, node_token_hash=secrets.hash_token(node_token)):
            raise Conflict(f"deployment {dep.id} moved on while its plan was made", hint="retry")
        return Plan(
            deployment=dep.id, node=dep.node, image=image.name, url=self.image_url(image),
            sha256=image.sha256, size=image.size, format=image.format, kernel_args=image.kernel_args,
            features=image_features(self.catalogue, image), node_token=node_token, token=token,
            server=self.settings.public_url, hostname=dep.node,
            files=load_site_files(self.settings.site_files),
        )  # fmt: skip

    # -- the reimager's side

    def _token_failure(
        self, conn: Connection, dep: Deployment, token: str | None, now: datetime, remote: str | None = None
    ) -> CmtError | None:
        problem = None
        if not secrets.matches(token, dep.token_hash):
            problem = "wrong token"
        elif dep.token_used or not dep.active:
            problem = f"token already used (deployment ended: {dep.outcome})"
        elif dep.token_expires <= now:
            problem = "token expired"
        if problem is None:
            return None
        detail = {"token": "deployment", "why": problem, **({"remote": remote} if remote else {})}
        self._event(conn, "server", "auth_failed", node=dep.node, deployment=dep.id, detail=detail)
        return Unauthorized(
            f"deployment {dep.id}: {problem}",
            hint="a deployment token is valid once, for one deployment; boot the node again for a new one",
        )

    def plan(self, deployment_id: int, token: str, remote: str | None = None) -> Plan:
        """The plan of a started deployment, to the holder of its token (issues the node token anew).

        :raises NotFound: no such deployment. :raises Unauthorized: wrong, used or expired token.
        """
        failure = None
        with self.store.begin() as conn:
            dep = self._deployment(conn, deployment_id)
            failure = self._token_failure(conn, dep, token, self.clock(), remote)
            if failure is None:
                return self._plan(conn, dep, None)
        raise failure

    def report(
        self,
        deployment_id: int,
        token: str,
        stage: str | Stage,
        progress_bytes: int | None = None,
        message: str | None = None,
        *,
        remote: str | None = None,
    ) -> Deployment:
        """Record the reimager's progress. The same stage again updates progress; a new stage must follow
        the table. ``done`` consumes the token; ``failed`` fails the node with a reason naming the stage.

        :raises BadInput: unknown stage, negative progress. :raises Unauthorized: token problem.
        :raises Conflict: out-of-order stage. :raises Busy: all reimage slots taken (retry later).
        """
        try:
            to = Stage(stage)
        except ValueError:
            raise BadInput(
                f"stage {stage!r} is not a deployment stage",
                hint="stages: " + ", ".join(s.value for s in Stage),
            ) from None
        if progress_bytes is not None and progress_bytes < 0:
            raise BadInput(f"progress_bytes: {progress_bytes} is negative")
        if message is not None and len(message) > 2000:
            message = message[:2000]
        failure: CmtError | None = None
        with self.store.begin() as conn:
            dep = self._deployment(conn, deployment_id)
            now = self.clock()
            failure = self._token_failure(conn, dep, token, now, remote)
            if failure is None:
                result = self._report(conn, dep=dep, to=to, progress=progress_bytes, message=message, now=now)
                if isinstance(result, Deployment):
                    return result
                failure = result  # Busy: raised after the commit, so the queued stage is kept
        raise failure

    def _report(
        self,
        conn: Connection,
        *,
        dep: Deployment,
        to: Stage,
        progress: int | None,
        message: str | None,
        now: datetime,
    ) -> Deployment | Busy:
        actor = f"agent:{dep.node}"
        values: dict[str, Any] = {"token_expires": now + self.ttl}
        if progress is not None:
            values["progress_bytes"] = progress
        if message is not None:
            values["message"] = message
        if to is dep.stage:
            if not deployments.update(conn, dep, **values):
                raise Conflict(f"deployment {dep.id} moved on during this report", hint="retry")
            return self._deployment(conn, dep.id)
        if to is Stage.FAILED:
            return self._fail(conn, dep, actor, message or "no message")
        if to in (Stage.LIVE, Stage.IDENTIFY) and dep.stage in _WAITING:
            dep, admitted = self._admit(conn, dep, actor)
            if not admitted:
                deployments.update(conn, dep, token_expires=now + self.ttl)
                return Busy(
                    f"deployment {dep.id} queued: all {self.settings.max_concurrent_reimages} reimage slots "
                    "are busy",
                    hint="retry in a few seconds (the token stays valid)",
                )
        dep = self._move_stage(
            conn, dep, to, actor, detail={"message": message} if message else None, **values
        )
        if to is Stage.DONE:
            self._finish(conn, dep, actor)
        return self._deployment(conn, dep.id)

    def _finish(self, conn: Connection, dep: Deployment, actor: str, **extra: Any) -> None:
        node = self._node(conn, dep.node)
        values: dict[str, Any] = {"current_image": dep.image, "target_image": None, "reason": None, **extra}
        if dep.node_token_hash is not None:
            values["node_token_hash"] = dep.node_token_hash
        self._move_node(
            conn, node, NodeState.READY, actor, deployment=dep.id, detail={"image": dep.image}, **values
        )

    def reap_expired(self) -> list[Deployment]:
        """Fail active deployments whose token ran out (nobody reported for a whole token lifetime)."""
        failed = []
        with self.store.begin() as conn:
            for dep in deployments.expired(conn, self.clock()):
                ttl = self.settings.deployment_token_ttl
                failed.append(self._fail(conn, dep, "server", f"no report for {ttl} s (token expired)"))
        return failed
