"""Challenges end to end on SQLite and PostgreSQL: creation, hidden test set, submissions, scoring, limits."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from _challenge_fixtures import (
    World,
    build_world,
    classic_file,
    kaggle_file,
    make_challenge,
    oracle_file,
    team_with_accounts,
    truth,
)
from synsetforge.benchmark.challenge import (
    ChallengeSettings,
    anonymous_test_images,
    create_challenge,
    get_challenge,
    hidden,
    public_settings,
)
from synsetforge.benchmark.participants import authenticate, create_account, create_team, hash_token
from synsetforge.benchmark.scoring import load_context, score_file, unpack_losses
from synsetforge.benchmark.standings import leaderboard, team_submissions
from synsetforge.benchmark.submissions import ChallengeClosed, LimitReached, UploadTooLarge, submit, usage
from synsetforge.benchmark.worker import drain
from synsetforge.errors import InputError, NotFoundError
from synsetforge.releases.manifest import iter_items, write_manifest
from synsetforge.store import schema


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    w = build_world(tmp_path / "proj", db_url)
    yield w
    w.close()


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj")
    yield w
    w.close()


# -- creation -------------------------------------------------------------------------------------


def test_leaves_become_classes_and_the_test_set_is_anonymous(world: World) -> None:
    make_challenge(world)
    info = get_challenge(world.project, "shapes")
    assert info.classes == ("circle", "ellipse", "square", "triangle")  # leaves only: not 'polygon'
    # 4 classes x 5 test images, minus the one test image labelled with two classes
    assert info.n_test == 19 and info.stats["dropped_test_images"]["ambiguous"] == 1
    assert info.n_public + info.n_private == 19 and 0 < info.n_public < 19
    assert info.n_val == 8
    names = [name for name, _ in anonymous_test_images(world.project, "shapes")]
    assert names == [f"test_{k:08d}.JPEG" for k in range(1, 20)]
    # the anonymous order is not the insertion order (which groups images by class)
    ids = [image_id for _, image_id in anonymous_test_images(world.project, "shapes")]
    assert ids != sorted(ids)
    _, labels, _ = truth(world, "shapes")
    assert labels != sorted(labels)


def test_order_is_fixed_by_the_seed(tmp_path: Path) -> None:
    w = build_world(tmp_path / "p")
    try:
        for name, seed in [("a", "s1"), ("b", "s1"), ("c", "s2")]:
            create_challenge(w.project, name, w.release, leaves=True, seed=seed)
        order = {n: [i for _, i in anonymous_test_images(w.project, n)] for n in "abc"}
        assert order["a"] == order["b"]
        assert order["a"] != order["c"] and sorted(order["a"]) == sorted(order["c"])
    finally:
        w.close()


def test_overlapping_classes_are_refused_with_the_pairs_named(world: World, tmp_path: Path) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("triangle\npolygon\ncircle\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"polygon \(polygon\) is an ancestor of triangle") as info:
        create_challenge(world.project, "bad", world.release, classes=classes)
    assert "1 ancestor/descendant pairs" in str(info.value)
    with world.project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Challenge)) == 0


def test_class_list_order_defines_the_class_ids(world: World, tmp_path: Path) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("triangle\n# comment\ncircle\nsquare\n", encoding="utf-8")
    info = create_challenge(world.project, "three", world.release, classes=classes)
    assert info.classes == ("triangle", "circle", "square")
    with world.project.session() as s:
        rows = s.execute(
            select(schema.ChallengeClass.position, schema.ChallengeClass.synset_id)
            .where(schema.ChallengeClass.challenge_id == info.id)
            .order_by(schema.ChallengeClass.position)
        ).all()
    assert [tuple(r) for r in rows] == [(1, "triangle"), (2, "circle"), (3, "square")]
    assert info.n_test == 15  # the circle+ellipse test image has one class here: ellipse is not one


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ["triangle", "shape"]}, "is an ancestor of"),
        ({"classes": ["triangle", "nope"]}, "unknown synset id 'nope'"),
        ({"classes": ["triangle", "polygon_x"]}, "unknown synset id"),
        ({"classes": ["triangle", "round_shape"]}, "no test image"),
        ({"classes": ["triangle"]}, "at least 2 classes"),
        ({}, "either a class list"),
        ({"classes": ["triangle", "circle"], "leaves": True}, "either a class list"),
        ({"leaves": True, "min_images": 1000}, "at least 2 classes"),
    ],
)
def test_bad_class_sets(sqlite_world: World, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        create_challenge(sqlite_world.project, "c", sqlite_world.release, **kwargs)  # type: ignore[arg-type]


def test_bad_names_settings_and_releases(sqlite_world: World) -> None:
    p = sqlite_world.project
    with pytest.raises(NotFoundError, match="no release named 'nope'; releases: shapes-v1"):
        create_challenge(p, "c", "nope", leaves=True)
    with pytest.raises(InputError, match="challenge name"):
        create_challenge(p, "../etc", sqlite_world.release, leaves=True)
    with pytest.raises(InputError, match="public_fraction"):
        ChallengeSettings(public_fraction=1.0)
    with pytest.raises(InputError, match="daily submission limit"):
        ChallengeSettings(daily_limit=0)
    with pytest.raises(InputError, match="only scored in a localization"):
        ChallengeSettings(metrics=["localization_error"])
    with pytest.raises(InputError, match="ranking metric"):
        ChallengeSettings(metrics=["top1_error"], rank_by="top5_error")
    now = datetime.now(UTC)
    with pytest.raises(InputError, match="end date must come after"):
        create_challenge(
            p, "c", sqlite_world.release, leaves=True, starts_at=now, ends_at=now - timedelta(days=1)
        )
    make_challenge(sqlite_world, "dup")
    with pytest.raises(InputError, match="already exists"):
        make_challenge(sqlite_world, "dup")


def test_localization_needs_a_box_on_every_test_image(sqlite_world: World) -> None:
    p = sqlite_world.project
    image_id = next(i for i, labels in sqlite_world.labels.items() if labels == [("circle", "test")])
    with p.session() as s:
        cand = s.scalar(select(schema.Candidate.id).where(schema.Candidate.image_id == image_id))
        for box in s.scalars(select(schema.BoxRow).where(schema.BoxRow.candidate_id == cand)):
            box.status = "bad"
    # judging a box bad after the release changes nothing: the challenge takes the release's boxes
    make_challenge(sqlite_world, "loc-live", task="localization")
    # a release that froze no box for that image (as if made after the judgement) cannot make one
    with p.session() as s:
        rel = s.scalar(select(schema.Release).where(schema.Release.name == sqlite_world.release))
        assert rel is not None
        items = [
            dataclasses.replace(it, boxes=()) if it.image_id == image_id else it
            for it in iter_items(p.blobs, rel.manifest_sha256)
        ]
        rel.manifest_sha256, _ = write_manifest(p.blobs, {"release": rel.name}, items)
    with pytest.raises(InputError, match="a box on every test image; 1 of 19 test images have none"):
        make_challenge(sqlite_world, "loc", task="localization")
    make_challenge(sqlite_world, "cls")  # classification does not need boxes


def test_hidden_keys_are_not_in_public_settings(sqlite_world: World) -> None:
    make_challenge(sqlite_world)
    info = get_challenge(sqlite_world.project, "shapes")
    shown = json.dumps(public_settings(info))
    for value in hidden(sqlite_world.project, info.id).values():
        assert value not in shown
    assert "hidden" not in public_settings(info)


def test_the_manifest_holds_the_hidden_labels(sqlite_world: World) -> None:
    make_challenge(sqlite_world)
    info = get_challenge(sqlite_world.project, "shapes")
    blob = sqlite_world.project.blobs.get(hidden(sqlite_world.project, info.id)["test_manifest"])
    m = json.loads(gzip.decompress(blob))
    for image_id, label in zip(m["images"], m["labels"], strict=True):
        assert (m["classes"][label], "test") in sqlite_world.labels[image_id]
    assert len(m["box_offsets"]) == 20 and m["box_offsets"][-1] == 19


# -- participants ---------------------------------------------------------------------------------


def test_tokens_are_stored_as_hashes_only(world: World) -> None:
    create_team(world.project, "alpha")
    acct, token = create_account(world.project, "alpha", "ann")
    with world.project.session() as s:
        row = s.get(schema.Participant, acct.id)
        assert row is not None and row.token_hash == hash_token(token) and token not in row.token_hash
    assert authenticate(world.project, token) == acct
    assert authenticate(world.project, token + "x") is None
    assert authenticate(world.project, "") is None
    with pytest.raises(InputError, match="already exists"):
        create_team(world.project, "alpha")
    with pytest.raises(NotFoundError, match="no team"):
        create_account(world.project, "nobody", "x")
    with pytest.raises(InputError, match="control characters"):
        create_team(world.project, "bad\x00name")


# -- submissions and scoring ------------------------------------------------------------------------


def test_scores_match_the_number_of_wrong_images(world: World) -> None:
    make_challenge(world)
    ((acct, _),) = team_with_accounts(world, "alpha")
    receipt = submit(world.project, "shapes", acct, oracle_file(world, "shapes", wrong=4, seed=3))
    assert receipt.format == "ilsvrc" and receipt.usage.remaining == 4
    (outcome,) = drain(world.project)
    assert outcome.status == "done"
    (view,) = team_submissions(world.project, "shapes", acct.team_id)
    assert view.status == "scored" and view.private is None  # private scores stay hidden before the end
    ctx = load_context(world.project, "shapes")
    losses = unpack_losses(world.project.blobs.get(_private(world, view.id)["losses"]))
    assert losses["top1_error"].sum() == 4
    n_pub = int(ctx.public.sum())
    wrong_pub = int(losses["top1_error"][ctx.public].sum())
    assert view.public is not None
    assert view.public["top1_error"].value == pytest.approx(wrong_pub / n_pub)
    assert view.public["top5_error"].value == pytest.approx(wrong_pub / n_pub)
    # the wrong guess is (y + 1) % 4 in leaf order circle, ellipse, square, triangle:
    # circle->ellipse and square->triangle cost 1 (siblings), ellipse->square and triangle->circle cost 2
    _, labels, _ = truth(world, "shapes")
    wrong = np.flatnonzero(losses["top1_error"])
    expected = sum(1 if labels[i] in (0, 2) else 2 for i in wrong)
    assert losses["hierarchical_error_raw"].sum() == expected
    iv = view.public["top1_error"]
    assert iv.low <= iv.value <= iv.high


def _private(world: World, submission_id: int) -> dict[str, object]:
    with world.project.session() as s:
        row = s.get(schema.Submission, submission_id)
        assert row is not None
        return dict(row.private_scores)


def test_kaggle_form_with_and_without_boxes(world: World) -> None:
    make_challenge(world)
    ((acct, _),) = team_with_accounts(world, "alpha")
    submit(world.project, "shapes", acct, kaggle_file(world, "shapes"))
    submit(world.project, "shapes", acct, kaggle_file(world, "shapes", boxes=True))
    assert [o.status for o in drain(world.project)] == ["done", "done"]
    views = team_submissions(world.project, "shapes", acct.team_id)
    assert [v.format for v in views] == ["kaggle", "kaggle"]
    for v in views:
        assert v.status == "scored" and v.public is not None and v.public["top5_error"].value == 0.0


def test_localization_challenge_scores_boxes(sqlite_world: World) -> None:
    w = sqlite_world
    make_challenge(w, "loc", task="localization")
    ((acct, _),) = team_with_accounts(w, "alpha")
    submit(w.project, "loc", acct, kaggle_file(w, "loc", boxes=True))
    # right labels but a 1x1 box in the corner: classification right, localization wrong
    names, labels, classes = truth(w, "loc")
    lines = ["ImageId,PredictionString"] + [
        f"{n},{classes[y]} 0 0 0 0" for n, y in zip(names, labels, strict=True)
    ]
    submit(w.project, "loc", acct, ("\n".join(lines) + "\n").encode())
    submit(w.project, "loc", acct, oracle_file(w, "loc"))  # class ids without boxes: malformed here
    drain(w.project)
    bad, tiny, good = team_submissions(w.project, "loc", acct.team_id)
    assert good.public is not None and good.public["localization_error"].value == 0.0
    assert tiny.public is not None and tiny.public["localization_error"].value == 1.0
    assert tiny.public["top5_error"].value == 0.0
    assert bad.status == "failed" and bad.error is not None and "groups of 5" in bad.error


def test_malformed_file_gets_a_precise_error_and_does_not_count(world: World) -> None:
    make_challenge(world, daily_limit=2)
    ((acct, _),) = team_with_accounts(world, "alpha")
    rows = [[0]] * 19
    data = classic_file(rows).replace(b"1\n", b"1 x\n", 1)  # line 1, field 2
    receipt = submit(world.project, "shapes", acct, data)
    assert usage(world.project, "shapes", acct.team_id).used == 1  # counts provisionally while queued
    drain(world.project)
    (view,) = team_submissions(world.project, "shapes", acct.team_id, submission_id=receipt.id)
    assert view.status == "failed" and not view.counts_against_limit
    assert view.error == "submission: line 1, field 2: 'x' is not an integer class id (1..4)"
    assert usage(world.project, "shapes", acct.team_id).used == 0
    bad = submit(world.project, "shapes", acct, classic_file([[9]] * 19))  # out of range class id
    drain(world.project)
    (view,) = team_submissions(world.project, "shapes", acct.team_id, submission_id=bad.id)
    assert view.error == "submission: line 1, field 1: class id 10 is out of range 1..4"
    submit(world.project, "shapes", acct, classic_file(rows))
    submit(world.project, "shapes", acct, classic_file(rows))  # the malformed ones freed their slots
    with pytest.raises(LimitReached):
        submit(world.project, "shapes", acct, classic_file(rows))


def test_limit_holds_per_team_across_accounts(world: World) -> None:
    make_challenge(world, daily_limit=3)
    accounts = team_with_accounts(world, "alpha", n=3)
    ((other, _),) = team_with_accounts(world, "beta")
    data = oracle_file(world, "shapes")
    for acct, _ in accounts:
        submit(world.project, "shapes", acct, data)
    for acct, _ in accounts:  # a fourth account of the team is refused too
        with pytest.raises(LimitReached, match=r"team 'alpha' has used its 3 submissions .* per team"):
            submit(world.project, "shapes", acct, data)
    extra, _ = create_account(world.project, "alpha", "sock-puppet")
    with pytest.raises(LimitReached):
        submit(world.project, "shapes", extra, data)
    submit(world.project, "shapes", other, data)  # another team is not affected
    # the window is 24 hours: a day later the slots are back
    later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
    submit(world.project, "shapes", extra, data, now=later)
    with world.project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Submission)) == 5


def test_concurrent_accounts_of_one_team_cannot_exceed_the_limit(world: World) -> None:
    import threading

    make_challenge(world, daily_limit=2)
    accounts = team_with_accounts(world, "alpha", n=6)
    data = oracle_file(world, "shapes")
    results: list[str] = []
    barrier = threading.Barrier(len(accounts))

    def go(acct: object) -> None:
        barrier.wait()
        try:
            submit(world.project, "shapes", acct, data)  # type: ignore[arg-type]
            results.append("ok")
        except LimitReached:
            results.append("limit")

    threads = [threading.Thread(target=go, args=(a,)) for a, _ in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["limit"] * 4 + ["ok"] * 2


def test_upload_size_and_dates(sqlite_world: World) -> None:
    w = sqlite_world
    now = datetime.now(UTC)
    make_challenge(w, "future", starts_at=now + timedelta(days=1))
    make_challenge(w, "past", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    make_challenge(w, "small", max_upload_bytes=100)
    ((acct, _),) = team_with_accounts(w, "alpha")
    with pytest.raises(ChallengeClosed, match="opens at"):
        submit(w.project, "future", acct, b"1\n")
    with pytest.raises(ChallengeClosed, match="ended at"):
        submit(w.project, "past", acct, b"1\n")
    with pytest.raises(UploadTooLarge, match="at most 100"):
        submit(w.project, "small", acct, b"1\n" * 51)
    with pytest.raises(InputError, match="empty"):
        submit(w.project, "small", acct, b"  \n")
    with w.project.session() as s:
        assert s.scalar(select(func.count()).select_from(schema.Submission)) == 0


def test_scores_are_reproducible_from_the_stored_file(world: World) -> None:
    make_challenge(world)
    ((acct, _),) = team_with_accounts(world, "alpha")
    receipt = submit(world.project, "shapes", acct, oracle_file(world, "shapes", wrong=5))
    drain(world.project)
    with world.project.session() as s:
        row = s.get(schema.Submission, receipt.id)
        assert row is not None
        blob, stored = row.blob, dict(row.public_scores)
    again = score_file(world.project.blobs.get(blob), load_context(world.project, "shapes"))
    ctx = load_context(world.project, "shapes")
    assert again.losses["top5_error"][ctx.public].mean() == stored["metrics"]["top5_error"]["value"]


def test_private_board_waits_for_the_end_and_ranks_the_same_entries(sqlite_world: World) -> None:
    w = sqlite_world
    now = datetime.now(UTC)
    make_challenge(w, "c", ends_at=now + timedelta(days=1))
    ((a, _),) = team_with_accounts(w, "alpha")
    ((b, _),) = team_with_accounts(w, "beta", outside_data=True)
    ((c, _),) = team_with_accounts(w, "gamma")
    submit(w.project, "c", a, oracle_file(w, "c", wrong=6, seed=1))
    submit(w.project, "c", a, oracle_file(w, "c", wrong=1, seed=2))
    submit(w.project, "c", b, oracle_file(w, "c"))
    submit(w.project, "c", c, oracle_file(w, "c", wrong=12, seed=4))
    drain(w.project)
    board = leaderboard(w.project, "c")
    assert list(board.tracks) == ["provided data", "outside data"]
    provided = board.tracks["provided data"]
    assert [e.team for e in provided] == ["alpha", "gamma"]
    assert provided[0].n_submissions == 2 and provided[0].vs_next is not None
    assert provided[0].vs_next.method == "mcnemar" and provided[1].vs_next is None
    assert board.tracks["outside data"][0].team == "beta"
    with pytest.raises(InputError, match="revealed when the challenge ends"):
        leaderboard(w.project, "c", split="private")
    after = now + timedelta(days=2)
    private = leaderboard(w.project, "c", split="private", now=after)
    assert {e.submission_id for e in private.entries} == {e.submission_id for e in board.entries}
    views = team_submissions(w.project, "c", a.team_id, now=after)
    assert all(v.private is not None for v in views)


def test_ladder_releases_only_improvements(sqlite_world: World) -> None:
    w = sqlite_world
    make_challenge(w, "lad", ladder=True, ladder_margin=0.01, daily_limit=10)
    ((a, _),) = team_with_accounts(w, "alpha")
    for wrong, seed in [(8, 1), (8, 2), (2, 3), (8, 4)]:
        submit(w.project, "lad", a, oracle_file(w, "lad", wrong=wrong, seed=seed))
    drain(w.project)
    views = list(reversed(team_submissions(w.project, "lad", a.team_id)))
    assert views[0].ladder_improved is True and views[0].public is not None
    assert set(views[0].public) == {"top5_error"}  # only the ranking metric, rounded to the step
    assert views[2].ladder_improved is True
    assert views[3].ladder_improved is False and views[3].public is None
    board = leaderboard(w.project, "lad")
    (entry,) = board.entries
    assert entry.submission_id == views[2].id and board.metrics == ["top5_error"]
    step_value = entry.scores["top5_error"].value
    assert step_value == pytest.approx(round(step_value / 0.01) * 0.01)
