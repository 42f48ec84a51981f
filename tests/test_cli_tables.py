"""`collect` reports what its source skipped (reason, file:line or path), and the CLI's tables never cut an
id or a header, at 80 columns and when the output is not a terminal (Rich then lays out for 80 columns)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from _release_fixtures import WNIDS, build_release_project, jpeg_bytes
from synsetforge.candidates.cli import print_summary
from synsetforge.candidates.collect import CollectOptions, CollectSummary, collect
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.sources.folder import FolderSource
from synsetforge.candidates.sources.urls import UrlListSource
from synsetforge.clitables import Table
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project

TRIANGLE, CIRCLE, SQUARE = "n13879320", "n13873502", "n13878634"


def rendered(renderable: object, width: int = 80) -> str:
    buf = io.StringIO()
    Console(width=width, file=buf, highlight=False).print(renderable)
    return buf.getvalue()


def cli(*args: str) -> str:
    """The real command with its output piped (not a terminal) and no COLUMNS: Rich's 80 columns."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "SYNSETFORGE_PROJECT")}
    proc = subprocess.run(
        [sys.executable, "-m", "synsetforge", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def folder_with_problems(root: Path, outside: Path) -> None:
    """wnid folders with images, a file rejected for each of three reasons, and links leaving the root."""
    for i, sid in enumerate((TRIANGLE, CIRCLE, SQUARE)):
        (root / sid).mkdir(parents=True)
        for k in range(2):
            (root / sid / f"{k}.jpg").write_bytes(jpeg_bytes(500 + 10 * i + k, (160, 120)))
    (root / TRIANGLE / "tiny.jpg").write_bytes(jpeg_bytes(600, (8, 8)))
    (root / CIRCLE / "page.jpg").write_bytes(b"<html>not an image</html>")
    (root / SQUARE / "cut.jpg").write_bytes(jpeg_bytes(601, (160, 120))[:300])
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg_bytes(602, (64, 48)))
    os.symlink(outside / "secret.jpg", root / SQUARE / "escape.jpg")
    os.symlink(outside, root / TRIANGLE / "elsewhere")


def test_collect_counts_and_lists_the_rows_a_url_list_skips(tmp_path: Path, db_url: str) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        "url,synset\n"
        f"file:///etc/passwd,{TRIANGLE}\n"
        f"ftp://example.org/a.jpg,{TRIANGLE}\n"
        f"javascript:alert(1),{TRIANGLE}\n"
        f"example.org/no-scheme.jpg,{TRIANGLE}\n"
        f"https://,{TRIANGLE}\n"
        f"https://example.org/b.jpg,not-a-wnid\x00\n",
        encoding="utf-8",
    )
    with Project.init(tmp_path / "p", db=db_url) as project:
        project.add_synsets([TRIANGLE])
        summary = collect(project, UrlListSource(listing), [TRIANGLE], CollectOptions(engine="inline"))
        assert summary.registered == 0
        assert summary.skipped == {"bad_url": 5, "nul_character": 1}
        problems = [(p.where, p.reason, p.detail) for p in summary.problems]
        assert problems == [
            ("list.csv:2", "bad_url", "scheme 'file' is not allowed (only http, https)"),
            ("list.csv:3", "bad_url", "scheme 'ftp' is not allowed (only http, https)"),
            ("list.csv:4", "bad_url", "scheme 'javascript' is not allowed (only http, https)"),
            ("list.csv:5", "bad_url", "no scheme (only http, https)"),
            ("list.csv:6", "bad_url", "no host in 'https://'"),
            ("list.csv:7", "nul_character", "column 'synset' holds a NUL character"),
        ]
        out = summary_at_80(summary)
    assert "skipped 6 source items: bad_url 5, nul_character 1" in out
    assert "  list.csv:3: bad_url: scheme 'ftp' is not allowed (only http, https)" in out


def summary_at_80(summary: CollectSummary) -> str:
    buf = io.StringIO()
    print_summary(summary, Console(width=80, file=buf, highlight=False))
    return buf.getvalue()


