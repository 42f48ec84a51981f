"""The crowd command line (`crowd`, `workers`, `admin` groups and `serve`), mounted on a root app the way
`synsetforge.cli` registers them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from synsetforge.crowd.cli import admin_app, serve, workers_app
from synsetforge.crowd.cli import app as crowd_app
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.crowd.tokens import hash_token
from synsetforge.store import Project, schema

SQUARE = "n13878634"
runner = CliRunner()


def root_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.add_typer(crowd_app, name="crowd")
    app.add_typer(workers_app, name="workers")
    app.add_typer(admin_app, name="admin")
    app.command()(serve)
    return app


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    with Project.init(root) as p:
        p.add_synsets([SQUARE])
        add_synthetic_candidates(p, [SQUARE], 150, precision=0.2, render=False)
    return root


def run(*args: str) -> str:
    result = runner.invoke(root_app(), list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_token_and_workers(proj: Path) -> None:
    out = run("admin", "token", "--name", "me", "-p", str(proj))
    token = out.strip().splitlines()[-1]
    with Project.open(proj) as p, p.session() as s:
        row = s.scalars(select(schema.ApiToken)).one()
        assert row.token_hash == hash_token(token) and row.role == "admin"
    out = run("workers", "invite", "ann", "bob", "--base-url", "https://crowd.example", "-p", str(proj))
    links = re.findall(r"https://crowd\.example/invite/[\w-]+", out)
    assert len(links) == 2
    out = run(
        "workers",
        "marketplace-link",
        "--platform",
        "prolific",
        "--base-url",
        "https://c.example",
        "-p",
        str(proj),
    )
    assert "https://c.example/m/" in out and "PROLIFIC_PID={{%PROLIFIC_PID%}}" in out
    out = run("workers", "block", "1", "--reason", "test", "-p", str(proj))
    assert "worker 1 blocked" in out
    out = run("workers", "list", "-p", str(proj))
    assert "ann" in out and "blocked: test" in out and "2 workers, 1 blocked" in out
    out = run("workers", "block", "1", "--undo", "-p", str(proj))
    assert "unblocked" in out


def test_simulate_aggregate_export_import(proj: Path, tmp_path: Path) -> None:
    out = run("crowd", "simulate", "--workers", "20", "--accuracy", "0.9", "--gold", "16", "-p", str(proj))
    assert "precision vs ground truth" in out and "simulated workers submitted" in out
    for method in ("dawid-skene", "majority", "imagenet"):
        out = run("crowd", "aggregate", "--method", method, "--write", "-p", str(proj))
        assert f"method {method}" in out and "against ground truth: precision" in out
        assert f"written; decisions now: {method}" in out
    with Project.open(proj) as p, p.session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(schema.Worker).where(schema.Worker.est_accuracy.is_not(None))
            )
            > 0
        )
        n_votes = s.scalar(select(func.count()).select_from(schema.Vote))
    csv_file = tmp_path / "votes.csv"
    out = run("crowd", "export-csv", str(csv_file), "-p", str(proj))
    assert f"wrote {n_votes} votes rows" in out
    out = run("crowd", "import-csv", str(csv_file), "-p", str(proj))
    assert f"0 votes imported, {n_votes} already present" in out
    assert "candidate_id,synset_id,decision" in run(
        "crowd", "export-csv", "-", "--what", "decisions", "-p", str(proj)
    )


def test_user_errors_are_reported(proj: Path, tmp_path: Path) -> None:
    result = runner.invoke(root_app(), ["crowd", "aggregate", "--method", "vote", "-p", str(proj)])
    assert result.exit_code != 0 and "unknown aggregation method" in str(result.exception)
    result = runner.invoke(root_app(), ["crowd", "gold", "-p", str(proj)])
    assert result.exit_code != 0 and "exactly one of" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("candidate_id,worker_external_id,label\n1,x,sometimes\n", encoding="utf-8")
    result = runner.invoke(root_app(), ["crowd", "import-csv", str(bad), "-p", str(proj)])
    assert result.exit_code != 0 and "bad.csv:2" in str(result.exception)
    out = run("crowd", "gold", "--from-ground-truth", "4", "-p", str(proj))
    assert "4 gold images stored" in out


def test_crowd_demo_prints_the_precision_reached(proj: Path) -> None:
    from rich.console import Console

    from synsetforge.crowd.demo import run_crowd_demo

    console = Console(record=True, width=160)
    with Project.open(proj) as p:
        sim = run_crowd_demo(p, console, workers=20, accuracy=0.9, spammers=0.1, max_seconds=60)
    text = console.export_text()
    assert "Crowd verification" in text and "precision vs ground truth" in text
    assert sim.report.decided > 0 and f"{sim.report.precision:.2%}" in text


def test_simulate_worker_aware_with_a_qualification_from_the_project_settings(proj: Path) -> None:
    """`crowd_worker_*` settings come from synsetforge.toml: the rule line names them, and with a
    qualification every worker answers gold before any candidate, so gold votes outnumber the workers."""
    toml = proj / "synsetforge.toml"
    toml.write_text(
        toml.read_text() + 'crowd_worker_qualify = 8\ncrowd_worker_population = "gold"\n', encoding="utf-8"
    )
    out = " ".join(
        run(
            "crowd", "simulate", "--method", "worker-aware", "--workers", "12", "--accuracy", "0.9",
            "--gold", "10", "--max-tasks", "40", "-p", str(proj),
        ).split()
    )  # fmt: skip
    assert "prior gold x 4, qualification 8 gold" in out
    gold_votes = int(out.split(" gold votes")[0].rsplit(" ", 1)[1])
    assert gold_votes >= 8 * 12
