"""One order per Idempotency-Key: orders.request_key, unique among orders not rejected.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before carry no request key (NULL never conflicts).
    op.add_column("orders", sa.Column("request_key", sa.String(32), nullable=True))
    op.create_index(
        "orders_one_per_request_key",
        "orders",
        ["request_key"],
        unique=True,
        postgresql_where=sa.text("status <> 'rejected'"),
    )


def downgrade() -> None:
    op.drop_index("orders_one_per_request_key", table_name="orders")
    op.drop_column("orders", "request_key")