def test_collect_reports_links_leaving_the_folder(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "images"
    folder_with_problems(root, tmp_path / "outside")
    with Project.init(tmp_path / "p", db=db_url) as project:
        project.add_synsets([TRIANGLE, CIRCLE, SQUARE])
        options = CollectOptions(
            engine="inline",
            image_policy=ImagePolicy(resize="keep", min_side=32),
            fetch_policy=FetchPolicy(allow_files=True, file_roots=(root.resolve(),)),
        )
        summary = collect(project, FolderSource(root), [TRIANGLE, CIRCLE, SQUARE], options, kind="folder")
    assert summary.skipped == {"outside_root": 2}
    wheres = {p.where: (p.reason, p.detail) for p in summary.problems}
    assert wheres == {
        f"{TRIANGLE}/elsewhere": ("outside_root", "symlink leads outside the folder"),
        f"{SQUARE}/escape.jpg": ("outside_root", "symlink leads outside the folder"),
    }
    out = summary_at_80(summary)
    assert f"  {SQUARE}/escape.jpg: outside_root: symlink leads outside the folder" in out


def test_collect_and_candidate_stats_tables_keep_ids_whole_at_80_columns(tmp_path: Path) -> None:
    root = tmp_path / "images"
    folder_with_problems(root, tmp_path / "outside")
    project = tmp_path / "p"
    cli("init", str(project))
    cli("synsets", "add", TRIANGLE, CIRCLE, SQUARE, "-p", str(project))
    out = cli("collect", "--source", "folder", "--path", str(root), "--engine", "inline", "-p", str(project))
    assert "…" not in out
    for sid in (TRIANGLE, CIRCLE, SQUARE):
        assert sid in out
    for header in ("fetched", "stored", "duplicates", "rejected:too_small", "rejected:not_image"):
        assert header in out
    assert "skipped 2 source items: outside_root 2" in out
    assert all(len(line) <= 80 for line in out.splitlines())

    stats = cli("candidates", "stats", "-p", str(project))
    assert "…" not in stats
    assert f"folder:{root.resolve()}" in stats.replace("\n", "")  # a path longer than a line folds, whole
    for sid in (TRIANGLE, CIRCLE, SQUARE):
        assert sid in stats
    for header in ("candidates", "attempted", "success", "top reasons"):
        assert header in stats
    assert all(len(line) <= 80 for line in stats.splitlines())


def test_release_show_keeps_ids_and_names_whole_at_80_columns(tmp_path: Path) -> None:
    project, _ = build_release_project(tmp_path / "p", per_synset=4)
    with project:
        create_release(project, "v1", split=SplitSpec(val=1, test=1), seed=2)
        names = [project.hierarchy.name(w) for w in WNIDS]
    out = cli("release", "show", "v1", "-p", str(tmp_path / "p"))
    assert "…" not in out
    for wnid, name in zip(WNIDS, names, strict=True):
        assert wnid in out and name in out.replace("\n", " ")
    for header in ("synset", "depth", "train", "val", "test", "total", "audited", "precision"):
        assert header in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_tables_wrap_between_words_then_stack_but_never_cut() -> None:
    board = Table("rank", "team", "entries", "top-1 error [95% CI]", "top-5 error [95% CI]", "vs next (p)")
    board.add_row(
        "1", "classical-baseline-with-colour-histograms", "3", "41.20% [39.1, 43.3]", "12.00%", "0.03"
    )
    board.add_row("2", "team-b", "1", "45.00% [42.9, 47.1]", "15.50%", "")
    for width in (120, 80, 60, 30):
        out = rendered(board, width)
        assert "…" not in out
        joined = "".join(line.strip() for line in out.splitlines())  # a word wider than the line folds
        assert "classical-baseline-with-colour-histograms" in joined
        assert "41.20%" in out and "team-b" in out
        assert all(len(line) <= width for line in out.splitlines())
    wide = rendered(board, 160)
    assert "┃ team " in wide  # a real table when it fits
    narrow = rendered(board, 60)
    assert "┃" not in narrow  # stacked: each row is a block
    assert narrow.splitlines()[0] == "1"
    assert "  team: classical-baseline-with-colour-histograms" in narrow
    words = Table("synset", "gloss")
    words.add_row("n13863634", "a plane figure with four equal sides and four right angles " * 2)
    text = rendered(words, 50)
    assert "┃ synset" in text and "n13863634" in text and "…" not in text  # the gloss wraps at spaces
