"""The database schema (SQLAlchemy Core). Migrations in ``migrations/versions`` must produce exactly this.

Names and MACs are stored as text; node rows are referenced by id inside the live data, while the audit
trail (``events``) keeps names and deployment ids as plain values so it survives ``forget``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone; PostgreSQL keeps timestamptz)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store only timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Autoincrementing 64-bit ids (SQLite autoincrements only an INTEGER PRIMARY KEY).
BigId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("arch", sa.String(16), nullable=False, server_default="x86_64"),
    sa.Column("current_image", sa.String(128)),
    sa.Column("target_image", sa.String(128)),
    sa.Column("lldp_switch", sa.String(255)),
    sa.Column("lldp_port", sa.String(255)),
    sa.Column("port_index", sa.Integer()),
    sa.Column("dmi_serial", sa.String(255)),
    sa.Column("dmi_uuid", sa.String(64)),
    sa.Column("disks", sa.JSON()),
    sa.Column("boot_time", UtcDateTime()),
    sa.Column("last_seen", UtcDateTime()),
    sa.Column("reason", sa.Text()),
    sa.Column("node_token_hash", sa.String(64)),
    sa.Column("created", UtcDateTime(), nullable=False),
    sa.Column("updated", UtcDateTime(), nullable=False),
)

node_macs = sa.Table(
    "node_macs",
    metadata,
    # Normalised: lowercase aa:bb:cc:dd:ee:ff.
    sa.Column("mac", sa.String(17), primary_key=True),
    sa.Column("node_id", BigId, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created", UtcDateTime(), nullable=False),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("os", sa.String(64), nullable=False),
    sa.Column("glibc", sa.String(16), nullable=False),
    sa.Column("arch", sa.String(16), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("default", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("built", sa.Date()),
    sa.Column("manifest", sa.JSON(), nullable=False),
    sa.Column("synced", UtcDateTime(), nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("node_id", BigId, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("node", sa.String(63), nullable=False),
    # Equal to node_id while the deployment is active, NULL afterwards: the unique constraint lets at
    # most one deployment per node be active, even with several server processes racing.
    sa.Column("active_node_id", BigId, unique=True),
    sa.Column("image", sa.String(128), nullable=False),
    sa.Column("features", sa.JSON(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("token_expires", UtcDateTime(), nullable=False),
    sa.Column("token_used", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The node token the plan handed out; it becomes the node's token when the deployment is done.
    sa.Column("node_token_hash", sa.String(64)),
    # When the deployment took an admission slot (NULL: not admitted yet).
    sa.Column("admitted", UtcDateTime()),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("progress_bytes", sa.BigInteger()),
    sa.Column("total_bytes", sa.BigInteger()),
    sa.Column("message", sa.Text()),
    # {stage: seconds spent in it}, filled as each stage is left.
    sa.Column("stage_seconds", sa.JSON(), nullable=False),
    sa.Column("started", UtcDateTime(), nullable=False),
    sa.Column("stage_started", UtcDateTime(), nullable=False),
    sa.Column("ended", UtcDateTime()),
    sa.Column("outcome", sa.String(16)),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("node", sa.String(63), index=True),
    sa.Column("deployment", sa.BigInteger()),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16)),
    sa.Column("detail", sa.JSON(), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", UtcDateTime(), nullable=False),
    sa.Column("last_used", UtcDateTime()),
    sa.Column("revoked", UtcDateTime()),
)
