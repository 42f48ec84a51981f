"""boxes engine: box tasks, box gold, imported boxes' origin, per-image box progress

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("boxes") as b:
        b.add_column(sa.Column("origin_ref", sa.Text(), nullable=True))
        b.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        b.create_foreign_key(op.f("fk_boxes_task_id_tasks"), "tasks", ["task_id"], ["id"])
    with op.batch_alter_table("box_votes") as b:
        b.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("is_gold", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1.0"))
        b.create_foreign_key(op.f("fk_box_votes_task_id_tasks"), "tasks", ["task_id"], ["id"])
    op.create_index(op.f("ix_box_votes_box_id"), "box_votes", ["box_id"])
    op.create_index("ix_boxes_candidate_status", "boxes", ["candidate_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_boxes_candidate_status", table_name="boxes")
    op.drop_index(op.f("ix_box_votes_box_id"), table_name="box_votes")
    with op.batch_alter_table("box_votes") as b:
        b.drop_constraint(op.f("fk_box_votes_task_id_tasks"), type_="foreignkey")
        b.drop_column("weight")
        b.drop_column("is_gold")
        b.drop_column("task_id")
    with op.batch_alter_table("boxes") as b:
        b.drop_constraint(op.f("fk_boxes_task_id_tasks"), type_="foreignkey")
        b.drop_column("confidence")
        b.drop_column("task_id")
        b.drop_column("origin_ref")
