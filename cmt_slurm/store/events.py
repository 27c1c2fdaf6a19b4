"""The append-only audit trail: every state change, conflict and refused token is one row."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._util import jsonable
from .schema import events


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    actor: str
    node: str | None
    deployment: int | None
    kind: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    kind: str,
    node: str | None = None,
    deployment: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    result = conn.execute(
        events.insert().values(
            at=at,
            actor=actor,
            kind=kind,
            node=node,
            deployment=deployment,
            from_state=None if from_state is None else str(from_state),
            to_state=None if to_state is None else str(to_state),
            detail=jsonable(detail or {}),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def query(
    conn: Connection,
    *,
    node: str | None = None,
    deployment: int | None = None,
    since_id: int | None = None,
    limit: int = 100,
) -> list[Event]:
    """Events in id order: after ``since_id`` (the first ``limit``), else the latest ``limit``."""
    q = sa.select(events)
    if node is not None:
        q = q.where(events.c.node == node)
    if deployment is not None:
        q = q.where(events.c.deployment == deployment)
    if since_id is not None:
        q = q.where(events.c.id > since_id).order_by(events.c.id).limit(limit)
        rows = list(conn.execute(q).mappings())
    else:
        rows = list(conn.execute(q.order_by(events.c.id.desc()).limit(limit)).mappings())[::-1]
    return [Event(**dict(r)) for r in rows]


def last_id(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one())
