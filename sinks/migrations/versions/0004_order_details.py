"""Order details and product descriptions: orders.shipping_address, orders.payment_method
(jsonb, as the order events carry them) and products.description.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before hold no details (NULL: the order was placed without them).
    op.add_column("orders", sa.Column("shipping_address", JSONB, nullable=True))
    op.add_column("orders", sa.Column("payment_method", JSONB, nullable=True))
    op.add_column("products", sa.Column("description", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("products", "description")
    op.drop_column("orders", "payment_method")
    op.drop_column("orders", "shipping_address")
