"""Dead-letter replays: one row per dead letter ``orderstream deadletters replay`` has
re-published, so replaying it again is skipped (unless ``--force``).

A table, not a compacted topic: the replay command inserts the row, publishes, waits for
the broker's ack and only then commits, in one transaction; the primary key makes a second
replay of the same dead letter (even a concurrent one, which waits on the row lock) a
no-op, and a failed publish rolls the row back. A compacted topic would need reading it
whole before every replay and gives no such exclusion. ``target_*`` is where the copy
went: a copy that fails again is dead-lettered under the id that position gives
(``schemas.deadletter.dead_letter_event_id``), which ``replay --all`` then leaves alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_replays",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column(
            "replayed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("target_topic", sa.Text, nullable=True),
        sa.Column("target_partition", sa.Integer, nullable=True),
        sa.Column("target_offset", sa.BigInteger, nullable=True),
        sa.Column("replayed_as", sa.Text, nullable=True),
    )
    op.create_index("dead_letter_replays_replayed_as", "dead_letter_replays", ["replayed_as"])


def downgrade() -> None:
    op.drop_table("dead_letter_replays")
