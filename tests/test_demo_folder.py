"""`synsetforge demo DIR` deletes nothing it did not make: a user's project or files are refused, untouched.

The demo marks the folder it makes (`.synsetforge-demo`) and lists its outputs there at the end; a rerun
rebuilds such a folder, and only when everything in it is the demo's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from synsetforge.cli import main
from synsetforge.demo import DEMO_MARKER, _prepare_folder, _record_outputs
from synsetforge.errors import InputError
from synsetforge.store import Project

SMALL = ("--per-synset", "10", "--crowd-seconds", "5")  # were the folder accepted, a short run


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["synsetforge", *args])
    monkeypatch.delenv("SYNSETFORGE_PROJECT", raising=False)
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes (the database's WAL is checkpointed when the project closes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def demo_folder(root: Path, *, finished: bool = True) -> None:
    """A folder as `run_demo` leaves it: marked, a project in it, its outputs recorded when it finished."""
    _prepare_folder(root, fresh=True)
    with Project.init(root, name="plane-figures") as p:
        p.add_synsets(["n13863186"])
        p.blobs.put(b"a demo image")
    (root / "release-v1").mkdir()
    (root / "release-v1" / "report.html").write_text("<html></html>")
    if finished:
        _record_outputs(root)


def test_demo_refuses_a_users_project_and_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mine"
    with Project.init(root) as p:
        p.add_synsets(["n02084071"])
        p.blobs.put(b"my image")
    (root / "notes.txt").write_text("my own notes")
    before = snapshot(root)
    code, err = run_main(capsys, monkeypatch, "demo", str(root), *SMALL)
    line = one_error(code, err)
    assert str(root) in line and "did not make" in line and "pick another folder" in line
    assert snapshot(root) == before
    assert not (root / DEMO_MARKER).exists()


def test_no_fresh_refuses_an_earlier_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "demo"
    demo_folder(root)
    before = snapshot(root)
    code, err = run_main(capsys, monkeypatch, "demo", str(root), "--no-fresh", *SMALL)
    assert "--fresh" in one_error(code, err)
    assert snapshot(root) == before


def test_demo_refuses_its_own_folder_once_the_user_added_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "demo"
    demo_folder(root)
    (root / "my-model.pt").write_bytes(b"weights")
    (root / "experiments").mkdir()
    before = snapshot(root)
    code, err = run_main(capsys, monkeypatch, "demo", str(root), *SMALL)
    line = one_error(code, err)
    assert "experiments" in line and "my-model.pt" in line and "nothing was deleted" in line
    assert snapshot(root) == before


def test_an_earlier_demo_is_rebuilt_in_place(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    demo_folder(root)
    assert "release-v1" in (root / DEMO_MARKER).read_text()
    _prepare_folder(root, fresh=True)
    assert [p.name for p in root.iterdir()] == [DEMO_MARKER]  # ready for Project.init
    with Project.init(root) as p:
        assert p.synset_ids() == []


def test_an_interrupted_demo_is_rebuilt_but_not_foreign_files(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    demo_folder(root, finished=False)  # stopped before it recorded its outputs
    (root / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=r"keep\.txt"):
        _prepare_folder(root, fresh=True)
    assert (root / "synsetforge.toml").exists() and (root / "keep.txt").read_text() == "mine"
    (root / "keep.txt").unlink()
    _prepare_folder(root, fresh=True)
    assert [p.name for p in root.iterdir()] == [DEMO_MARKER]


def test_an_empty_folder_is_used_and_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _prepare_folder(tmp_path / "empty", fresh=False)
    assert (tmp_path / "empty" / DEMO_MARKER).is_file()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        _prepare_folder(tmp_path / "afile", fresh=True)
    assert (tmp_path / "afile").read_text() == "x"
