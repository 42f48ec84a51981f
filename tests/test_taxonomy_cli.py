"""`synsetforge taxonomy ...`: the Typer sub-app directly, and once through the real console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.hierarchy import load_wordnet
from synsetforge.hierarchy.cli import app

DATA = Path(__file__).parent / "data" / "taxonomy"
runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    """Invoke the sub-app like the top-level CLI does; SynsetforgeError becomes 'error: ...', exit 1."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "100"})
    if isinstance(result.exception, SynsetforgeError):
        out = f"error: {result.exception}"
        exit_code = 1
    else:
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        out, exit_code = result.output, result.exit_code
    assert exit_code == code, out
    return out


def error_of(*args: str) -> SynsetforgeError:
    result = runner.invoke(app, list(args))
    assert isinstance(result.exception, SynsetforgeError), result.output
    return result.exception


def test_show_dog() -> None:
    out = run("show", "n02084071")
    assert "n02084071 dog, domestic dog, Canis familiaris" in out
    assert "a member of the genus Canis" in out
    assert "depth: 8" in out and "height: 5" in out and "descendants: 189" in out
    assert "hypernym paths to the root: 2" in out
    paths = out.split("hypernym paths to the root: 2")[1].split("  2. ")
    assert len(paths) == 2
    for path in paths:
        assert path.rstrip().endswith("entity (n00001740)")
    assert "domestic animal (n01317541)" in paths[1] and "carnivore (n02075296)" in paths[0]


def test_show_by_lemma() -> None:
    assert "n02091134 whippet" in run("show", "Whippet")
    many = run("show", "dog")
    assert "7 synsets have the lemma 'dog'" in many
    for sid in ("n02084071", "n02710044", "n10114209"):
        assert sid in many


def test_show_unknown_suggests() -> None:
    err = error_of("show", "n0208407")
    assert isinstance(err, NotFoundError)
    assert "did you mean n02084071 (dog)" in str(err)
    assert "did you mean 'whippet'" in str(error_of("show", "whipet"))


def test_tree() -> None:
    out = run("tree", "n13863186", "--depth", "1", "--max-children", "3")
    h = load_wordnet()
    kids = h.children("n13863186")
    assert "plane figure n13863186 · 60 descendants" in out
    for kid in kids[:3]:
        assert f"{h.name(kid)} {kid}" in out
    assert kids[3] not in out
    assert f"... {len(kids) - 3} more" in out
    deeper = run("tree", "polygon", "--depth", "2")
    assert "triangle n13879320" in deeper and "right triangle" in deeper


def test_search() -> None:
    out = run("search", "greyhound", "--limit", "3")
    assert out.count("\n│ n") == 3
    assert out.index("n02090827") < out.index("Italian greyhound")  # greyhound itself first
    assert run("search", "zzzqqq", code=1).startswith("no lemma contains")


def test_select(tmp_path: Path) -> None:
    lines = run("select", "--subtree", "n13863186", "--leaves", "--max", "5", "--seed", "1").splitlines()
    assert len(lines) == 5
    h = load_wordnet()
    ids = [line.split()[0] for line in lines]
    assert ids == h.select("n13863186", leaves=True, max_n=5, seed=1)
    assert lines[0] == f"{ids[0]} {', '.join(h.get(ids[0]).lemmas)}"
    out_file = tmp_path / "classes.txt"
    msg = run("select", "--subtree", "plane figure", "--output", str(out_file))
    every = h.select("n13863186")
    assert f"wrote {len(every)} classes" in msg
    assert [line.split()[0] for line in out_file.read_text().splitlines()] == every
    assert (
        run("validate", str(out_file))
        .strip()
        .endswith(f"{len(every)} classes, 0 unknown, 0 duplicate, 0 overlapping pairs: ok")
    )
    everything = run("select", "--subtree", "n13863186", "--all").splitlines()
    assert len(everything) == len(h.subtree("n13863186"))


def test_expand() -> None:
    assert run("expand", "n02091134").splitlines() == ["whippet", "whippet dog", "whippet greyhound"]
    assert run("expand", "whippet", "--mode", "parents").splitlines() == ["whippet", "whippet greyhound"]
    result = runner.invoke(app, ["expand", "whippet", "--mode", "bogus"])
    assert result.exit_code == 2


def test_lca() -> None:
    assert run("lca", "n02084071", "n02121620").strip() == "n02075296 carnivore (height 7)"
    err = error_of("lca", "dog", "n02121620")
    assert isinstance(err, InputError) and "'dog' names 7 synsets" in str(err)


def test_validate() -> None:
    out = run("validate", str(DATA / "classes.txt"), code=1)
    assert f"{DATA / 'classes.txt'}:6: unknown synset id 'n99999999'" in out
    assert "4 classes, 1 unknown, 1 duplicate, 1 overlapping pairs: problems found" in out
    as_json = run("validate", str(DATA / "classes.txt"), "--json", code=1)
    assert '"ok": false' in as_json and '"first_line": 2' in as_json
    assert isinstance(error_of("validate", str(DATA / "nope.txt")), NotFoundError)


def test_custom_taxonomy_option() -> None:
    taxo = str(DATA / "good.csv")
    out = run("show", "whippet", "--taxonomy", taxo)
    assert "hypernym paths to the root: 2" in out and "animal (animal)" in out
    assert "pet · 3 descendants" in run("tree", "animal", "-t", taxo).replace("pet pet", "pet")
    assert run("select", "--subtree", "animal", "--taxonomy", taxo).splitlines() == [
        "cat cat, house cat",
        "whippet whippet",
    ]
    assert run("expand", "whippet", "--taxonomy", taxo).splitlines() == ["whippet", "whippet dog"]
    assert run("lca", "whippet", "race_car", "-t", taxo, code=1).startswith("whippet and race_car have no")
    assert "race_car" in run("search", "race", "-t", taxo)
    roots = run("tree", "-t", taxo, "--depth", "0")
    assert "animal animal · 6 descendants" in roots and "vehicle vehicle · 1 descendant" in roots


def test_bad_taxonomy_is_one_line_error() -> None:
    err = error_of("show", "dog", "--taxonomy", str(DATA / "bad_dangling.yaml"))
    assert isinstance(err, InputError)
    assert str(err) == f"{DATA / 'bad_dangling.yaml'}:5: parent 'canine' of 'dog' is not defined"


def _console_script() -> Path | None:
    try:
        from synsetforge import cli
    except ImportError:
        return None
    if not hasattr(cli, "main"):
        return None
    script = Path(sys.executable).with_name("synsetforge")
    return script if script.exists() else (Path(found) if (found := shutil.which("synsetforge")) else None)


@pytest.mark.skipif(_console_script() is None, reason="the synsetforge console script is not installed")
def test_real_console_script() -> None:
    script = _console_script()
    assert script is not None
    ok = subprocess.run([str(script), "taxonomy", "show", "n02084071"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Canis familiaris" in ok.stdout and "entity (n00001740)" in ok.stdout
    bad = subprocess.run([str(script), "taxonomy", "show", "n0208407"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: 'n0208407' is neither a synset id nor a lemma")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
