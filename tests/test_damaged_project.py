"""A project whose database is missing, empty, damaged or foreign: one `error:` line, nothing created.

Only `synsetforge init` creates a database. Opening must never replace a lost `project.db` with a new,
empty project (every command would then "work" on nothing), and a damaged file must not end in a driver
traceback.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from synsetforge.cli import main
from synsetforge.errors import StoreError
from synsetforge.store import Project
from synsetforge.store.project import ProjectConfig


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    """The console-script entry point in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["synsetforge", *args])
    monkeypatch.delenv("SYNSETFORGE_PROJECT", raising=False)
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    with Project.init(root) as p:
        p.add_synsets(["n02084071"])
    return root


def test_missing_database_is_an_error_and_is_not_recreated(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for f in project.glob("project.db*"):
        f.unlink()
    code, err = run_main(capsys, monkeypatch, "info", "-p", str(project))
    assert_one_error_line(code, err, str(project / "project.db"), "missing", "synsetforge init")
    assert not (project / "project.db").exists()


def test_empty_database_file_is_an_error_and_stays_empty(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for f in project.glob("project.db*"):
        f.unlink()
    (project / "project.db").write_bytes(b"")
    code, err = run_main(capsys, monkeypatch, "synsets", "list", "-p", str(project))
    assert_one_error_line(code, err, str(project / "project.db"), "empty")
    assert (project / "project.db").stat().st_size == 0


def test_truncated_database_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = project / "project.db"
    data = db.read_bytes()
    db.write_bytes(data[:5000])
    code, err = run_main(capsys, monkeypatch, "info", "-p", str(project))
    assert_one_error_line(code, err, str(db), "truncated")
    assert db.stat().st_size == 5000


@pytest.mark.parametrize("keep", [0, 100, 4096])
def test_garbage_database_is_one_line(
    project: Path, keep: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random bytes over the whole file, after the 100-byte header, or after the first page."""
    db = project / "project.db"
    data = db.read_bytes()
    damaged = data[:keep] + os.urandom(len(data) - keep)
    db.write_bytes(damaged)
    code, err = run_main(capsys, monkeypatch, "info", "-p", str(project))
    assert_one_error_line(code, err, str(db))
    assert db.read_bytes() == damaged  # left as it was, for whoever tries to rescue it


def test_sqlite_file_without_synsetforge_tables(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = project / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    (project / "synsetforge.toml").write_text(
        (project / "synsetforge.toml").read_text().replace("sqlite:///project.db", "sqlite:///other.db")
    )
    code, err = run_main(capsys, monkeypatch, "info", "-p", str(project))
    assert_one_error_line(code, err, str(other), "no synsetforge project")
    assert set(inspect(create_engine(f"sqlite:///{other}")).get_table_names()) == {"notes"}


def test_open_never_creates_tables(tmp_path: Path, db_url: str) -> None:
    """SQLite or PostgreSQL: a config pointing at a database without the schema is refused, untouched."""
    root = tmp_path / "p"
    root.mkdir()
    ProjectConfig(name="p", db=db_url).write(root / "synsetforge.toml")
    (root / "blobs").mkdir()
    if db_url.startswith("sqlite"):
        sqlite3.connect(tmp_path / "meta.db").close()  # a zero-byte file, as `touch` would leave
    with pytest.raises(StoreError, match="synsetforge init"):
        Project.open(root)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_init_then_open_still_works(tmp_path: Path, db_url: str) -> None:
    with Project.init(tmp_path / "p", db=db_url) as p:
        p.add_synsets(["n02084071"])
    with Project.open(tmp_path / "p") as p:
        assert p.synset_ids() == ["n02084071"]


def test_a_damaged_table_found_after_opening_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening reads only the schema; a garbage page of the synsets table shows up in `synsets list`."""
    db = project / "project.db"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'synsets'").fetchone()
    data = bytearray(db.read_bytes())
    start = (root_page - 1) * page_size
    data[start : start + page_size] = b"\xff" * page_size
    db.write_bytes(bytes(data))
    code, err = run_main(capsys, monkeypatch, "synsets", "list", "-p", str(project))
    assert_one_error_line(code, err, str(db), "damaged", "malformed")
