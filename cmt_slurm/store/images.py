"""The images table: a copy of the catalogue manifests, so the API and dashboard need no directory scan."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._util import jsonable
from .schema import images


@dataclass(frozen=True)
class ImageRow:
    name: str
    os: str
    glibc: str
    arch: str
    url: str
    sha256: str
    size: int
    default: bool = False
    built: date | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["built"] = None if self.built is None else self.built.isoformat()
        return jsonable(data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SyncResult:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": list(self.added), "updated": list(self.updated), "removed": list(self.removed)}


def _values(img: ImageRow) -> dict[str, Any]:
    values = {f.name: getattr(img, f.name) for f in fields(img)}
    values["manifest"] = jsonable(img.manifest)
    return values


def sync(conn: Connection, wanted: Iterable[ImageRow], now: datetime) -> SyncResult:
    """Make the table equal to ``wanted`` (the catalogue): insert, update what differs, delete the rest."""
    current = {r.name: r for r in list_all(conn)}
    added, updated = [], []
    wanted_names = set()
    for img in wanted:
        wanted_names.add(img.name)
        old = current.get(img.name)
        if old is None:
            conn.execute(images.insert().values(synced=now, **_values(img)))
            added.append(img.name)
        elif _values(old) != _values(img):
            conn.execute(images.update().where(images.c.name == img.name).values(synced=now, **_values(img)))
            updated.append(img.name)
    removed = sorted(set(current) - wanted_names)
    if removed:
        conn.execute(images.delete().where(images.c.name.in_(removed)))
    return SyncResult(tuple(sorted(added)), tuple(sorted(updated)), tuple(removed))


def list_all(conn: Connection) -> list[ImageRow]:
    rows = conn.execute(sa.select(images).order_by(images.c.name)).mappings()
    return [ImageRow(**{k: v for k, v in r.items() if k != "synced"}) for r in rows]


def get(conn: Connection, name: str) -> ImageRow | None:
    row = conn.execute(sa.select(images).where(images.c.name == name)).mappings().first()
    return None if row is None else ImageRow(**{k: v for k, v in row.items() if k != "synced"})
