"""Schema versioning: upgrade older project databases, refuse newer ones.

`Project.init` calls `ensure_schema` on an empty database, which gets every migration. Opening a project
calls it too, after refusing a database without synsetforge's version table (opening never creates one):
an older schema is upgraded in place; a database stamped with a revision this code does not know was
written by a newer synsetforge, and we refuse to touch it rather than guess.

Fast path: a database already at `HEAD_REVISION` is recognised with one SELECT, without importing Alembic
or reading the migration scripts (about half a second of every CLI command otherwise). A test keeps
`HEAD_REVISION` equal to the newest migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from synsetforge.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0005"  # the newest file in migrations/versions (tests/test_store.py checks it)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine, *, upgrade: bool = True, target: str = "head") -> str:
    """Bring the database to `target` (default: the newest schema); return the revision it is at."""
    if target == "head" and _stamped(engine) == HEAD_REVISION:
        return HEAD_REVISION
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(alembic_config())
    current = current_revision(engine)
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            raise StoreError(
                f"the project database has schema revision {current!r}, newer than this synsetforge knows "
                f"(newest here: {script.get_current_head()!r}); upgrade synsetforge to open it"
            ) from None
    wanted = script.get_current_head() if target == "head" else target
    if current is not None and current == wanted:
        return current
    if not upgrade:
        raise StoreError(
            f"the project database has schema revision {current!r}; run `synsetforge upgrade` to migrate it"
        )
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), target)
    got = current_revision(engine)
    assert got is not None
    return got


def _stamped(engine: Engine) -> str | None:
    """The revision in Alembic's version table, read with plain SQL (None when there is no table yet)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return None
    return rows[0] if len(rows) == 1 else None
