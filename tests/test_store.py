"""The project store on SQLite and PostgreSQL: init/open, schema migrations, constraints, blobs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError

from synsetforge.errors import InputError, NotFoundError, StoreError
from synsetforge.store import Project, schema
from synsetforge.store.blobs import BlobStore, sha256_hex
from synsetforge.store.migrate import HEAD_REVISION, current_revision, ensure_schema, head_revision
from synsetforge.store.project import engine_url, make_engine


def test_init_then_open_round_trip(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "proj"
    with Project.init(root, db=db_url, name="shapes") as p:
        assert p.revision == head_revision()
        assert (root / "synsetforge.toml").exists()
        assert p.blobs.root.is_dir()
        p.add_synsets(["n02084071", "n02121808"])
    with Project.open(root) as p:
        assert p.config.name == "shapes"
        assert p.synset_ids() == ["n02084071", "n02121808"]
        with p.session() as s:
            dog = s.get(schema.Synset, "n02084071")
            assert dog is not None and "dog" in dog.lemmas and dog.depth > 5
            assert s.get(schema.Meta, "name").value == "shapes"  # type: ignore[union-attr]


def test_sqlite_project_uses_wal(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p, p.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "p" / "project.db").exists()


def test_init_refuses_an_existing_project_and_keeps_it(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets(["n02084071"])
    before = (tmp_path / "p" / "synsetforge.toml").read_bytes()
    with pytest.raises(InputError, match="already a synsetforge project"):
        Project.init(tmp_path / "p")
    assert (tmp_path / "p" / "synsetforge.toml").read_bytes() == before
    with Project.open(tmp_path / "p") as p:
        assert p.synset_ids() == ["n02084071"]


def test_open_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a synsetforge project"):
        Project.open(tmp_path)


def test_unknown_synset_is_refused_and_nothing_is_written(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p:
        with pytest.raises(NotFoundError):
            p.add_synsets(["n02084071", "n99999999"])
        assert p.synset_ids() == []


def test_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot connect to database postgresql"):
        Project.init(tmp_path / "p", db="postgresql://nobody:secret@127.0.0.1:1/nothing")
    assert not (tmp_path / "p" / "synsetforge.toml").exists()


def test_password_never_appears_in_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Project.init(tmp_path / "p", db="postgresql://nobody:hunter2@127.0.0.1:1/nothing")
    assert "hunter2" not in str(info.value)


def test_bad_database_urls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a database URL"):
        engine_url("not a url", tmp_path)
    with pytest.raises(InputError, match="unsupported database"):
        engine_url("mysql://127.0.0.1/x", tmp_path)
    assert engine_url("postgresql://h/db", tmp_path).startswith("postgresql+psycopg://")
    assert engine_url("sqlite:///rel.db", tmp_path) == f"sqlite:///{(tmp_path / 'rel.db').resolve()}"


# --- migrations -----------------------------------------------------------------------------------


def _engine(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_engine(engine_url(db_url, tmp_path))


def test_migrations_build_exactly_the_models(tmp_path: Path, db_url: str) -> None:
    engine = _engine(db_url, tmp_path)
    assert current_revision(engine) is None
    assert ensure_schema(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.Base.metadata)
    assert diff == []
    engine.dispose()


def test_head_revision_constant_is_the_newest_migration(tmp_path: Path) -> None:
    # the fast path of ensure_schema trusts HEAD_REVISION; a new migration must move it
    assert head_revision() == HEAD_REVISION
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ensure_schema(engine)
    assert ensure_schema(engine) == HEAD_REVISION == current_revision(engine)


def test_upgrade_from_the_previous_schema_keeps_data(tmp_path: Path, db_url: str) -> None:
    engine = _engine(db_url, tmp_path)
    ensure_schema(engine, target="0001")
    with engine.begin() as conn:
        tables = set(conn.dialect.get_table_names(conn))
        assert "synsets" in tables and "class_lists" not in tables
        conn.execute(
            schema.Synset.__table__.insert().values(  # type: ignore[attr-defined]
                id="n02084071",
                lemmas=["dog"],
                gloss="g",
                parents=[],
                depth=13,
                status="active",
                added_at=schema.utcnow(),
            )
        )
    engine.dispose()
    # a project whose database is at the previous revision is upgraded on open
    root = tmp_path / "old"
    root.mkdir()
    from synsetforge.store.project import ProjectConfig

    ProjectConfig(name="old", db=db_url).write(root / "synsetforge.toml")
    (root / "blobs").mkdir()
    with Project.open(root) as p:
        assert p.revision == head_revision()
        assert p.synset_ids() == ["n02084071"]
        with p.session() as s:
            assert s.scalar(select(func.count()).select_from(schema.ClassList)) == 0


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p, p.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(StoreError, match="newer than this synsetforge knows"):
        Project.open(tmp_path / "p")


def test_open_without_upgrade_reports_old_schema(tmp_path: Path, db_url: str) -> None:
    engine = _engine(db_url, tmp_path)
    ensure_schema(engine, target="0001")
    with pytest.raises(StoreError, match="synsetforge upgrade"):
        ensure_schema(engine, upgrade=False)
    engine.dispose()


# --- constraints the later stages rely on ----------------------------------------------------------


def _seed_candidate(p: Project) -> tuple[int, int, int]:
    p.add_synsets(["n02084071"])
    with p.session() as s:
        src = schema.Source(kind="synthetic", name="synthetic")
        s.add(src)
        s.flush()
        cand = schema.Candidate(synset_id="n02084071", source_id=src.id, key="k1", url="synthetic://1")
        w1 = schema.Worker(kind="invite", name="a")
        w2 = schema.Worker(kind="invite", name="b")
        s.add_all([cand, w1, w2])
        s.flush()
        return cand.id, w1.id, w2.id


def test_one_vote_per_worker_per_candidate(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p:
        cand, w1, w2 = _seed_candidate(p)
        with p.session() as s:
            s.add_all(
                [
                    schema.Vote(candidate_id=cand, worker_id=w1, label=True),
                    schema.Vote(candidate_id=cand, worker_id=w2, label=False),
                ]
            )
        with pytest.raises(IntegrityError), p.session() as s:
            s.add(schema.Vote(candidate_id=cand, worker_id=w1, label=False))
        with p.session() as s:
            labels = {w: lab for w, lab in s.execute(select(schema.Vote.worker_id, schema.Vote.label))}
        assert labels == {w1: True, w2: False}


def test_candidate_key_is_unique_per_source_and_synset(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p:
        _seed_candidate(p)
        with pytest.raises(IntegrityError), p.session() as s:
            src = s.scalars(select(schema.Source)).one()
            s.add(schema.Candidate(synset_id="n02084071", source_id=src.id, key="k1", url="synthetic://1"))


def test_foreign_keys_are_enforced(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p, pytest.raises(IntegrityError), p.session() as s:
        s.add(schema.Vote(candidate_id=12345, worker_id=6789, label=True))


def test_box_corners_must_be_ordered(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p:
        cand, _, _ = _seed_candidate(p)
        with pytest.raises(IntegrityError), p.session() as s:
            s.add(schema.BoxRow(candidate_id=cand, x1=10, y1=0, x2=5, y2=5))


def test_full_64_bit_phash_round_trips(tmp_path: Path, db_url: str) -> None:
    from synsetforge.store.hashes import phash_from_db, phash_to_db

    with Project.init(tmp_path / "p", db=db_url) as p:
        for h in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
            with p.session() as s:
                img = schema.Image(sha256=f"{h:064x}", phash=phash_to_db(h))
                s.add(img)
                s.flush()
                iid = img.id
            with p.session() as s:
                got = s.get(schema.Image, iid)
                assert got is not None and phash_from_db(got.phash) == h


def test_concurrent_writers_on_one_project(tmp_path: Path, db_url: str) -> None:
    """Several threads adding votes at once: nothing lost, nothing duplicated, no 'database is locked'."""
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets(["n02084071"])
        with p.session() as s:
            src = schema.Source(kind="synthetic", name="s")
            s.add(src)
            s.flush()
            cands = [
                schema.Candidate(synset_id="n02084071", source_id=src.id, key=str(i), url=str(i))
                for i in range(50)
            ]
            workers = [schema.Worker(name=f"w{i}") for i in range(4)]
            s.add_all(cands + workers)
            s.flush()
            cand_ids = [c.id for c in cands]
            worker_ids = [w.id for w in workers]
        errors: list[BaseException] = []

        def work(wid: int) -> None:
            try:
                for cid in cand_ids:
                    with p.session() as s:
                        s.add(schema.Vote(candidate_id=cid, worker_id=wid, label=bool(cid % 2)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in worker_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with p.session() as s:
            assert s.scalar(select(func.count()).select_from(schema.Vote)) == 50 * 4


# --- blobs ----------------------------------------------------------------------------------------


def test_blob_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "b")
    key = blobs.put(b"hello")
    assert key == sha256_hex(b"hello")
    assert blobs.put(b"hello") == key
    assert blobs.get(key) == b"hello"
    assert blobs.path(key).relative_to(tmp_path / "b").parts[:2] == (key[:2], key[2:4])
    assert list(blobs.keys()) == [key]
    assert blobs.verify(key)
    blobs.path(key).write_bytes(b"tampered")
    assert not blobs.verify(key)


def test_blob_store_rejects_bad_keys(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "b")
    for bad in ["../../etc/passwd", "ab", "Z" * 64, "0" * 63 + "/"]:
        with pytest.raises(NotFoundError):
            blobs.get(bad)
    with pytest.raises(NotFoundError, match="is not in"):
        blobs.get("0" * 64)


def test_blob_write_failure_leaves_no_partial_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = BlobStore(tmp_path / "b")

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        blobs.put(b"data")
    assert [p for p in (tmp_path / "b").rglob("*") if p.is_file()] == []


def test_sqlite_engine_for_plain_create_engine_users(tmp_path: Path) -> None:
    """Opening the project file with a plain SQLAlchemy engine sees the same rows (no hidden state)."""
    with Project.init(tmp_path / "p") as p:
        p.add_synsets(["n02084071"])
    e = create_engine(f"sqlite:///{tmp_path / 'p' / 'project.db'}")
    with e.connect() as conn:
        assert conn.execute(text("SELECT id FROM synsets")).scalars().all() == ["n02084071"]
    e.dispose()


def test_blob_store_recovers_when_its_folders_are_removed(tmp_path: Path) -> None:
    import shutil

    blobs = BlobStore(tmp_path / "b")
    key = blobs.put(b"again")
    shutil.rmtree(tmp_path / "b")  # e.g. an operator cleared the store while the process ran
    assert blobs.put(b"again") == key
    assert blobs.get(key) == b"again"
    assert [p.name for p in (tmp_path / "b").rglob(".tmp-*")] == []
