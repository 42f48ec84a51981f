"""The project database schema, for the whole pipeline.

One metadata database per project (SQLite by default, PostgreSQL at scale). Every stage reads and writes
these tables and nothing else; image bytes live in the blob store, addressed by SHA-256.

Conventions: surrogate integer keys except where a natural key is the identity (synset ids, content hashes);
timestamps are timezone-aware UTC; free-form settings go in JSON columns so a stage can grow without a
migration, while anything that is queried or joined on is a real column with an index.

The schema is changed only through Alembic migrations in `store/migrations/versions`; a test checks that
the migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}  # noqa: RUF012


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


# --- project and hierarchy -------------------------------------------------------------------------


class Meta(Base):
    """Key/value facts about the project (name, taxonomy, creation time)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Synset(Base):
    """A category the project collects images for: a snapshot of its taxonomy node.

    Lemmas, gloss and parents are copied in so a project stays readable if its taxonomy file changes.
    """

    __tablename__ = "synsets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lemmas: Mapped[list[str]] = mapped_column(JSON)
    gloss: Mapped[str] = mapped_column(Text, default="")
    parents: Mapped[list[str]] = mapped_column(JSON, default=list)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    # active | not_imageable (no image reached a majority, SPEC 3) | retired
    status: Mapped[str] = mapped_column(String(20), default="active")
    added_at: Mapped[datetime] = _created()


class ClassList(Base):
    """A named, validated list of synset ids (ILSVRC-style class set)."""

    __tablename__ = "class_lists"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_file: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class ClassListItem(Base):
    __tablename__ = "class_list_items"
    class_list_id: Mapped[int] = mapped_column(
        ForeignKey("class_lists.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, like ILSVRC2012_ID
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"))
    __table_args__ = (UniqueConstraint("class_list_id", "synset_id"),)


# --- candidates -----------------------------------------------------------------------------------


class Source(Base):
    """A configured origin of candidates: synthetic, folder, urls file, or a search API."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class Image(Base):
    """One distinct image, stored once. Near-duplicates point at the image they repeat."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the original bytes
    blob: Mapped[str | None] = mapped_column(String(64))  # key of the normalized bytes in the blob store
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orig_width: Mapped[int | None] = mapped_column(Integer)
    orig_height: Mapped[int | None] = mapped_column(Integer)
    orig_bytes: Mapped[int | None] = mapped_column(BigInteger)
    orig_format: Mapped[str | None] = mapped_column(String(20))
    phash: Mapped[int | None] = mapped_column(BigInteger, index=True)  # signed view of the 64-bit hash
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id"), index=True)
    duplicate_distance: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()


class Candidate(Base):
    """An image proposed for a synset by a source, with its provenance and its fate.

    status: pending -> fetched|failed|rejected|duplicate|stored; decision (set by verification):
    accepted|rejected|undecided. `key` is the source's stable id, making reruns idempotent.
    """

    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    key: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), index=True)
    query: Mapped[str | None] = mapped_column(Text)
    rank: Mapped[int | None] = mapped_column(Integer)
    page_url: Mapped[str | None] = mapped_column(Text)
    license: Mapped[str | None] = mapped_column(String(100))
    author: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    reject_reason: Mapped[str | None] = mapped_column(String(60))
    transient: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    decision: Mapped[str | None] = mapped_column(String(20), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    __table_args__ = (
        UniqueConstraint("source_id", "synset_id", "key"),
        Index("ix_candidates_synset_decision", "synset_id", "decision"),
        Index("ix_candidates_synset_status", "synset_id", "status"),
    )


class GroundTruth(Base):
    """What a candidate really shows, where a source knows it (the synthetic source) or an expert said."""

    __tablename__ = "ground_truth"
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    positive: Mapped[bool] = mapped_column(Boolean)
    true_synset: Mapped[str | None] = mapped_column(String(64))
    boxes: Mapped[list[list[int]]] = mapped_column(JSON, default=list)  # [[xmin, ymin, xmax, ymax], ...]


# --- crowd verification --------------------------------------------------------------------------


class Worker(Base):
    """A person answering tasks: in-house (invite link), marketplace (external id in the URL) or expert."""

    __tablename__ = "workers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="invite")  # invite | marketplace | expert
    external_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | blocked
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    gold_correct: Mapped[int] = mapped_column(Integer, default=0)
    gold_total: Mapped[int] = mapped_column(Integer, default=0)
    est_accuracy: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("kind", "external_id"),)


class Gold(Base):
    """A candidate with a known answer, mixed into tasks to measure workers ("honeypot")."""

    __tablename__ = "gold"
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    answer: Mapped[bool] = mapped_column(Boolean)


