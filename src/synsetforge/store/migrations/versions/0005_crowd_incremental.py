"""crowd engine: incremental per-image tallies and per-synset counters, indexes for the hot queries

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # votes by gold flag and worker (gold accuracy per worker without scanning every vote)
    op.create_index("ix_votes_worker_gold", "votes", ["worker_id", "is_gold"])


def downgrade() -> None:
    op.drop_index("ix_votes_worker_gold", table_name="votes")
