"""The outbox's ``trace``: the W3C ``traceparent`` a row's event carries on when the
pipeline is traced (``orderstream.core.tracing``), so that the relay's span continues the
order's trace. Null for untraced rows; nullable, so adding it rewrites no row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "trace")
