"""The crowd box engine through the Python API (`BoxService`), on SQLite and PostgreSQL: the three task
kinds end to end, decisions and their confidence, gold in each kind and blocking, holds (no double
assignment), expiry, and refused answers that store nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from _boxes_fixtures import build_box_project, truthful
from synsetforge.boxes.geometry import best_iou, iou
from synsetforge.boxes.gold import gold_from_ground_truth
from synsetforge.boxes.service import BoxService, OtherTaskOpenError
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd.errors import TaskClosedError, WorkerBlockedError
from synsetforge.crowd.service import CrowdService
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.errors import InputError, NotFoundError
from synsetforge.store import Project, schema

NO_GOLD = BoxSettings(
    enroll_every_s=0, quality_gold=0, coverage_gold=0, draw_gold_rate=0, draw_probation_gold=0
)


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Iterator[tuple[Project, dict[int, list[list[int]]]]]:
    with Project.init(tmp_path / "p", db=db_url) as p:
        truth = build_box_project(p, per_synset=6)
        yield p, truth


def service(p: Project, settings: BoxSettings = NO_GOLD, **crowd: object) -> BoxService:
    crowd_settings = CrowdSettings(**{"block_min_gold": 4, **crowd})  # type: ignore[arg-type]
    return BoxService(p, settings, seed=1, crowd=CrowdService(p, crowd_settings, seed=1))


def counts(p: Project) -> tuple[int, int, int]:
    with p.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(schema.BoxRow)) or 0),
            int(s.scalar(select(func.count()).select_from(schema.BoxVote)) or 0),
            int(s.scalar(select(func.count()).where(schema.Task.status == "submitted")) or 0),
        )


def run_crowd(
    svc: BoxService, truth: dict[int, list[list[int]]], workers: list[int], rounds: int = 400
) -> int:
    """Truthful workers take turns until nobody gets work; returns the tasks done."""
    done = 0
    for _ in range(rounds):
        progressed = False
        for w in workers:
            view = svc.next_task(w)
            if view is None:
                continue
            svc.submit(w, view.id, truthful(view, truth))
            done += 1
            progressed = True
        if not progressed:
            return done
    raise AssertionError("the crowd never ran out of work")


def test_truthful_crowd_covers_every_image_with_accurate_boxes(tmp_path: Path, db_url: str) -> None:
    p = Project.init(tmp_path / "small", db=db_url)
    truth = build_box_project(p, per_synset=2)
    svc = service(p)
    workers = [svc.crowd.invite(f"w{i}").worker_id for i in range(5)]
    tasks = run_crowd(svc, truth, workers)
    rows = {r.synset_id: r for r in svc.status()}
    assert sum(r.images for r in rows.values()) == len(truth)
    assert sum(r.covered for r in rows.values()) == len(truth)
    with p.session() as s:
        b = schema.BoxRow
        good = s.execute(
            select(b.candidate_id, b.x1, b.y1, b.x2, b.y2, b.confidence).where(b.status == "good")
        )
        good = [tuple(r) for r in good]
        stages = set(s.scalars(select(schema.BoxImage.stage)))
    assert stages == {"done"}
    assert len(good) == sum(len(t) for t in truth.values())  # one accepted box per instance
    for cid, *box, conf in good:
        assert best_iou(box, truth[cid]) >= 0.99 and conf is not None and conf >= NO_GOLD.quality_accept
    kinds = {k: sum(r.tasks[k] for r in rows.values()) for k in ("draw", "quality", "coverage")}
    assert kinds["draw"] >= len(good) and kinds["quality"] > 0 and kinds["coverage"] > 0
    assert sum(kinds.values()) == tasks
    assert all(r.votes_per_decided_box is not None and r.votes_per_decided_box >= 2 for r in rows.values())
    p.close()


def test_a_rejected_box_sends_the_image_back_to_drawing(project: tuple[Project, dict]) -> None:
    p, truth = project
    svc = service(p)
    drawer, *verifiers = [svc.crowd.invite().worker_id for _ in range(6)]
    view = svc.next_task(drawer, "draw")
    assert view is not None and view.kind == "draw" and view.items[0].accepted == []
    cid = view.items[0].image_id
    sloppy = [0, 0, 5, 5]
    assert best_iou(sloppy, truth[cid]) < 0.5
    svc.submit(drawer, view.id, {"box": sloppy})
    assert svc.next_task(drawer, "quality") is None  # nobody verifies their own box
    decided = None
    for v in verifiers:
        q = svc.next_task(v, "quality")
        assert q is not None and [it.image_id for it in q.items] == [cid] and q.items[0].box == sloppy
        svc.submit(v, q.id, {"good": []})
        with p.session() as s:
            box = s.scalars(select(schema.BoxRow).where(schema.BoxRow.candidate_id == cid)).one()
            if box.status != "proposed":
                decided = (box.status, box.confidence, s.get(schema.BoxImage, cid).stage)  # type: ignore[union-attr]
                break
    assert decided is not None and decided[0] == "bad" and decided[2] == "draw"
    assert decided[1] is not None and decided[1] >= 1 - NO_GOLD.quality_reject
    seen = set()
    for w in [svc.crowd.invite().worker_id for _ in range(len(truth))]:
        d = svc.next_task(w, "draw")
        assert d is not None
        seen.add(d.items[0].image_id)
        assert d.items[0].accepted == []  # the rejected box is not shown as accepted
    assert cid in seen


def test_none_left_is_coverage_evidence_and_accepted_boxes_start_a_new_round(
    project: tuple[Project, dict],
) -> None:
    p, truth = project
    svc = service(p, NO_GOLD.with_(coverage_min_votes=1, coverage_accept=0.7))
    ws = [svc.crowd.invite().worker_id for _ in range(6)]
    single = min(c for c, t in truth.items() if len(t) == 1)
    # draw and accept the single instance
    while True:
        d = svc.next_task(ws[0], "draw")
        assert d is not None
        svc.submit(ws[0], d.id, truthful(d, truth))
        if d.items[0].image_id == single:
            break
    for w in ws[1:]:
        q = svc.next_task(w, "quality")
        if q is None:
            break
        svc.submit(w, q.id, truthful(q, truth))
    with p.session() as s:
        image = s.get(schema.BoxImage, single)
        assert image is not None and image.stage == "coverage" and image.round == 1
    # a "none left" drawing on a covered image counts as a covered vote of the current round
    bi = schema.BoxImage
    with p.session() as s:  # park every other image, send this one back to drawing
        s.execute(update(bi).where(bi.candidate_id != single).values(stage="given_up"))
        s.execute(update(bi).where(bi.candidate_id == single).values(stage="draw"))
    late = svc.crowd.invite().worker_id
    d = svc.next_task(late, "draw")
    assert d is not None and d.items[0].image_id == single
    assert d.items[0].accepted == [truth[single][0]]
    svc.submit(late, d.id, {"none_left": True})
    with p.session() as s:
        vote = s.scalars(
            select(schema.BoxVote).where(
                schema.BoxVote.candidate_id == single, schema.BoxVote.kind == "coverage"
            )
        ).one()
        image = s.get(schema.BoxImage, single)
        assert vote.label and vote.round == 1 and image is not None
        assert image.stage == "done" and image.coverage is not None and image.coverage >= 0.7


def test_one_open_task_per_worker_and_no_image_in_two_tasks(project: tuple[Project, dict]) -> None:
    p, truth = project
    svc = service(p)
    ws = [svc.crowd.invite().worker_id for _ in range(len(truth) + 1)]
    first = svc.next_task(ws[0], "draw")
    assert first is not None
    assert svc.next_task(ws[0], "quality").id == first.id  # type: ignore[union-attr]  # the open task, any kind
    held = {first.items[0].image_id}
    for w in ws[1:-1]:
        v = svc.next_task(w, "draw")
        assert v is not None and v.items[0].image_id not in held
        held.add(v.items[0].image_id)
    assert held == set(truth)
    assert svc.next_task(ws[-1], "draw") is None  # every image is held
    # an expired task frees its image (the hold ends with the task: time passes for both)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with p.session() as s:
        s.execute(update(schema.Task).where(schema.Task.id == first.id).values(expires_at=past))
        s.execute(
            update(schema.BoxImage).where(schema.BoxImage.held_task_id == first.id).values(held_until=past)
        )
    again = svc.next_task(ws[-1], "draw")
    assert again is not None and again.items[0].image_id == first.items[0].image_id
    with pytest.raises(TaskClosedError, match="expired"):
        svc.submit(ws[0], first.id, {"none_left": True})
    # a worker with an open yes/no task gets no box task until it is done
    with p.session() as s:
        s.add(schema.Task(worker_id=ws[0], synset_id=first.synset.id, kind="verify", status="open",
                          created_at=datetime.now(UTC), expires_at=datetime.now(UTC) + timedelta(minutes=5)))  # fmt: skip
    with pytest.raises(OtherTaskOpenError):
        svc.next_task(ws[0])


def test_refused_answers_store_nothing(project: tuple[Project, dict]) -> None:
    p, truth = project
    svc = service(p)
    ann, bob = svc.crowd.invite().worker_id, svc.crowd.invite().worker_id
    d = svc.next_task(ann, "draw")
    assert d is not None
    w, h = d.items[0].width, d.items[0].height
    bad_draws = [
        {"box": [10, 10, 5, 20]},  # negative width
        {"box": [10, 10, 10, 20]},  # zero width
        {"box": [10, 10, 20, 10]},  # zero height
        {"box": [-1, 0, 10, 10]},  # outside
        {"box": [0, 0, w, 10]},  # x2 = width is outside (corners are pixels)
        {"box": [0, 0, 10, h + 5]},
        {"box": [float("nan"), 0, 10, 10]},
        {"box": [0, 0, float("inf"), 10]},
        {"box": [0, 0, 10]},
        {"box": ["0", 0, 10, 10]},
        {"box": [0, 0, 10, 10], "none_left": True},
        {"none_left": False},
        {"good": [1]},  # another kind's answer
        {},
    ]
    for answer in bad_draws:
        with pytest.raises(InputError):
            svc.submit(ann, d.id, answer)
    with pytest.raises(NotFoundError):
        svc.submit(bob, d.id, {"none_left": True})  # not bob's task
    with pytest.raises(NotFoundError):
        svc.submit(ann, 10**6, {"none_left": True})
    assert counts(p) == (0, 0, 0)
    svc.submit(ann, d.id, {"box": truth[d.items[0].image_id][0]})
    with pytest.raises(TaskClosedError, match="already submitted"):
        svc.submit(ann, d.id, {"box": truth[d.items[0].image_id][0]})
    q = svc.next_task(bob, "quality")
    assert q is not None
    before = counts(p)
    for answer in (
        {"good": [q.items[0].box_id, 10**6]},
        {"good": list(range(1, 300))},
        {"covered": []},
        {"good": [True]},
    ):
        with pytest.raises(InputError):
            svc.submit(bob, q.id, answer)
    assert counts(p) == before
    with pytest.raises(InputError):
        svc.next_task(bob, "paint")


def test_gold_in_every_kind_is_invisible_and_blocks_a_spammer(project: tuple[Project, dict]) -> None:
    p, truth = project
    added = gold_from_ground_truth(p, per_synset=3, seed=2)
    assert added.images == 6 and added.draw == 6 and added.good_boxes == 6 and added.bad_boxes >= 4
    assert added.uncovered >= 2  # multi-instance images give "not covered" gold
    with p.session() as s:
        gold_images = set(
            s.scalars(select(schema.BoxImage.candidate_id).where(schema.BoxImage.stage == "gold"))
        )
        bad = s.execute(select(schema.BoxRow.candidate_id, schema.BoxRow.x1, schema.BoxRow.y1, schema.BoxRow.x2,
                               schema.BoxRow.y2).where(schema.BoxRow.status == "bad")).all()  # fmt: skip
    assert all(best_iou(box, truth[cid]) < 0.4 for cid, *box in bad)
    settings = BoxSettings(enroll_every_s=0, draw_probation_gold=1.0)
    svc = service(p, settings, block_min_gold=3, block_threshold=0.7)
    honest = svc.crowd.invite().worker_id
    for _ in range(3):
        d = svc.next_task(honest, "draw")
        assert d is not None
        assert d.items[0].image_id in gold_images  # on probation every draw task is gold here
        assert "gold" not in repr(asdict(d))
        svc.submit(honest, d.id, truthful(d, truth))
    with p.session() as s:
        w = s.get(schema.Worker, honest)
        assert w is not None and w.gold_total == 3 and w.gold_correct == 3 and w.status == "active"
    # a spammer ticking every box is caught by the bad gold boxes of the quality grid and blocked
    drawer = svc.crowd.invite().worker_id
    for _ in range(8):
        d = svc.next_task(drawer, "draw")
        if d is None:
            break
        svc.submit(drawer, d.id, truthful(d, truth))
    spammer = svc.crowd.invite().worker_id
    blocked = False
    for _ in range(5):
        q = svc.next_task(spammer, "quality")
        assert q is not None
        real = [it for it in q.items if it.image_id not in gold_images]
        assert real and all(it.box is not None and it.accepted == [] for it in q.items)
        shown_gold = [it.box_id for it in q.items if it.image_id in gold_images]
        assert shown_gold and min(shown_gold) > max(
            it.box_id for it in real
        )  # fresh copies: ids tell nothing
        assert "gold" not in repr(asdict(q))
        result = svc.submit(spammer, q.id, {"good": [it.box_id for it in q.items]})
        if result.blocked:
            blocked = True
            break
    assert blocked
    with pytest.raises(WorkerBlockedError):
        svc.next_task(spammer)
    with p.session() as s:
        weights = set(s.scalars(select(schema.BoxVote.weight).where(schema.BoxVote.worker_id == spammer)))
        proposed = s.scalar(
            select(func.count()).where(schema.BoxRow.status == "good", schema.BoxRow.origin == "crowd")
        )
    assert weights == {0.0}
    assert proposed == 0  # the spammer's "good" votes decided nothing


def test_coverage_gold_shows_its_boxes_and_scores_the_answer(project: tuple[Project, dict]) -> None:
    p, truth = project
    gold_from_ground_truth(p, per_synset=3, seed=5)
    svc = service(p, NO_GOLD.with_(coverage_gold=2))
    svc.enroll()
    with p.session() as s:  # one real image with its instances accepted, waiting for coverage votes
        image = s.scalars(select(schema.BoxImage).where(schema.BoxImage.stage == "draw").limit(1)).one()
        cid, sid = image.candidate_id, image.synset_id
        for x1, y1, x2, y2 in truth[cid]:
            s.add(schema.BoxRow(candidate_id=cid, x1=x1, y1=y1, x2=x2, y2=y2, origin="crowd", status="good"))
        image.stage, image.round = "coverage", 1
        specs = {
            g.candidate_id: g
            for g in s.scalars(select(schema.BoxGold).where(schema.BoxGold.kind == "coverage"))
        }
    worker = svc.crowd.invite().worker_id
    cov = svc.next_task(worker, "coverage")
    assert cov is not None and cov.kind == "coverage" and cov.synset.id == sid
    shown = {it.image_id: it.accepted for it in cov.items}
    assert shown[cid] == truth[cid]
    gold_items = [c for c in shown if c in specs]
    assert len(gold_items) == 3  # probation (4 gold answers wanted): all 3 of the synset's coverage gold
    assert all(shown[c] == specs[c].shown for c in gold_items)
    assert "gold" not in repr(asdict(cov))
    svc.submit(worker, cov.id, truthful(cov, truth))
    with p.session() as s:
        w = s.get(schema.Worker, worker)
        assert w is not None and w.gold_total == 3 and w.gold_correct == 3
        votes = s.execute(select(schema.BoxVote.candidate_id, schema.BoxVote.label, schema.BoxVote.is_gold,
                                 schema.BoxVote.round)).all()  # fmt: skip
    assert {(c, label, g, r) for c, label, g, r in votes if not g} == {(cid, True, False, 1)}


def test_iou_uses_inclusive_corners() -> None:
    assert iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert iou([0, 0, 9, 9], [10, 0, 19, 9]) == 0.0
    assert iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)


def test_parallel_requests_never_share_an_image(project: tuple[Project, dict]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    p, truth = project
    svc = service(p)
    svc.enroll()
    workers = [svc.crowd.invite().worker_id for _ in range(len(truth) + 4)]

    def take(w: int) -> int | None:
        view = svc.next_task(w, "draw")
        return view.items[0].image_id if view is not None else None

    with ThreadPoolExecutor(8) as pool:
        got = [x for x in pool.map(take, workers) if x is not None]
    assert len(got) == len(set(got)) == len(truth)  # every image once, the extra workers got nothing
    with p.session() as s:
        held = s.execute(select(schema.BoxImage.candidate_id, schema.BoxImage.held_task_id)).all()
        owners = dict(s.execute(select(schema.Task.id, schema.Task.worker_id)).all())
    assert len({owners[t] for _, t in held}) == len(truth)


def test_conflicting_coverage_votes_at_the_cap_send_the_image_back_with_a_fresh_round(
    project: tuple[Project, dict],
) -> None:
    p, truth = project
    svc = service(p, NO_GOLD.with_(coverage_min_votes=2, coverage_max_votes=2, coverage_grid=1))
    svc.enroll()
    with p.session() as s:
        image = s.scalars(select(schema.BoxImage).where(schema.BoxImage.stage == "draw").limit(1)).one()
        cid = image.candidate_id
        x1, y1, x2, y2 = truth[cid][0]
        s.add(schema.BoxRow(candidate_id=cid, x1=x1, y1=y1, x2=x2, y2=y2, origin="crowd", status="good"))
        image.stage, image.round = "coverage", 1
    for answer in ([cid], []):
        w = svc.crowd.invite().worker_id
        view = svc.next_task(w, "coverage")
        assert view is not None and [it.image_id for it in view.items] == [cid]
        svc.submit(w, view.id, {"covered": answer})
    with p.session() as s:
        image = s.get(schema.BoxImage, cid)
        assert image is not None and image.stage == "draw" and image.round == 2
        assert image.coverage is not None and 0.05 < image.coverage < 0.995


def test_posterior_weighs_each_vote_by_the_verifiers_gold_accuracy() -> None:
    from synsetforge.boxes.decisions import accuracy, posterior

    s = BoxSettings()
    assert accuracy(0, 0, s) == pytest.approx(0.8)  # a new worker: the prior accuracy
    assert accuracy(5, 10, s) == 0.65  # (5 + 10 * 0.8) / 20
    assert accuracy(0, 40, s) == 0.5  # worse than chance counts as chance, never reversed
    assert accuracy(1000, 1000, s) == s.accuracy_cap
    # three agreeing verifiers of accuracy 0.85 after the prior 0.7: accepted at 0.995
    three = posterior(0.7, [(True, 0.85, 1.0)] * 3)
    assert three == pytest.approx(1 / (1 + (0.3 / 0.7) * (0.15 / 0.85) ** 3))
    assert three >= s.quality_accept > posterior(0.7, [(True, 0.85, 1.0)] * 2)
    # a vote of weight 0 (a blocked worker) or of a worker at chance changes nothing
    assert posterior(0.7, [(False, 0.9, 0.0), (False, 0.5, 1.0)]) == pytest.approx(0.7)


def test_served_and_original_frames_round_trip() -> None:
    from synsetforge.boxes.geometry import check_served, to_original, to_served

    served, orig = (320, 240), (640, 480)  # the image is served at half size
    assert to_original([10, 20, 99, 119], served, orig) == (20, 40, 199, 239)  # pixels 10..99 -> 20..199
    assert to_served((20, 40, 199, 239), served, orig) == [10.0, 20.0, 99.0, 119.0]
    assert to_original([0, 0, 319, 239], served, orig) == (0, 0, 639, 479)  # the whole image
    assert to_served((5, 6, 7, 8), orig, orig) == [5, 6, 7, 8]  # full size: integers, unchanged
    check_served([0, 0, 319, 239], 320, 240, 2.0)
    for bad in ([0, 0, 320, 239], [3, 0, 3, 239], [5, 5, 4, 9], [0, 0, float("nan"), 9], [True, 0, 9, 9]):
        with pytest.raises(InputError):
            check_served(bad, 320, 240, 2.0)
