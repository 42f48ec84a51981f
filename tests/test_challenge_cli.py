"""The challenge commands as an organiser and a participant run them: create, accounts, submit (locally
and over HTTP), worker, leaderboard; errors are one-line `SynsetforgeError`s."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from _challenge_fixtures import UvicornThread, World, build_world, oracle_file, web_app
from synsetforge.benchmark.challenge_cli import challenge_app, submit_command, worker_command
from synsetforge.errors import InputError, NotFoundError


def cli() -> typer.Typer:
    """The commands registered as the top-level `synsetforge` app registers them."""
    app = typer.Typer()
    app.add_typer(challenge_app, name="challenge")
    app.command("submit")(submit_command)
    app.command("worker")(worker_command)
    return app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj")
    yield w
    w.close()


def run(world: World, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli(), [*args, "-p", str(world.project.root)], env={"COLUMNS": "200"})
    return result.exit_code, result.output, result.exception


def test_organiser_and_participant_flow(world: World, tmp_path: Path) -> None:
    code, out, _ = run(
        world, "challenge", "create", "shapes", "--release", world.release, "--leaves", "--min-images", "3",
        "--daily-limit", "2", "--public-fraction", "0.4", "--ends", "2099-01-01",
    )  # fmt: skip
    assert code == 0, out
    assert "challenge shapes on release shapes-v1: classification, 4 classes" in out
    assert "19 images (labels hidden): 8 public / 11 private" in out
    assert "left out: 1 with several classes" in out and "2 submissions per team per 24 h" in out
    assert "ends 2099-01-01 00:00 UTC" in out
    code, out, _ = run(world, "challenge", "team-add", "alpha")
    assert code == 0 and "created team 'alpha'" in out
    code, out, _ = run(world, "challenge", "account-add", "alpha", "ann")
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert token.startswith("sfp_")
    sub = tmp_path / "sub.txt"
    sub.write_bytes(oracle_file(world, "shapes", wrong=2))
    code, out, _ = run(world, "submit", str(sub), "--challenge", "shapes", "--token", token)
    assert code == 0 and "submission 1 queued (ilsvrc" in out and "has 1 of 2 left" in out
    code, out, _ = run(world, "worker", "--once")
    assert code == 0 and "job 1 (score_submission) done" in out and "1 jobs run" in out
    csv_path = tmp_path / "board.csv"
    code, out, _ = run(world, "challenge", "leaderboard", "shapes", "--csv", str(csv_path))
    assert code == 0 and "alpha" in out and "top-5 error [95% CI]" in out
    rows = list(csv.reader(csv_path.open(newline="")))
    assert rows[1][2] == "alpha"
    code, out, exc = run(world, "challenge", "leaderboard", "shapes", "--board", "private")
    assert code != 0 and isinstance(exc, InputError) and "revealed when the challenge ends" in str(exc)
    code, out, _ = run(world, "challenge", "leaderboard", "shapes", "--board", "private", "--organiser")
    assert code == 0 and "private leaderboard" in out
    code, out, _ = run(world, "challenge", "list")
    assert code == 0 and "shapes" in out
    code, out, _ = run(world, "challenge", "show", "shapes")
    assert code == 0 and "submissions scored 1" in out and "job queue   done 1" in out
    code, out, _ = run(world, "challenge", "teams")
    assert code == 0 and "alpha" in out


def test_cli_errors(world: World, tmp_path: Path) -> None:
    classes = tmp_path / "c.txt"
    classes.write_text("polygon\ntriangle\nsquare\n")
    code, _, exc = run(
        world, "challenge", "create", "x", "--release", world.release, "--classes", str(classes)
    )
    assert code != 0 and isinstance(exc, InputError)
    assert "polygon (polygon) is an ancestor of square (square)" in str(exc)
    assert "polygon (polygon) is an ancestor of triangle (triangle)" in str(exc)
    code, _, exc = run(world, "challenge", "create", "x", "--release", "nope", "--leaves")
    assert isinstance(exc, NotFoundError)
    code, _, exc = run(
        world, "challenge", "create", "x", "--release", world.release, "--leaves", "--ends", "soon"
    )
    assert isinstance(exc, InputError) and "not an ISO date" in str(exc)
    code, _, exc = run(world, "submit", str(tmp_path / "none.txt"), "--challenge", "x", "--token", "t")
    assert isinstance(exc, InputError) and "no such file" in str(exc)
    (tmp_path / "f.txt").write_text("1\n")
    run(world, "challenge", "create", "x", "--release", world.release, "--leaves")
    code, _, exc = run(world, "submit", str(tmp_path / "f.txt"), "--challenge", "x", "--token", "sfp_wrong")
    assert isinstance(exc, InputError) and "unknown participant token" in str(exc)
    code, _, exc = run(world, "worker", "--once", "--lease", "0")
    assert isinstance(exc, InputError)


def test_submit_over_http_and_wait_for_the_score(world: World, tmp_path: Path) -> None:
    import threading

    from synsetforge.benchmark.worker import run_worker

    run(world, "challenge", "create", "shapes", "--release", world.release, "--leaves")
    run(world, "challenge", "team-add", "alpha")
    _, out, _ = run(world, "challenge", "account-add", "alpha", "ann")
    token = out.strip().splitlines()[-1]
    sub = tmp_path / "sub.csv"
    sub.write_bytes(oracle_file(world, "shapes", wrong=1))
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(world.project,), kwargs={"poll": 0.1, "stop": stop})
    with UvicornThread(web_app(world)) as server:
        worker.start()
        try:
            code, out, exc = run(
                world, "submit", str(sub), "--challenge", "shapes", "--token", token, "--url", server.url, "--wait",
                "--timeout", "30",
            )  # fmt: skip
            assert code == 0, (out, exc)
            assert (
                "submission 1 queued" in out and "submission 1: scored" in out and "public  top5_error" in out
            )
            code, out, exc = run(
                world, "submit", str(sub), "--challenge", "shapes", "--token", "bad", "--url", server.url
            )
            assert isinstance(exc, InputError) and "HTTP 401" in str(exc)
        finally:
            stop.set()
            worker.join(10)


def test_benchmark_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from synsetforge.benchmark.demo import run_benchmark_demo
    from synsetforge.benchmark.standings import leaderboard

    w = build_world(tmp_path / "demo", n_train=8, n_val=2, n_test=4)
    try:
        buf = io.StringIO()
        info = run_benchmark_demo(w.project, w.release, Console(file=buf, width=160), cnn_epochs=1)
        text = buf.getvalue()
        assert info is not None and info.name == "shapes-v1-challenge" and len(info.classes) == 4
        assert "val: top-1 error" in text and "done" in text and "classical-baseline" in text
        assert {e.team for e in leaderboard(w.project, info.name).entries} == {
            "classical-baseline",
            "cnn-small",
        }
        assert "chance level: top-1 error 75.0%" in text and "embedded" in text
        again = run_benchmark_demo(w.project, w.release, Console(file=io.StringIO()), cnn=False)
        assert again is not None and again.name == "shapes-v1-challenge-2"  # a second run: new name
    finally:
        w.close()
