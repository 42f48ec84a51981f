"""A synsetforge project: a folder with a config file, a metadata database and a blob store.

`synsetforge init DIR` writes `synsetforge.toml`; by default the metadata lives in `DIR/project.db`
(SQLite in WAL mode, so the web server and batch jobs can read while one writes) and image bytes in
`DIR/blobs`. `--db postgresql://...` keeps the metadata in PostgreSQL instead, for many concurrent
writers; `--blobs URL` keeps the bytes in another folder or under any fsspec URL (``s3://bucket/prefix``,
``gcs://...``, ``file:///abs/path``, ``memory://name``); everything else is the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from synsetforge.errors import InputError, NotFoundError, StoreError
from synsetforge.store import PROJECT_ENV, schema
from synsetforge.store.blobs import BlobStorage, open_blob_store
from synsetforge.store.migrate import ensure_schema

if TYPE_CHECKING:
    from synsetforge.hierarchy.model import Hierarchy

CONFIG_NAME = "synsetforge.toml"
DEFAULT_DB = "sqlite:///project.db"
DEFAULT_BLOBS = "blobs"


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def engine_url(url: str, root: Path) -> str:
    """Turn the user's URL into one SQLAlchemy can open: pick the psycopg driver, anchor SQLite paths."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(
            f"not a database URL: {url!r} (expected sqlite:///FILE or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not os.path.isabs(db):
            parsed = parsed.set(database=str((root / db).resolve()))
        return parsed.render_as_string(hide_password=False)
    raise InputError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for a normalized URL; raises StoreError when the database cannot be reached."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        _ping_when_idle(engine)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot connect to database {redact(url)}: {_reason(exc)}") from None
    except DatabaseError as exc:  # SQLite: "file is not a database", "database disk image is malformed"
        engine.dispose()
        raise StoreError(_damaged(_db_label(url), exc)) from None
    return engine


