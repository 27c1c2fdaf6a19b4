"""Admin API tokens (stored as sha256 hashes; the secret is shown once, at creation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from ..errors import Conflict
from ._util import jsonable
from .schema import tokens


@dataclass(frozen=True)
class ApiToken:
    name: str
    hash: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": jsonable(self.created),
            "last_used": jsonable(self.last_used),
            "revoked": jsonable(self.revoked),
        }


def _token(row: RowMapping) -> ApiToken:
    return ApiToken(**dict(row))


def insert(conn: Connection, name: str, token_hash: str, now: datetime) -> ApiToken:
    """:raises Conflict: a token of that name exists (revoked ones too: names stay unique in the audit)."""
    try:
        with conn.begin_nested():
            conn.execute(tokens.insert().values(name=name, hash=token_hash, created=now))
    except sa.exc.IntegrityError:
        raise Conflict(
            f"a token named {name!r} already exists", hint="pick another name, or revoke and use a new name"
        ) from None
    return ApiToken(name, token_hash, now, None, None)


def get(conn: Connection, name: str) -> ApiToken | None:
    row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).mappings().first()
    return None if row is None else _token(row)


def active(conn: Connection) -> list[ApiToken]:
    """Tokens not revoked (the caller compares hashes in constant time)."""
    rows = conn.execute(sa.select(tokens).where(tokens.c.revoked.is_(None))).mappings()
    return [_token(r) for r in rows]


def list_all(conn: Connection) -> list[ApiToken]:
    return [_token(r) for r in conn.execute(sa.select(tokens).order_by(tokens.c.name)).mappings()]


def touch(conn: Connection, name: str, now: datetime) -> None:
    conn.execute(tokens.update().where(tokens.c.name == name).values(last_used=now))


def revoke(conn: Connection, name: str, now: datetime) -> bool:
    query = tokens.update().where(tokens.c.name == name, tokens.c.revoked.is_(None)).values(revoked=now)
    return conn.execute(query).rowcount == 1
