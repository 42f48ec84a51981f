"""class lists: named, validated ILSVRC-style class sets loaded into a project

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "class_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_class_lists_name")),
    )
    op.create_table(
        "class_list_items",
        sa.Column("class_list_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("synset_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["class_list_id"],
            ["class_lists.id"],
            name=op.f("fk_class_list_items_class_list_id_class_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["synset_id"], ["synsets.id"], name=op.f("fk_class_list_items_synset_id_synsets")
        ),
        sa.PrimaryKeyConstraint("class_list_id", "position", name=op.f("pk_class_list_items")),
        sa.UniqueConstraint("class_list_id", "synset_id", name=op.f("uq_class_list_items_class_list_id")),
    )


def downgrade() -> None:
    op.drop_table("class_list_items")
    op.drop_table("class_lists")
