"""crowd engine: incremental per-image tallies and per-synset counters, indexes for the hot queries

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Existing projects are backfilled: one `crowd_images` row per playable candidate with its vote tallies, one
`crowd_synsets` row per synset with its counters. The initial-subset flags and the confidence table depend
on the crowd settings, so they are left for the live service, which rebuilds every synset whose
`settings_fp` is not its own (NULL here) in the background on its first write.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_MASK64 = (1 << 64) - 1


def _unit_hash(candidate_id: int) -> float:
    """Copy of `crowd.consensus.unit_hash` (a migration must not change when the code does)."""
    z = (candidate_id * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z / 2.0**64


def upgrade() -> None:
    # votes by gold flag and worker (gold accuracy per worker without scanning every vote)
    op.create_index("ix_votes_worker_gold", "votes", ["worker_id", "is_gold"])
    op.create_index("ix_candidates_synset_status", "candidates", ["synset_id", "status"])
    op.create_table(
        "crowd_images",
        sa.Column("candidate_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("synset_id", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.Float(), nullable=False),
        sa.Column("initial", sa.Boolean(), nullable=False),
        sa.Column("n_full", sa.Integer(), nullable=False),
        sa.Column("n_counted", sa.Integer(), nullable=False),
        sa.Column("n_all", sa.Integer(), nullable=False),
        sa.Column("yes_w", sa.Float(), nullable=False),
        sa.Column("no_w", sa.Float(), nullable=False),
        sa.Column("llr", sa.Float(), nullable=False),
        sa.Column("id_sum", sa.BigInteger(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_crowd_images_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["synset_id"], ["synsets.id"], name=op.f("fk_crowd_images_synset_id_synsets")
        ),
        sa.PrimaryKeyConstraint("candidate_id", name=op.f("pk_crowd_images")),
    )
    op.create_index("ix_crowd_images_synset_cell_hash", "crowd_images", ["synset_id", "cell", "hash"])
    op.create_index("ix_crowd_images_synset_hash", "crowd_images", ["synset_id", "hash"])
    op.create_index("ix_crowd_images_synset_initial", "crowd_images", ["synset_id", "initial", "n_full"])
    op.create_index("ix_crowd_images_synset_candidate", "crowd_images", ["synset_id", "candidate_id"])
    op.create_table(
        "crowd_synsets",
        sa.Column("synset_id", sa.String(length=64), nullable=False),
        sa.Column("n_playable", sa.Integer(), nullable=False),
        sa.Column("n_open", sa.Integer(), nullable=False),
        sa.Column("n_votes", sa.Integer(), nullable=False),
        sa.Column("n_gold_votes", sa.Integer(), nullable=False),
        sa.Column("base_size", sa.Integer(), nullable=False),
        sa.Column("initial_size", sa.Integer(), nullable=False),
        sa.Column("initial_done", sa.Integer(), nullable=False),
        sa.Column("fp_initial", sa.String(length=64), nullable=True),
        sa.Column("table_version", sa.Integer(), nullable=False),
        sa.Column("table_data", sa.JSON(), nullable=True),
        sa.Column("table_fp_initial", sa.String(length=64), nullable=True),
        sa.Column("table_votes", sa.Integer(), nullable=False),
        sa.Column("table_gold_votes", sa.Integer(), nullable=False),
        sa.Column("expected_votes", sa.Float(), nullable=True),
        sa.Column("settings_fp", sa.String(length=64), nullable=True),
        sa.Column("refresh_queued", sa.Boolean(), nullable=False),
        sa.Column("refreshing", sa.Boolean(), nullable=False),
        sa.Column("refresh_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_vote_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["synset_id"], ["synsets.id"], name=op.f("fk_crowd_synsets_synset_id_synsets")
        ),
        sa.PrimaryKeyConstraint("synset_id", name=op.f("pk_crowd_synsets")),
    )
    _backfill(op.get_bind())
    _upgrade_worker_models()  # worker-aware decisions (separate block below)


def _backfill(conn: sa.Connection) -> None:
    """Tallies of every playable candidate from its non-gold votes, and each synset's counters."""
    playable = (
        "c.status = 'stored' AND c.image_id IS NOT NULL AND c.id NOT IN (SELECT candidate_id FROM gold)"
    )
    rows = conn.execute(
        sa.text(
            "SELECT c.id, c.synset_id, c.decision,"
            " SUM(CASE WHEN v.weight >= 1.0 THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN v.weight > 0 THEN 1 ELSE 0 END),"
            " COUNT(v.id),"
            " SUM(CASE WHEN v.label THEN v.weight ELSE 0.0 END),"
            " SUM(CASE WHEN v.label THEN 0.0 ELSE v.weight END),"
            " SUM(CASE WHEN v.weight >= 1.0 THEN v.id ELSE 0 END)"
            f" FROM candidates c LEFT JOIN votes v ON v.candidate_id = c.id AND v.is_gold = {_false(conn)}"
            f" WHERE {playable} GROUP BY c.id, c.synset_id, c.decision ORDER BY c.id"
        )
    ).all()
    batch: list[dict[str, object]] = []
    per_synset: dict[str, list[int]] = {}
    for cid, sid, decision, n_full, n_counted, n_all, yes_w, no_w, id_sum in rows:
        yes, no = float(yes_w or 0.0), float(no_w or 0.0)
        cell = None if decision is not None else int(yes + 0.5) * 1000 + int(no + 0.5)
        batch.append(
            {
                "candidate_id": int(cid),
                "synset_id": sid,
                "hash": _unit_hash(int(cid)),
                "initial": False,
                "n_full": int(n_full or 0),
                "n_counted": int(n_counted or 0),
                "n_all": int(n_all or 0),
                "yes_w": yes,
                "no_w": no,
                "llr": 0.0,
                "id_sum": int(id_sum or 0),
                "cell": cell,
            }
        )
        counts = per_synset.setdefault(sid, [0, 0])
        counts[0] += 1
        counts[1] += decision is None
        if len(batch) >= 5000:
            _insert_images(conn, batch)
            batch = []
    if batch:
        _insert_images(conn, batch)
    votes: dict[str, int] = dict(
        conn.execute(
            sa.text(
                "SELECT c.synset_id, COUNT(*) FROM votes v JOIN candidates c ON c.id = v.candidate_id"
                " WHERE v.weight > 0 GROUP BY c.synset_id"
            )
        ).all()
    )
    gold_votes: dict[str, int] = dict(
        conn.execute(
            sa.text(
                "SELECT c.synset_id, COUNT(*) FROM votes v JOIN candidates c ON c.id = v.candidate_id"
                f" WHERE v.is_gold = {_true(conn)} AND v.weight >= 1.0 GROUP BY c.synset_id"
            )
        ).all()
    )
    synsets = [r[0] for r in conn.execute(sa.text("SELECT id FROM synsets ORDER BY id")).all()]
    if synsets:
        conn.execute(
            sa.text(
                "INSERT INTO crowd_synsets (synset_id, n_playable, n_open, n_votes, n_gold_votes, base_size,"
                " initial_size, initial_done, table_version, table_votes, table_gold_votes, refresh_queued,"
                " refreshing) VALUES (:sid, :n_playable, :n_open, :n_votes, :n_gold, 0, 0, 0, 0, 0, 0,"
                f" {_false(conn)}, {_false(conn)})"
            ),
            [
                {
                    "sid": sid,
                    "n_playable": per_synset.get(sid, [0, 0])[0],
                    "n_open": per_synset.get(sid, [0, 0])[1],
                    "n_votes": int(votes.get(sid, 0)),
                    "n_gold": int(gold_votes.get(sid, 0)),
                }
                for sid in synsets
            ],
        )
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE crowd_images"))
        conn.execute(sa.text("ANALYZE crowd_synsets"))