class Task(Base):
    """A unit of work given to one worker: verify, audit, or one of the three box tasks."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), index=True)
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"))
    kind: Mapped[str] = mapped_column(String(20), default="verify")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open|submitted|expired
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime | None] = mapped_column()
    submitted_at: Mapped[datetime | None] = mapped_column()
    completion_code: Mapped[str | None] = mapped_column(String(64))


class TaskItem(Base):
    __tablename__ = "task_items"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    box_id: Mapped[int | None] = mapped_column(ForeignKey("boxes.id"))
    __table_args__ = (Index("ix_task_items_candidate", "candidate_id"),)


class Vote(Base):
    """One worker's answer on one candidate. A worker votes at most once per candidate."""

    __tablename__ = "votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    label: Mapped[bool] = mapped_column(Boolean)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[float] = mapped_column(Float, default=1.0)  # down-weighting policy for blocked workers
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("candidate_id", "worker_id"),
        Index("ix_votes_worker_gold", "worker_id", "is_gold"),
    )


class CrowdImage(Base):
    """Live vote tallies of one playable candidate (stored image, not gold), kept up to date on every write.

    Why a table of its own: next-task and submit read and update these few numbers instead of summing the
    votes of a whole synset (issue 10). `cell` is yes * 1000 + no (rounded weighted votes) while the image is
    open (decision NULL) and NULL once decided, so open images of a table cell are one index range.
    `llr` is the weighted evidence (log-likelihood ratio of good vs bad) used by the worker-aware option.
    """

    __tablename__ = "crowd_images"
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"))
    hash: Mapped[float] = mapped_column(Float)  # consensus.unit_hash(candidate_id): initial-subset order
    initial: Mapped[bool] = mapped_column(Boolean, default=False)
    n_full: Mapped[int] = mapped_column(Integer, default=0)
    n_counted: Mapped[int] = mapped_column(Integer, default=0)
    n_all: Mapped[int] = mapped_column(Integer, default=0)
    yes_w: Mapped[float] = mapped_column(Float, default=0.0)
    no_w: Mapped[float] = mapped_column(Float, default=0.0)
    llr: Mapped[float] = mapped_column(Float, default=0.0)
    id_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    cell: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        Index("ix_crowd_images_synset_cell_hash", "synset_id", "cell", "hash"),
        Index("ix_crowd_images_synset_hash", "synset_id", "hash"),
        Index("ix_crowd_images_synset_initial", "synset_id", "initial", "n_full"),
        Index("ix_crowd_images_synset_candidate", "synset_id", "candidate_id"),
    )


class CrowdSynset(Base):
    """Per-synset counters of the live consensus and its current confidence table (shared by processes).

    `table_data` is the serialized table (`crowd.tallies.table_to_json`), `table_version` grows with every
    rebuild; the table's inputs (`table_fp_initial`, `table_votes`, `table_gold_votes`) say how stale it is
    against the current counters. `refreshing` is set while a background job re-decides the synset.
    """

    __tablename__ = "crowd_synsets"
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"), primary_key=True)
    n_playable: Mapped[int] = mapped_column(Integer, default=0)
    n_open: Mapped[int] = mapped_column(Integer, default=0)
    n_votes: Mapped[int] = mapped_column(Integer, default=0)
    n_gold_votes: Mapped[int] = mapped_column(Integer, default=0)
    base_size: Mapped[int] = mapped_column(Integer, default=0)
    initial_size: Mapped[int] = mapped_column(Integer, default=0)
    initial_done: Mapped[int] = mapped_column(Integer, default=0)
    fp_initial: Mapped[str | None] = mapped_column(String(64))
    table_version: Mapped[int] = mapped_column(Integer, default=0)
    # deferred: parsed only where a process does not hold this table version yet (parsing it with every
    # row lock cost a loaded server about 3% of its CPU)
    table_data: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    table_fp_initial: Mapped[str | None] = mapped_column(String(64))
    table_votes: Mapped[int] = mapped_column(Integer, default=0)
    table_gold_votes: Mapped[int] = mapped_column(Integer, default=0)
    expected_votes: Mapped[float | None] = mapped_column(Float)
    settings_fp: Mapped[str | None] = mapped_column(String(64))
    refresh_queued: Mapped[bool] = mapped_column(Boolean, default=False)
    refreshing: Mapped[bool] = mapped_column(Boolean, default=False)
    refresh_started_at: Mapped[datetime | None] = mapped_column()
    refreshed_at: Mapped[datetime | None] = mapped_column()
    last_vote_at: Mapped[datetime | None] = mapped_column()


# --- worker-aware decisions (crowd_method = "worker-aware"; crowd.worker_aware) --------------------------


class WorkerGroup(Base):
    """A synset group's fitted prior P(good) and population sensitivity/specificity (the last refit)."""

    __tablename__ = "worker_groups"
    synset_group: Mapped[str] = mapped_column(String(64), primary_key=True)
    prior_good: Mapped[float] = mapped_column(Float)
    sensitivity: Mapped[float] = mapped_column(Float)
    specificity: Mapped[float] = mapped_column(Float)
    votes: Mapped[int] = mapped_column(Integer, default=0)  # votes the last refit saw
    updated_at: Mapped[datetime] = _created()


class WorkerModelRow(Base):
    """One worker's Beta pseudo-counts of sensitivity and specificity in a synset group (the last refit)."""

    __tablename__ = "worker_models"
    synset_group: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)
    sens_a: Mapped[float] = mapped_column(Float)
    sens_b: Mapped[float] = mapped_column(Float)
    spec_a: Mapped[float] = mapped_column(Float)
    spec_b: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = _created()


