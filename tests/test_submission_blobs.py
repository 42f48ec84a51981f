"""A refused submission stores nothing: limits are checked before the upload becomes a blob.

A team over its daily limit could otherwise fill the disk with uploads that are refused one by one. When a
request fails after its blob was written (two accounts racing for the team's last slot, a database error),
the blob is removed again -- unless a row refers to the same bytes, since blobs are shared by content.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from _challenge_fixtures import World, build_world, make_challenge, oracle_file, team_with_accounts
from synsetforge.benchmark import submissions
from synsetforge.benchmark.submissions import ChallengeClosed, LimitReached, UploadTooLarge, submit
from synsetforge.cli import main
from synsetforge.errors import StoreError
from synsetforge.store import schema
from synsetforge.web.challenge_routes import COOKIE, csrf_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj")
    yield w
    w.close()


def blob_files(world: World) -> dict[str, int]:
    root = world.project.root / "blobs"
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def submission_count(world: World) -> int:
    with world.project.session() as s:
        return int(s.scalar(select(func.count()).select_from(schema.Submission)) or 0)


def upload(world: World, k: int, challenge: str = "shapes") -> bytes:
    """A different valid prediction file for each k (so each would be a new blob)."""
    return oracle_file(world, challenge, wrong=k % 10, seed=k) + b"\n" * k


def test_refused_over_the_daily_limit_stores_nothing(world: World) -> None:
    make_challenge(world, daily_limit=2)
    ((acct, _),) = team_with_accounts(world, "alpha")
    submit(world.project, "shapes", acct, upload(world, 0))
    submit(world.project, "shapes", acct, upload(world, 1))
    before = blob_files(world)
    for k in range(2, 7):  # five refused uploads, each with new bytes
        with pytest.raises(LimitReached):
            submit(world.project, "shapes", acct, upload(world, k))
    assert blob_files(world) == before
    assert submission_count(world) == 2


def test_refused_for_dates_and_size_stores_nothing(world: World) -> None:
    now = datetime.now(UTC)
    make_challenge(world, "past", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    make_challenge(world, "small", max_upload_bytes=100)
    ((acct, _),) = team_with_accounts(world, "alpha")
    before = blob_files(world)
    with pytest.raises(ChallengeClosed):
        submit(world.project, "past", acct, upload(world, 0, "past"))
    with pytest.raises(UploadTooLarge):
        submit(world.project, "small", acct, upload(world, 0, "small") + b"\n" * 200)
    assert blob_files(world) == before


def test_a_request_failing_after_the_blob_was_written_removes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_challenge(world, daily_limit=5)
    ((acct, _),) = team_with_accounts(world, "alpha")
    kept = upload(world, 0)
    submit(world.project, "shapes", acct, kept)
    before = blob_files(world)

    def broken_queue(*_args: object, **_kwargs: object) -> int:
        raise StoreError("the job queue is unavailable")

    monkeypatch.setattr(submissions, "enqueue", broken_queue)
    with pytest.raises(StoreError):
        submit(world.project, "shapes", acct, upload(world, 1))  # new bytes: written, then removed
    assert blob_files(world) == before
    with pytest.raises(StoreError):
        submit(world.project, "shapes", acct, kept)  # the same bytes as a stored submission: kept
    assert blob_files(world) == before
    assert submission_count(world) == 1
    assert world.project.blobs.get(submissions.sha256_hex(kept)) == kept


def test_the_cli_refuses_over_the_limit_with_one_line_and_stores_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_challenge(world, daily_limit=1)
    ((acct, token),) = team_with_accounts(world, "alpha")
    submit(world.project, "shapes", acct, upload(world, 0))
    before = blob_files(world)
    path = tmp_path / "p.txt"
    path.write_bytes(upload(world, 1))
    args = [
        "synsetforge",
        "submit",
        str(path),
        "-c",
        "shapes",
        "--token",
        token,
        "-p",
        str(world.project.root),
    ]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as info:
        main()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 1 and len(err) == 1 and "has used its 1 submissions" in err[0]
    assert blob_files(world) == before


def test_http_uploads_over_the_limit_store_nothing(world: World) -> None:
    from synsetforge.web.app import create_app

    make_challenge(world, daily_limit=1)
    ((acct, token),) = team_with_accounts(world, "alpha")
    submit(world.project, "shapes", acct, upload(world, 0))
    before = blob_files(world)
    with TestClient(create_app(world.project)) as client:
        for k in range(1, 4):
            r = client.post(
                "/api/challenges/shapes/submissions",
                content=upload(world, k),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 429, r.text
        client.cookies.set(COOKIE, token, path="/challenges")
        r = client.post(
            "/challenges/shapes/submit",
            data={"csrf": csrf_for(token)},
            files={"file": ("p.txt", upload(world, 9))},
        )
        assert r.status_code == 429
    assert blob_files(world) == before
    assert submission_count(world) == 1
