"""Customers who sign in, their sessions and refresh tokens; the order history index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The ingress writes ``customers``, ``customer_sessions`` and ``refresh_tokens``
(docs/identity.md). ``orders_customer_history`` serves ``GET /v1/customers/{id}/orders``
by keyset, newest first; it is built CONCURRENTLY, so a large ``orders`` table keeps taking
the sink's writes meanwhile (outside the migration's transaction, as PostgreSQL requires).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("customers_email_lower", "customers", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "customer_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(128),
            sa.ForeignKey("customers.customer_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
    )
    op.create_index("customer_sessions_customer_id", "customer_sessions", ["customer_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("customer_sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    with op.get_context().autocommit_block():
        op.create_index(
            "orders_customer_history",
            "orders",
            ["customer_id", sa.text("created_at DESC"), sa.text("order_id DESC")],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "orders_customer_history",
            table_name="orders",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("refresh_tokens")
    op.drop_table("customer_sessions")
    op.drop_table("customers")