# --- boxes ----------------------------------------------------------------------------------------


class BoxRow(Base):
    """A bounding box on an image for a synset, in pixels of the original image (inclusive corners)."""

    __tablename__ = "boxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    # x1 y1 x2 y2 = ILSVRC's xmin ymin xmax ymax ("xmin" is a PostgreSQL system column name)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    x2: Mapped[int] = mapped_column(Integer)
    y2: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    origin: Mapped[str] = mapped_column(String(20), default="crowd")  # crowd | synthetic | import | gold
    origin_ref: Mapped[str | None] = mapped_column(Text)  # where an imported box came from (file, record)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))  # the draw task that made it
    status: Mapped[str] = mapped_column(String(20), default="proposed")  # proposed | good | bad
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint("x1 <= x2 AND y1 <= y2", name="ordered"),
        Index("ix_boxes_candidate_status", "candidate_id", "status"),
    )


class BoxVote(Base):
    """Quality (is this box good?) or coverage (is every instance boxed?) verification answer."""

    __tablename__ = "box_votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # quality | coverage
    box_id: Mapped[int | None] = mapped_column(ForeignKey("boxes.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    label: Mapped[bool] = mapped_column(Boolean)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    created_at: Mapped[datetime] = _created()
    round: Mapped[int | None] = mapped_column(Integer)  # coverage: the image's round (box_images.round)
    # one quality vote per worker and box (coverage rows have box_id NULL, which UNIQUE lets repeat)
    __table_args__ = (UniqueConstraint("box_id", "worker_id"),)


class BoxImage(Base):
    """Box progress of one accepted image: the crowd box engine's state (`boxes.progress`).

    stage: draw (needs a box drawn) | quality (its proposed box awaits verification) | coverage (every box
    decided, >= 1 accepted; awaits coverage votes) | done (covered) | given_up (too many draws) | gold (a
    box-gold image, never in the crowd pipeline). `round` grows when an accepted box is added: coverage
    votes count only in their round. One task holds the image at a time (`held_task_id` until
    `held_until`), so assignment reads only this table's index.
    """

    __tablename__ = "box_images"
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"))
    stage: Mapped[str] = mapped_column(String(20), default="draw")
    round: Mapped[int] = mapped_column(Integer, default=0)
    draws: Mapped[int] = mapped_column(Integer, default=0)
    held_task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    held_until: Mapped[datetime | None] = mapped_column()
    coverage: Mapped[float | None] = mapped_column(Float)  # P(covered) from the current round's votes
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (
        Index("ix_box_images_stage_synset", "stage", "synset_id", "updated_at"),
        Index("ix_box_images_stage_updated", "stage", "updated_at"),
    )


class BoxGold(Base):
    """A box-gold question on an image with ground-truth boxes (never shown to workers as gold).

    kind "draw": `shown` boxes are drawn as already accepted; a drawing is right when it reaches IoU >= 0.7
    with one of `hidden` (or, when `hidden` is empty, "none left" is right). kind "coverage": `answer` says
    whether `shown` covers every instance. Boxes in original pixels, inclusive corners.
    """

    __tablename__ = "box_gold"
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    shown: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    hidden: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    answer: Mapped[bool] = mapped_column(Boolean)


# --- releases -------------------------------------------------------------------------------------


class Release(Base):
    """An immutable snapshot of accepted images, with the parameters that chose them."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _created()
    method: Mapped[str | None] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReleaseItem(Base):
    __tablename__ = "release_items"
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"), primary_key=True)
    split: Mapped[str] = mapped_column(String(10))  # train | val | test
    sha256: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_release_items_release_split", "release_id", "split"),)


class ReleaseFeatures(Base):
    """Per-image feature vectors of a release computed by a trained network (`synsetforge embed`).

    The vectors live in one blob (`releases.features`); this row says which release, network and run made
    them. Derived data beside the frozen release: the release itself never changes.
    """

    __tablename__ = "release_features"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    arch: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    blob: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64))
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("release_id", "name"),)


# --- benchmark ------------------------------------------------------------------------------------


class Challenge(Base):
    """An ILSVRC-style challenge on a release: fixed classes, hidden test labels, a leaderboard."""

    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime | None] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = _created()


class ChallengeClass(Base):
    __tablename__ = "challenge_classes"
    challenge_id: Mapped[int] = mapped_column(
        ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # ILSVRC2012_ID, 1-based
    synset_id: Mapped[str] = mapped_column(ForeignKey("synsets.id"))


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    outside_data: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created()


class Participant(Base):
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()


class Submission(Base):
    """A prediction file for a challenge; scored off the request path by the job queue."""

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    blob: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))  # ilsvrc | kaggle
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|scored|failed
    error: Mapped[str | None] = mapped_column(Text)
    public_scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    private_scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counts_against_limit: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    scored_at: Mapped[datetime | None] = mapped_column()


class Job(Base):
    """A durable job queue in the project database (PostgreSQL: SKIP LOCKED; SQLite: one worker)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column()


class ApiToken(Base):
    """Admin tokens (worker and participant tokens live on their own rows). Only hashes are stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(20))  # admin
    name: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
