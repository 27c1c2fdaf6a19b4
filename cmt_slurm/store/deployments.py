"""Deployments: one row per reimage of one node."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ..states import Stage
from ._util import jsonable
from .schema import deployments

#: Why a deployment ended.
OUTCOMES = ("success", "failed", "cancelled")


@dataclass(frozen=True)
class Deployment:
    id: int
    node_id: int
    node: str
    image: str
    features: tuple[str, ...]
    actor: str
    stage: Stage
    progress_bytes: int | None
    total_bytes: int | None
    message: str | None
    stage_seconds: dict[str, float]
    started: datetime
    stage_started: datetime
    ended: datetime | None
    outcome: str | None
    admitted: datetime | None
    token_hash: str
    token_expires: datetime
    token_used: bool
    node_token_hash: str | None
    #: The plain one-time token, only on the object returned right after it was issued.
    token: str | None = None

    @property
    def active(self) -> bool:
        return self.ended is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without token hashes (the plain token only when just issued)."""
        hidden = {"node_id", "token_hash", "node_token_hash", "token"}
        data = {f.name: jsonable(getattr(self, f.name)) for f in fields(self) if f.name not in hidden}
        if self.token is not None:
            data["token"] = self.token
        return data


def _deployment(row: RowMapping) -> Deployment:
    values = {k: v for k, v in row.items() if k != "active_node_id"}
    values["stage"] = Stage(values["stage"])
    values["features"] = tuple(values["features"])
    values["stage_seconds"] = dict(values["stage_seconds"])
    return Deployment(**values)


def insert(
    conn: Connection,
    *,
    node_id: int,
    node: str,
    image: str,
    features: Collection[str],
    actor: str,
    token_hash: str,
    token_expires: datetime,
    now: datetime,
    total_bytes: int | None,
) -> Deployment:
    """Add an active deployment in stage ``requested``.

    :raises sqlalchemy.exc.IntegrityError: the node already has an active one (callers check first;
        this is the race backstop).
    """
    result = conn.execute(
        deployments.insert().values(
            node_id=node_id,
            node=node,
            active_node_id=node_id,
            image=image,
            features=list(features),
            actor=actor,
            token_hash=token_hash,
            token_expires=token_expires,
            stage=str(Stage.REQUESTED),
            total_bytes=total_bytes,
            stage_seconds={},
            started=now,
            stage_started=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    found = get(conn, int(key[0]))
    assert found is not None
    return found


def get(conn: Connection, deployment_id: int) -> Deployment | None:
    row = conn.execute(sa.select(deployments).where(deployments.c.id == deployment_id)).mappings().first()
    return None if row is None else _deployment(row)


def active_for_node(conn: Connection, node_id: int) -> Deployment | None:
    query = sa.select(deployments).where(deployments.c.active_node_id == node_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else _deployment(row)


def list_for_node(conn: Connection, node_id: int, limit: int = 20) -> list[Deployment]:
    query = (
        sa.select(deployments)
        .where(deployments.c.node_id == node_id)
        .order_by(deployments.c.id.desc())
        .limit(limit)
    )
    return [_deployment(r) for r in conn.execute(query).mappings()]


def list_active(conn: Connection) -> list[Deployment]:
    query = sa.select(deployments).where(deployments.c.ended.is_(None)).order_by(deployments.c.id)
    return [_deployment(r) for r in conn.execute(query).mappings()]


def update(conn: Connection, dep: Deployment, *, expect_stage: Stage | None = None, **values: Any) -> bool:
    """Change one deployment if it is still in ``expect_stage`` (default: the stage ``dep`` was read in).

    Returns False when another writer changed it first. Ending it (``outcome`` set) releases the node's
    one active slot.
    """
    expected = dep.stage if expect_stage is None else expect_stage
    if "stage" in values:
        values["stage"] = str(values["stage"])
    if values.get("outcome") is not None:
        values["active_node_id"] = None
    query = (
        deployments.update()
        .where(
            deployments.c.id == dep.id, deployments.c.stage == str(expected), deployments.c.ended.is_(None)
        )
        .values(**values)
    )
    return conn.execute(query).rowcount == 1


def count_admitted(
    conn: Connection,
    stages: Collection[Stage],
    now: datetime,
    *,
    waiting: Collection[Stage] = (),
    lease_start: datetime | None = None,
) -> int:
    """Active deployments holding an admission slot: admitted, token not expired, and either in
    ``stages`` (working) or in ``waiting`` and admitted after ``lease_start`` (handed a token lately)."""
    holding: sa.ColumnElement[bool] = deployments.c.stage.in_([str(s) for s in stages])
    if waiting and lease_start is not None:
        recent = sa.and_(
            deployments.c.stage.in_([str(s) for s in waiting]), deployments.c.admitted > lease_start
        )
        holding = sa.or_(holding, recent)
    query = (
        sa.select(sa.func.count())
        .select_from(deployments)
        .where(
            deployments.c.ended.is_(None),
            deployments.c.admitted.is_not(None),
            deployments.c.token_expires > now,
            holding,
        )
    )
    return int(conn.execute(query).scalar_one())


def expired(conn: Connection, now: datetime) -> list[Deployment]:
    """Active deployments whose token ran out (no report for a whole token lifetime)."""
    query = sa.select(deployments).where(deployments.c.ended.is_(None), deployments.c.token_expires <= now)
    return [_deployment(r) for r in conn.execute(query).mappings()]
