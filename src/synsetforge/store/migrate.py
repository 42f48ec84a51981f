"""Schema versioning: upgrade older project databases, refuse newer ones.

Opening a project calls `ensure_schema`. An empty database gets every migration; an older schema is
upgraded in place; a database stamped with a revision this code does not know was written by a newer
synsetforge, and we refuse to touch it rather than guess.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from synsetforge.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine, *, upgrade: bool = True, target: str = "head") -> str:
    """Bring the database to `target` (default: the newest schema); return the revision it is at."""
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
