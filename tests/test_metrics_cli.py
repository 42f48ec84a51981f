"""`synsetforge benchmark score|compare` on small files written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synsetforge.benchmark.cli import app
from synsetforge.errors import InputError, SynsetforgeError

runner = CliRunner()
MAPPING = "n01 tench\nn02 goldfish\nn03 shark\n"
TRUTH = (
    "ImageId,PredictionString\n"
    "v1,n01 0 0 9 9\n"
    "v2,n02 0 0 9 9 n02 20 20 29 29\n"
    "v3,n03 0 0 9 9\n"
    "v4,n01 0 0 9 9\n"
)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "classes.txt").write_text(MAPPING)
    (tmp_path / "truth.csv").write_text(TRUTH)
    # A: v1 right + box IoU 0.5; v2 right second, box on the second GT box; v3 wrong; v4 wrong then right, bad box
    (tmp_path / "a.csv").write_text(
        "ImageId,PredictionString\n"
        "v1,n01 0 0 4 9\n"
        "v2,n01 0 0 9 9 n02 20 20 29 29\n"
        "v3,n01 0 0 9 9\n"
        "v4,n02 0 0 9 9 n01 0 0 2 2\n"
    )
    # B, classic format (lines in file-name order v1..v4, 1-based ids): every top-1 right
    (tmp_path / "b.txt").write_text("1 0 0 9 9\n2 0 0 9 9\n3 0 0 9 9\n1 0 0 9 9\n")
    np.save(tmp_path / "cost.npy", np.array([[0, 1, 2], [1, 0, 2], [2, 2, 0]]))
    return tmp_path


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "120"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def common(d: Path) -> list[str]:
    return ["--truth", str(d / "truth.csv"), "--classes", str(d / "classes.txt"), "--boxes"]


def test_score_prints_errors_intervals_and_confusions(files: Path) -> None:
    out = run("score", str(files / "a.csv"), *common(files), "--cost", str(files / "cost.npy"))
    # top-1: only v1 right -> 0.75; top-5: v1, v2, v4 right -> 0.25; localization: v1, v2 -> 0.5
    assert "0.7500" in out and "0.2500" in out and "0.5000" in out
    # hierarchical: v3 guessed n01 for n03 -> 2, others 0 -> 0.5 raw, 0.25 normalized by 2
    assert "hierarchical (mean LCA height)" in out and "hierarchical / max height 2" in out
    assert "n03" in out and "most confused" in out


def test_score_json(files: Path) -> None:
    (files / "ex.txt").write_text("v3\n")
    out = json.loads(
        run("score", str(files / "a.csv"), *common(files), "--json", "--exclude", str(files / "ex.txt"))
    )
    assert out["n_images"] == 3 and out["n_excluded"] == 1
    assert out["top1_error"] == pytest.approx(2 / 3)
    assert out["top5_error"] == 0.0
    assert out["localization_error"] == pytest.approx(1 / 3)
    assert out["confused_pairs"] == [
        {"truth": "n01", "guess": "n02", "count": 1},  # v4
        {"truth": "n02", "guess": "n01", "count": 1},  # v2
    ]
    low, high = out["intervals_95"]["top1"]
    assert 0 <= low <= 2 / 3 <= high <= 1


def test_compare_two_formats(files: Path) -> None:
    out = run("compare", str(files / "a.csv"), str(files / "b.txt"), *common(files), "--metric", "top1")
    assert "difference A - B: +0.7500" in out
    assert "A only wrong on 3, B only on 0" in out
    assert "mcnemar p-value: 0.25" in out
    out = run(
        "compare",
        str(files / "a.csv"),
        str(files / "b.txt"),
        *common(files),
        "--metric",
        "hierarchical",
        "--cost",
        str(files / "cost.npy"),
    )
    assert "bootstrap p-value" in out


def test_bad_submission_is_an_input_error_with_its_location(files: Path) -> None:
    (files / "bad.csv").write_text("ImageId,PredictionString\nv1,n01 0 0 9 9\nv2,n09 0 0 9 9\nv3,\nv4,\n")
    result = runner.invoke(app, ["score", str(files / "bad.csv"), *common(files)])
    assert isinstance(result.exception, InputError)
    assert "line 3, field 2: 'n09' is not a class id of this challenge" in str(result.exception)
    result = runner.invoke(
        app, ["score", str(files / "a.csv"), *common(files), "--cost", str(files / "none.npy")]
    )
    assert isinstance(result.exception, SynsetforgeError)
    result = runner.invoke(
        app,
        [
            "score",
            str(files / "b.txt"),
            "--truth",
            str(files / "b.txt"),
            "--classes",
            str(files / "classes.txt"),
        ],
    )
    assert isinstance(result.exception, InputError) and "needs the list of test image ids" in str(
        result.exception
    )


def test_hierarchical_error_is_normalised_like_a_challenge(tmp_path: Path) -> None:
    """WordNet classes: divide by WordNet's height, as a challenge on a WordNet project does, and say so."""
    from synsetforge.hierarchy import load_wordnet

    wn = load_wordnet()
    dog, cat, whippet = "n02084071", "n02121620", "n02091134"
    (tmp_path / "classes.txt").write_text(f"{dog} dog\n{cat} cat\n{whippet} whippet\n")
    (tmp_path / "truth.csv").write_text(f"ImageId,PredictionString\nv1,{dog} 0 0 9 9\nv2,{cat} 0 0 9 9\n")
    (tmp_path / "a.csv").write_text(f"ImageId,PredictionString\nv1,{cat}\nv2,{cat}\n")
    np.save(tmp_path / "cost.npy", wn.hierarchical_cost_matrix([dog, cat, whippet]))
    args = ["score", str(tmp_path / "a.csv"), "--truth", str(tmp_path / "truth.csv")]
    args += ["--classes", str(tmp_path / "classes.txt"), "--cost", str(tmp_path / "cost.npy")]
    lca = wn.lca(dog, cat)
    assert lca is not None
    lca_height = lca[1]
    out = json.loads(run(*args, "--json"))
    assert out["hierarchy_max_height"] == wn.max_height
    assert out["hierarchical_error_normalized"] == pytest.approx(lca_height / 2 / wn.max_height)
    assert out["hierarchy_max_height_from"] == "the height of WordNet 3.0, as challenges divide by"
    assert f"max height {wn.max_height} (the height of WordNet 3.0" in run(*args)
    out = json.loads(run(*args, "--json", "--max-height", "40"))
    assert out["hierarchy_max_height"] == 40 and out["hierarchy_max_height_from"] == "--max-height"


def test_non_wordnet_classes_normalise_by_the_largest_cost_and_say_so(files: Path) -> None:
    out = json.loads(
        run("score", str(files / "a.csv"), *common(files), "--json", "--cost", str(files / "cost.npy"))
    )
    assert out["hierarchy_max_height"] == 2
    assert out["hierarchy_max_height_from"].startswith("the largest cost")
