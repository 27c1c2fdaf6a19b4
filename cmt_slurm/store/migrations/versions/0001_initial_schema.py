"""Initial schema: nodes, node_macs, images, deployments, events, tokens.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-01 22:16:01.992164
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=63), nullable=True),
        sa.Column("deployment", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_node"), ["node"], unique=False)

    op.create_table(
        "images",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("os", sa.String(length=64), nullable=False),
        sa.Column("glibc", sa.String(length=16), nullable=False),
        sa.Column("arch", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("built", sa.Date(), nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("synced", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_images")),
    )
    op.create_table(
        "nodes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("arch", sa.String(length=16), server_default="x86_64", nullable=False),
        sa.Column("current_image", sa.String(length=128), nullable=True),
        sa.Column("target_image", sa.String(length=128), nullable=True),
        sa.Column("lldp_switch", sa.String(length=255), nullable=True),
        sa.Column("lldp_port", sa.String(length=255), nullable=True),
        sa.Column("port_index", sa.Integer(), nullable=True),
        sa.Column("dmi_serial", sa.String(length=255), nullable=True),
        sa.Column("dmi_uuid", sa.String(length=64), nullable=True),
        sa.Column("disks", sa.JSON(), nullable=True),
        sa.Column("boot_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("node_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_nodes_name")),
    )
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tokens")),
        sa.UniqueConstraint("hash", name=op.f("uq_tokens_hash")),
    )
    op.create_table(
        "deployments",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("node", sa.String(length=63), nullable=False),
        sa.Column("active_node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("image", sa.String(length=128), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_used", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("node_token_hash", sa.String(length=64), nullable=True),
        sa.Column("admitted", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("progress_bytes", sa.BigInteger(), nullable=True),
        sa.Column("total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("stage_seconds", sa.JSON(), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage_started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_deployments_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("active_node_id", name=op.f("uq_deployments_active_node_id")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_node_id"), ["node_id"], unique=False)

    op.create_table(
        "node_macs",
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_macs_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mac", name=op.f("pk_node_macs")),
    )
    with op.batch_alter_table("node_macs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_macs_node_id"), ["node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("node_macs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_macs_node_id"))

    op.drop_table("node_macs")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_node_id"))

    op.drop_table("deployments")
    op.drop_table("tokens")
    op.drop_table("nodes")
    op.drop_table("images")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_node"))

    op.drop_table("events")