def _insert_images(conn: sa.Connection, batch: list[dict[str, object]]) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO crowd_images (candidate_id, synset_id, hash, initial, n_full, n_counted, n_all, yes_w,"
            " no_w, llr, id_sum, cell) VALUES (:candidate_id, :synset_id, :hash, :initial, :n_full, :n_counted,"
            " :n_all, :yes_w, :no_w, :llr, :id_sum, :cell)"
        ),
        batch,
    )


def _true(conn: sa.Connection) -> str:
    return "TRUE" if conn.dialect.name == "postgresql" else "1"


def _false(conn: sa.Connection) -> str:
    return "FALSE" if conn.dialect.name == "postgresql" else "0"


# --- worker-aware decisions (crowd_method = "worker-aware"; crowd.worker_aware) -----------------------


def _upgrade_worker_models() -> None:
    op.create_table(
        "worker_groups",
        sa.Column("synset_group", sa.String(length=64), nullable=False),
        sa.Column("prior_good", sa.Float(), nullable=False),
        sa.Column("sensitivity", sa.Float(), nullable=False),
        sa.Column("specificity", sa.Float(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("synset_group", name=op.f("pk_worker_groups")),
    )
    op.create_table(
        "worker_models",
        sa.Column("synset_group", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("sens_a", sa.Float(), nullable=False),
        sa.Column("sens_b", sa.Float(), nullable=False),
        sa.Column("spec_a", sa.Float(), nullable=False),
        sa.Column("spec_b", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_worker_models_worker_id_workers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("synset_group", "worker_id", name=op.f("pk_worker_models")),
    )


def _downgrade_worker_models() -> None:
    op.drop_table("worker_models")
    op.drop_table("worker_groups")


# --- end of the worker-aware block -----------------------------------------------------------------


def downgrade() -> None:
    _downgrade_worker_models()
    op.drop_table("crowd_synsets")
    for name in (
        "ix_crowd_images_synset_candidate",
        "ix_crowd_images_synset_initial",
        "ix_crowd_images_synset_hash",
        "ix_crowd_images_synset_cell_hash",
    ):
        op.drop_index(name, table_name="crowd_images")
    op.drop_table("crowd_images")
    op.drop_index("ix_candidates_synset_status", table_name="candidates")
    op.drop_index("ix_votes_worker_gold", table_name="votes")
