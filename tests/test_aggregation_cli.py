"""The aggregation sub-app: `simulate` and `votes FILE.csv`, invoked through Typer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from synsetforge.crowd.aggregation.cli import app
from synsetforge.errors import InputError, NotFoundError, SynsetforgeError

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "140"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def write_votes(path: Path, rows: list[tuple], header: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_simulate_prints_both_methods_and_the_fig7_table() -> None:
    out = run(
        "simulate",
        "--synsets",
        "2",
        "--images",
        "300",
        "--workers",
        "80",
        "--gold-questions",
        "0",
        "--initial-size",
        "30",
        "--difficulties",
        "0,0.4",
    )
    assert "dynamic consensus 0.99" in out and "majority of 5" in out
    assert "Fig. 7" in out and "s0" in out and "s1" in out
    assert "%" in out


def test_votes_csv_with_each_method(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(60) < 0.4
    rows = []
    for t in range(60):
        for w in range(12 if t < 20 else 5):
            label = truth[t] if rng.random() < 0.85 else not truth[t]
            rows.append(
                (
                    f"img{t}",
                    f"w{w}",
                    "yes" if label else "no",
                    "n02084071" if t % 2 else "n02121808",
                    len(rows),
                )
            )
    path = write_votes(tmp_path / "votes.csv", rows, ("task", "worker", "label", "synset", "time"))

    out_csv = tmp_path / "decisions.csv"
    out = run("votes", str(path), "--method", "dawid-skene", "--out", str(out_csv))
    assert "60 tasks, 12 workers, dawid-skene" in out and "least accurate workers" in out
    with out_csv.open() as fh:
        decided = {r["task"]: r["label"] for r in csv.DictReader(fh)}
    assert len(decided) == 60
    agree = np.mean([(decided[f"img{t}"] == "True") == truth[t] for t in range(60)])
    assert agree > 0.9

    assert "majority" in run("votes", str(path), "--method", "majority")
    dyn = run(
        "votes", str(path), "--method", "dynamic", "--synset-column", "synset", "--order-column", "time"
    )
    assert "60 tasks in 2 synsets" in dyn and "accept" in dyn


def test_votes_csv_errors(tmp_path: Path) -> None:
    bad = write_votes(tmp_path / "bad.csv", [("a", "w", "yes")], ("task", "annotator", "label"))
    good = write_votes(tmp_path / "good.csv", [("a", "w", "yes")], ("task", "worker", "label"))
    cases: list[tuple[tuple[str, ...], type[SynsetforgeError], str]] = [
        (("votes", str(tmp_path / "nope.csv")), NotFoundError, "not found"),
        (("votes", str(bad)), InputError, "missing column"),
        (("votes", str(good), "--method", "dynamic"), InputError, "--synset-column"),
        (("simulate", "--synsets", "0"), InputError, "--synsets"),
        (("simulate", "--difficulties", "easy"), InputError, "comma-separated"),
        (("simulate", "--workers", "5", "--gold-questions", "0"), InputError, "distinct workers"),
    ]
    for args, kind, message in cases:
        result = runner.invoke(app, list(args))
        assert isinstance(result.exception, kind), result.output
        assert message in str(result.exception)
