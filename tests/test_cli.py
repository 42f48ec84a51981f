"""The real `synsetforge` command, run as a user would: output, exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"}
    full_env.update({"COLUMNS": "120", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "synsetforge", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_taxonomy_show_dog() -> None:
    proc = run("taxonomy", "show", "n02084071")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for lemma in ("dog", "domestic dog", "Canis familiaris"):
        assert lemma in out
    assert "a member of the genus Canis" in out
    assert "n00001740" in out
    # every hypernym path ends at the root: the last id printed in the path section is entity
    assert out.rstrip().splitlines()[-1].rstrip().endswith("(n00001740)") or "entity (n00001740)" in out


def test_unknown_id_is_one_line_with_a_suggestion() -> None:
    proc = run("taxonomy", "show", "n02084072")
    assert_one_line_error(proc, "n02084072")


def test_malformed_taxonomy_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "taxo.yaml"
    bad.write_text("- id: animal\n  name: Animal\n- id: dog\n  name: Dog\n  parents: [wolfish]\n")
    proc = run("taxonomy", "show", "dog", "--taxonomy", str(bad))
    assert_one_line_error(proc, "taxo.yaml:", "wolfish")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    proc = run("init", str(tmp_path / "p"), "--db", "postgresql://127.0.0.1:1/nothing")
    assert_one_line_error(proc, "cannot connect to database")
    assert not (tmp_path / "p" / "synsetforge.toml").exists()


def test_init_info_and_synsets(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    proc = run("init", str(root), "--name", "shapes")
    assert proc.returncode == 0, proc.stderr
    assert "Created project shapes" in proc.stdout and "sqlite" in proc.stdout
    proc = run("synsets", "add", "--subtree", "n13863186", "--leaves", "-p", str(root))
    assert proc.returncode == 0, proc.stderr
    added = int(proc.stdout.split()[1])
    assert added > 10
    proc = run("info", cwd=root)  # finds the project from the working directory
    assert proc.returncode == 0, proc.stderr
    assert "shapes" in proc.stdout and f"{added}" in proc.stdout
    proc = run("synsets", "add", "n99999999", "-p", str(root))
    assert_one_line_error(proc, "n99999999")


def test_project_not_found_is_one_line(tmp_path: Path) -> None:
    proc = run("info", cwd=tmp_path)
    assert_one_line_error(proc, "no synsetforge project")


def test_class_list_load(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert run("init", str(root)).returncode == 0
    good = tmp_path / "classes.txt"
    good.write_text("# two ILSVRC classes\nn01440764 tench, Tinca tinca\nn02084071\n")
    proc = run("classes", "load", str(good), "-p", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "2 classes" in proc.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("n02084071\nn02085620\nn02084071\nn0000bad\n")  # dog, chihuahua (a dog), dup, unknown
    proc = run("classes", "load", str(bad), "-p", str(root))
    assert_one_line_error(proc, "bad.txt:4", "bad.txt:3")
    proc = run("info", "-p", str(root))
    assert proc.returncode == 0
    assert "synsets" in proc.stdout


@pytest.mark.slow
def test_demo_builds_the_plane_figure_project(tmp_path: Path) -> None:
    proc = run("demo", str(tmp_path / "demo"), "--per-synset", "40", "--crowd-seconds", "30", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "plane figure" in out and "n13863186" in out and "triangle" in out
    assert "search queries" in out
    assert "collection summary" in out and "precision vs ground truth" in out
    assert "release v1" in out and "release transfer-v1" in out
    stages = re.findall(r"(\d)\. [A-Z][a-z]+", out)
    assert stages[:7] == ["1", "2", "3", "4", "5", "6", "7"]
    assert out.count("classical-baseline") >= 2 and out.count("cnn-small") >= 2  # both entries on the boards
    assert "chance level: top-1 error" in out and "transfer to transfer-v1" in out
    assert "nan" not in out
    assert f"admin token -p {tmp_path / 'demo'}" in out
    assert (tmp_path / "demo" / "synsetforge.toml").exists()
    assert (tmp_path / "demo" / "release-v1" / "report.html").exists()


def test_demo_refuses_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "keep.txt").write_text("mine")
    proc = run("demo", str(tmp_path / "stuff"))
    assert_one_line_error(proc, "did not make", "pick another folder")
    assert (tmp_path / "stuff" / "keep.txt").read_text() == "mine"


@pytest.mark.postgres
def test_init_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    proc = run("init", str(tmp_path / "pg"), "--db", pg_url)
    assert proc.returncode == 0, proc.stderr
    assert "postgresql" in proc.stdout
    proc = run("synsets", "add", "n02084071", "-p", str(tmp_path / "pg"))
    assert proc.returncode == 0, proc.stderr
    proc = run("info", "-p", str(tmp_path / "pg"))
    assert "postgresql" in proc.stdout
