"""Persistent state: SQLAlchemy Core tables, Alembic migrations, and one repository module per noun."""

from __future__ import annotations

from . import deployments, events, images, nodes, tokens
from .engine import Store, head_revision

__all__ = ["Store", "deployments", "events", "head_revision", "images", "nodes", "tokens"]
