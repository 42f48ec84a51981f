"""boxes engine: box tasks, box gold, imported boxes' origin, per-image box progress (box_images, box_gold)

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
    with op.batch_alter_table("box_votes") as b:
        b.add_column(sa.Column("round", sa.Integer(), nullable=True))
        b.create_unique_constraint(op.f("uq_box_votes_box_id"), ["box_id", "worker_id"])
    op.create_table(
        "box_images",
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("synset_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("draws", sa.Integer(), nullable=False),
        sa.Column("held_task_id", sa.Integer(), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("coverage", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_box_images_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["synset_id"], ["synsets.id"], name=op.f("fk_box_images_synset_id_synsets")),
        sa.ForeignKeyConstraint(
            ["held_task_id"], ["tasks.id"], name=op.f("fk_box_images_held_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("candidate_id", name=op.f("pk_box_images")),
    )
    op.create_index("ix_box_images_stage_synset", "box_images", ["stage", "synset_id", "updated_at"])
    op.create_index("ix_box_images_stage_updated", "box_images", ["stage", "updated_at"])
    op.create_table(
        "box_gold",
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("shown", sa.JSON(), nullable=False),
        sa.Column("hidden", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_box_gold_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("candidate_id", "kind", name=op.f("pk_box_gold")),
    )


def downgrade() -> None:
    op.drop_table("box_gold")
    op.drop_index("ix_box_images_stage_updated", table_name="box_images")
    op.drop_index("ix_box_images_stage_synset", table_name="box_images")
    op.drop_table("box_images")
    with op.batch_alter_table("box_votes") as b:
        b.drop_constraint(op.f("uq_box_votes_box_id"), type_="unique")
        b.drop_column("round")
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
