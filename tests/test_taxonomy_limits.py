"""Custom taxonomies are checked against what the project database holds when they are loaded: an id
longer than `synsets.id` (64 characters) or a NUL character is a `file:line` error on both databases, not
a traceback from PostgreSQL at `synsets add` (SQLite stored them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Integer, String

from synsetforge.errors import InputError
from synsetforge.hierarchy import load_taxonomy
from synsetforge.limits import SYNSET_ID_LENGTH
from synsetforge.store import Project, schema


def test_limits_agree_with_the_schema() -> None:
    assert schema.Synset.__table__.c.id.type.length == SYNSET_ID_LENGTH
    for table in schema.Base.metadata.tables.values():
        for column in table.columns:
            fk_targets = {fk.column for fk in column.foreign_keys}
            if schema.Synset.__table__.c.id in fk_targets:
                assert isinstance(column.type, String) and column.type.length == SYNSET_ID_LENGTH
            if column.primary_key and isinstance(column.type, Integer) and len(table.primary_key) == 1:
                # 32-bit on PostgreSQL: what RowId allows must fit every surrogate key
                assert not isinstance(column.type, BigInteger), f"{table.name}.{column.name}"


TAXONOMY = """\
- id: tools
- id: {long}
  parents: tools
"""


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_taxonomy_ids_longer_than_the_store_holds_name_file_and_line(tmp_path: Path, suffix: str) -> None:
    long = "t" * (SYNSET_ID_LENGTH + 1)
    path = tmp_path / f"taxo{suffix}"
    if suffix == ".yaml":
        path.write_text(TAXONOMY.format(long=long), encoding="utf-8")
        line = 2
    else:
        path.write_text(f"id,parents\ntools,\n{long},tools\n", encoding="utf-8")
        line = 3
    with pytest.raises(InputError) as err:
        load_taxonomy(path)
    assert str(err.value).startswith(f"{path}:{line}: id 'tttt")
    assert f"{SYNSET_ID_LENGTH + 1} characters long" in str(err.value)
    assert f"at most {SYNSET_ID_LENGTH}" in str(err.value)


def test_taxonomy_nul_characters_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "taxo.yaml"
    path.write_text('- id: tools\n- id: saw\n  gloss: "cuts\\0wood"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"taxo\.yaml:2: the entry of 'saw' holds a NUL character"):
        load_taxonomy(path)


def test_longest_taxonomy_id_is_stored_and_a_longer_one_refused_alike(tmp_path: Path, db_url: str) -> None:
    longest = "t" * SYNSET_ID_LENGTH
    ok = tmp_path / "ok.yaml"
    ok.write_text(TAXONOMY.format(long=longest), encoding="utf-8")
    with Project.init(tmp_path / "ok", db=db_url, taxonomy=ok) as project:
        assert project.add_synsets(["tools", longest]) == 2
        assert longest in project.synset_ids()
    bad = tmp_path / "bad.yaml"
    bad.write_text(TAXONOMY.format(long=longest + "t"), encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "synsetforge",
            "init",
            str(tmp_path / "bad"),
            "--db",
            db_url,
            "--taxonomy",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:2: id ")
    assert not (tmp_path / "bad" / "synsetforge.toml").exists()