IDLE_PING_S = 10.0  # a pooled PostgreSQL connection unused this long is checked before it is handed out


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle `IDLE_PING_S` or longer.

    Why not `pool_pre_ping`: it pings on every checkout, one more round trip per transaction, and under
    load a server's write transactions (one at a time per process) spent it holding their turn. A
    connection handed back a moment ago is alive; one idle for a while may have been cut (a database
    restart, a firewall dropping idle sockets). A dead one is replaced before the request sees it; one
    that dies in use fails that request, and the pool then replaces every connection older than it.
    """

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:  # any failure: the pool drops it and connects anew (up to 3 tries)
            raise DisconnectionError(f"an idle pooled connection was closed: {exc}") from exc


def _reason(exc: DatabaseError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]


def _damaged(label: str, exc: DatabaseError) -> str:
    return f"{label}: cannot read the project database ({_reason(exc)}); restore the file from a backup"


_DAMAGE = ("database disk image is malformed", "file is not a database")


def damaged_database(exc: BaseException) -> str | None:
    """The one-line message for a database found damaged after it opened (SQLite), else None."""
    if not isinstance(exc, DatabaseError) or exc.orig is None:
        return None
    reason = _reason(exc)
    if not any(reason.startswith(d) for d in _DAMAGE):
        return None
    where = f" {_opened[-1]}" if _opened else ""
    return f"the project database{where} is damaged ({reason}); restore it from a backup"


_opened: list[str] = []  # the database the last Project.open read, so a later failure can name it


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _db_label(url: str) -> str:
    """How messages name a database: its file for SQLite, the redacted URL otherwise."""
    path = _sqlite_file(url)
    return str(path) if path is not None else redact(url)


_SQLITE_MAGIC = b"SQLite format 3\x00"
_NOT_INIT = "only `synsetforge init` creates a project database; restore the file from a backup"


def check_sqlite_file(path: Path) -> None:
    """Refuse a SQLite file that is missing, empty, not SQLite or shorter than its header says.

    SQLite would silently create a missing or empty file and open a new, empty project in its place; a
    garbage or truncated file would fail later with a driver traceback. The header check costs one read.
    """
    wal = path.with_name(path.name + "-wal")
    has_wal = wal.is_file() and wal.stat().st_size > 0
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        raise StoreError(f"{path}: the project database is missing; {_NOT_INIT}") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the project database: {exc.strerror}") from None
    if size == 0:
        if has_wal:
            return  # a crash before the first checkpoint: SQLite recovers from the WAL
        raise StoreError(f"{path}: the project database is empty (0 bytes); {_NOT_INIT}")
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise StoreError(f"{path} is not a SQLite database (damaged or overwritten); {_NOT_INIT}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96] and pages > 0
    if header_valid and not has_wal and size < pages * page_size:
        raise StoreError(
            f"{path}: the project database is truncated ({size:,} of {pages * page_size:,} bytes); {_NOT_INIT}"
        )


@dataclass
class ProjectConfig:
    """The contents of `synsetforge.toml`."""

    name: str
    db: str = DEFAULT_DB
    blobs: str = DEFAULT_BLOBS
    taxonomy: str = "wordnet"  # "wordnet" or a path (relative to the project) of a YAML/CSV taxonomy
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ProjectConfig:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
        proj = data.get("project", {})
        store = data.get("store", {})
        if "name" not in proj:
            raise InputError(f"{path}: missing [project] name")
        return cls(
            name=str(proj["name"]),
            created=str(proj.get("created", "")),
            db=str(store.get("db", DEFAULT_DB)),
            blobs=str(store.get("blobs", DEFAULT_BLOBS)),
            taxonomy=str(data.get("taxonomy", {}).get("source", "wordnet")),
            settings=dict(data.get("settings", {})),
        )

    def write(self, path: Path) -> None:
        def q(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "# synsetforge project configuration",
            "[project]",
            f"name = {q(self.name)}",
            f"created = {q(self.created)}",
            "",
            "[store]",
            "# metadata database: sqlite:///FILE (relative to this folder) or postgresql://user@host/db",
            f"db = {q(self.db)}",
            "# content-addressed image blobs: a folder (relative to this one) or an fsspec URL",
            "# (s3://bucket/prefix, gcs://bucket/prefix, file:///abs/path, ...)",
            f"blobs = {q(self.blobs)}",
            "",
            "[taxonomy]",
            '# "wordnet" (WordNet 3.0 nouns, shipped) or a YAML/CSV taxonomy file in this folder',
            f"source = {q(self.taxonomy)}",
            "",
            "[settings]",
        ]
        for key, value in sorted(self.settings.items()):
            lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f"{key} = {q(value)}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Project:
    """An open project: config, database engine, sessions, blobs and its hierarchy."""

    def __init__(self, root: Path, config: ProjectConfig, engine: Engine, revision: str):
        self.root = root
        self.config = config
        self.engine = engine
        self.revision = revision
        self.blobs: BlobStorage = open_blob_store(config.blobs, root)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # reads without BEGIN/COMMIT on PostgreSQL (see `reading`)
        self._reads = (
            sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
            if engine.dialect.name == "postgresql"
            else self._sessions
        )
        self._hierarchy: Hierarchy | None = None

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path | str,
        *,
        db: str | None = None,
        name: str | None = None,
        taxonomy: Path | None = None,
        blobs: str | None = None,
    ) -> Project:
        """Create a project folder (it may exist but must not already be a project) and its schema.

        `blobs`: where image bytes go -- a folder (relative to the project folder, or absolute) or an
        fsspec URL; default `DIR/blobs`.
        """
        root = Path(root).resolve()
        if (root / CONFIG_NAME).exists():
            raise InputError(f"{root} is already a synsetforge project ({CONFIG_NAME} exists)")
        if root.exists() and not root.is_dir():
            raise InputError(f"{root} exists and is not a folder")
        db_url = db or DEFAULT_DB
        url = engine_url(db_url, root)  # validates before anything is written
        blobs_spec = (blobs or "").strip() or DEFAULT_BLOBS
        blob_store = open_blob_store(blobs_spec, root)  # unknown protocol or missing driver: refused here
        tax_source = "wordnet"
        if taxonomy is not None:
            from synsetforge.hierarchy.taxonomy import load_taxonomy

            load_taxonomy(taxonomy)  # refuse a broken taxonomy before creating anything
        root.mkdir(parents=True, exist_ok=True)
        blob_store.prepare()
        engine = make_engine(url)
        revision = ensure_schema(engine)
        config = ProjectConfig(name=name or root.name, db=db_url, blobs=blobs_spec)
        if taxonomy is not None:
            dest = root / ("taxonomy" + taxonomy.suffix.lower())
            dest.write_bytes(taxonomy.read_bytes())
            tax_source = dest.name
        config.taxonomy = tax_source
        config.write(root / CONFIG_NAME)
        project = cls(root, config, engine, revision)
        with project.session() as s:
            s.merge(schema.Meta(key="name", value=config.name))
            s.merge(schema.Meta(key="created", value=config.created))
            s.merge(schema.Meta(key="taxonomy", value=tax_source))
        return project

    @classmethod
    def open(cls, root: Path | str | None = None, *, upgrade: bool = True) -> Project:
        """Open an existing project, upgrading an older schema (refusing a newer one)."""
        root = find_project_root(root)
        config = ProjectConfig.read(root / CONFIG_NAME)
        url = engine_url(config.db, root)
        db_file = _sqlite_file(url)
        if db_file is not None:
            check_sqlite_file(db_file)  # else SQLite would create a new, empty database in its place
        engine = make_engine(url)
        try:
            _require_schema(engine, _db_label(url))
            revision = ensure_schema(engine, upgrade=upgrade)
        except DatabaseError as exc:
            engine.dispose()
            raise StoreError(_damaged(_db_label(url), exc)) from None
        except BaseException:
            engine.dispose()
            raise
        _opened[:] = [_db_label(url)]
        return cls(root, config, engine, revision)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- database ---------------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as s:
            yield s

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: on PostgreSQL each statement runs on its own (autocommit).

        Why: under PostgreSQL's default isolation (read committed) every statement of a transaction sees
        its own snapshot anyway, so a reading transaction's BEGIN and COMMIT were two round trips that
        bought nothing. Nothing may be written through it (it would be committed statement by statement).
        SQLite: the same session as `session`.
        """
        with self._reads() as s:
            yield s

    # -- hierarchy --------------------------------------------------------------------------------

    @property
    def hierarchy(self) -> Hierarchy:
        """The project's taxonomy: WordNet 3.0, or the custom file named in the config."""
        if self._hierarchy is None:
            from synsetforge.hierarchy.taxonomy import load_taxonomy
            from synsetforge.hierarchy.wordnet import load_wordnet

            if self.config.taxonomy == "wordnet":
                self._hierarchy = load_wordnet()
            else:
                self._hierarchy = load_taxonomy(self.root / self.config.taxonomy)
        return self._hierarchy

    def add_synsets(self, ids: list[str]) -> int:
        """Add synsets (validated against the hierarchy) to the project; returns how many were new."""
        h = self.hierarchy
        nodes = [h.get(i) for i in ids]  # raises NotFoundError with a suggestion
        with self.session() as s:
            existing = set(s.scalars(select(schema.Synset.id).where(schema.Synset.id.in_(ids))))
            new = 0
            for node in nodes:
                if node.id in existing:
                    continue
                existing.add(node.id)
                s.add(
                    schema.Synset(
                        id=node.id,
                        lemmas=list(node.lemmas),
                        gloss=node.gloss,
                        parents=list(node.parents),
                        depth=h.depth(node.id),
                    )
                )
                new += 1
        return new

    def synset_ids(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(schema.Synset.id).order_by(schema.Synset.id)))

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables, for `synsetforge info`."""
        from sqlalchemy import func

        out: dict[str, int] = {}
        with self.session() as s:
            for name, model in [
                ("synsets", schema.Synset),
                ("candidates", schema.Candidate),
                ("images", schema.Image),
                ("workers", schema.Worker),
                ("votes", schema.Vote),
                ("boxes", schema.BoxRow),
                ("releases", schema.Release),
                ("challenges", schema.Challenge),
                ("submissions", schema.Submission),
            ]:
                out[name] = int(s.scalar(select(func.count()).select_from(model)) or 0)
        return out


def _require_schema(engine: Engine, label: str) -> None:
    """Refuse a database synsetforge never initialised: opening must not create tables."""
    if not inspect(engine).has_table("alembic_version"):
        raise StoreError(
            f"{label} holds no synsetforge project (no schema version table); "
            "create a project with `synsetforge init`, or point the config at the project's database"
        )


_ID_LIKE = re.compile(r"^[\w.-]+$")


def find_project_root(root: Path | str | None) -> Path:
    """The project folder: the one given, else $SYNSETFORGE_PROJECT, else the nearest parent with a config."""
    if root is None and os.environ.get(PROJECT_ENV):
        root = os.environ[PROJECT_ENV]
    if root is not None:
        path = Path(root).resolve()
        if not (path / CONFIG_NAME).exists():
            raise NotFoundError(
                f"{path} is not a synsetforge project (no {CONFIG_NAME}); run `synsetforge init`"
            )
        return path
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).exists():
            return candidate
    raise NotFoundError(
        f"no synsetforge project here or above {here}; pass --project DIR, set {PROJECT_ENV}, "
        "or run `synsetforge init DIR`"
    )
