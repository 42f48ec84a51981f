"""Box simulation: multi-instance synthetic truth, the simulated crowd's rates, the simple protocols, and a
small run over HTTP whose report is checked against ground truth recomputed here."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from synsetforge.boxes.crowdsim import CrowdModel, SimulatedBoxCrowd, make_crowd
from synsetforge.boxes.protocols import ImageTruth, median_drawers, one_drawer
from synsetforge.boxes.simulate import add_synthetic_box_images, simulate_boxes
from synsetforge.candidates.collect import CollectOptions, collect
from synsetforge.candidates.sources import synthetic as syn
from synsetforge.cli import app
from synsetforge.errors import InputError
from synsetforge.store import Project, schema

SQUARE, TRIANGLE, STAR, CIRCLE = "n13878634", "n13879320", "n13881644", "n13873502"


def my_iou(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float:
    """Inclusive-corner IoU, written out again so the report is checked by independent code."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def truth_images(n: int, seed: int = 0) -> list[ImageTruth]:
    out = []
    for rank in range(1, n + 1):
        scene = syn.plan(seed, syn.ROOT, rank, syn.Settings(precision=1.0))
        if scene.figure is not None:
            boxes = tuple((float(b.xmin), float(b.ymin), float(b.xmax), float(b.ymax)) for b in scene.boxes)
            out.append(ImageTruth(rank, (scene.width, scene.height), boxes))
    return out


# -- multi-instance synthetic truth ----------------------------------------------------------------------


def test_multi_instance_boxes_are_inside_apart_and_match_the_drawn_figures() -> None:
    src = syn.SyntheticSource(seed=21, precision=1.0, multi=1.0)
    refs = [r for sid in (SQUARE, TRIANGLE, STAR, CIRCLE) for r in src.refs([sid], 8)]
    assert sum(len(r.boxes) >= 2 for r in refs) >= 0.9 * len(refs)
    assert {len(r.boxes) for r in refs} >= {2, 3}
    for ref in refs:
        scene = syn.scene_of(ref.url)
        pixels = np.asarray(syn.draw_scene(scene, clean=True))
        fills = [np.all(pixels == np.array(inst.fill, dtype=np.uint8), axis=2) for inst in scene.instances]
        inside_any = np.zeros(pixels.shape[:2], dtype=bool)
        for box, same in zip(ref.boxes, fills, strict=True):
            assert 0 <= box.xmin < box.xmax < scene.width and 0 <= box.ymin < box.ymax < scene.height
            inside = np.zeros_like(inside_any)
            inside[box.ymin : box.ymax + 1, box.xmin : box.xmax + 1] = True
            inside_any |= inside
            assert same.sum() > 0 and not (same & ~inside).any()  # its colour only inside its box
        for i, (box, same) in enumerate(zip(ref.boxes, fills, strict=True)):
            mask = syn.figure_mask(scene, i)  # the instance's outline as drawn: the box is tight around it
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (box.xmin, box.ymin, box.xmax, box.ymax)
            assert same.sum() >= 0.5 * mask.sum()  # mostly visible, not hidden by the others
        for a, b in combinations(ref.boxes, 2):
            w = min(a.xmax, b.xmax) - max(a.xmin, b.xmin) + 1
            h = min(a.ymax, b.ymax) - max(a.ymin, b.ymin) + 1
            smaller = min(
                (a.xmax - a.xmin + 1) * (a.ymax - a.ymin + 1), (b.xmax - b.xmin + 1) * (b.ymax - b.ymin + 1)
            )
            assert max(w, 0) * max(h, 0) <= syn.MAX_OVERLAP * smaller
        assert not any((same & ~inside_any).any() for same in fills)


def test_multi_setting_travels_in_the_url_and_zero_keeps_one_instance() -> None:
    url = syn.make_url(3, SQUARE, 5, syn.Settings(multi=0.7))
    assert "multi=0.7" in url and syn.parse_url(url)[3].multi == 0.7
    single = syn.SyntheticSource(seed=3, precision=1.0, multi=0.0)
    assert all(len(r.boxes) == 1 for r in single.refs([SQUARE, STAR], 30))
    share = np.mean(
        [len(r.boxes) > 1 for r in syn.SyntheticSource(seed=3, precision=1.0).refs([syn.ROOT], 400)]
    )
    assert 0.24 <= share <= 0.36  # the default 30%
    with pytest.raises(InputError):
        syn.Settings(multi=1.5)


def test_collect_records_one_truth_box_per_instance(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([STAR])
        src = syn.SyntheticSource(seed=4, precision=1.0, multi=0.5, per_synset=24)
        collect(p, src, [STAR], CollectOptions(engine="inline"), kind="synthetic")
        refs = {r.key: r for r in src.refs([STAR])}
        with p.session() as s:
            rows = s.execute(
                select(schema.Candidate.key, schema.GroundTruth.boxes).join(
                    schema.GroundTruth, schema.GroundTruth.candidate_id == schema.Candidate.id
                )
            ).all()
    assert rows and any(len(boxes) > 1 for _, boxes in rows)
    for key, boxes in rows:
        assert boxes == [[b.xmin, b.ymin, b.xmax, b.ymax] for b in refs[key].boxes]


# -- the simulated crowd ---------------------------------------------------------------------------------


def test_crowd_is_no_easier_than_the_issue_says() -> None:
    model = CrowdModel()
    assert (model.jitter, model.sloppy, model.miss, model.accuracy, model.spammers) == (
        0.05,
        0.15,
        0.1,
        0.85,
        0.1,
    )
    workers = make_crowd(model, seed=2)
    assert sum(w.kind != "honest" for w in workers) == 4
    assert abs(np.mean([w.accuracy for w in workers if w.kind == "honest"]) - 0.85) < 0.05
    crowd = SimulatedBoxCrowd(model, seed=2)
    honest = next(w for w in crowd.workers if w.kind == "honest")
    images = truth_images(150)
    sloppy = missed = drawn = 0
    errors: list[float] = []
    for _ in range(8):
        for image in images:
            box = crowd.draw(honest, image.boxes, [], image.size)
            if box is None:
                missed += 1
                continue
            drawn += 1
            best = max(my_iou(box, t) for t in image.boxes)
            sloppy += best < 0.5
            if best >= 0.5:
                t = max(image.boxes, key=lambda t: my_iou(box, t))
                w = t[2] - t[0] + 1
                if t[0] > 0 and t[2] < image.size[0] - 1:  # not clipped by the image edge
                    errors.append((box[0] - t[0]) / w)
    n = 8 * len(images)
    assert abs(missed / n - model.miss) < 0.025  # nothing boxed yet: a miss is "none left"
    assert abs(sloppy / drawn - model.sloppy) < 0.03
    assert 0.04 < float(np.std(errors)) < 0.06
    # with every instance boxed, an honest drawer says so; a spammer ticks anything
    assert crowd.draw(honest, images[0].boxes, list(images[0].boxes), images[0].size) is None
    yes_man = next(w for w in crowd.workers if w.kind == "always_yes")
    assert all(crowd.judge_box(yes_man, (0, 0, 5, 5), images[0].boxes) for _ in range(20))
    right = [crowd.verify(honest, True) for _ in range(4000)]
    assert abs(np.mean(right) - honest.accuracy) < 0.03


def test_simple_protocols_are_scored_like_the_truth_says() -> None:
    images = truth_images(120)
    instances = sum(len(im.boxes) for im in images)
    perfect = CrowdModel(jitter=0.0, sloppy=0.0, miss=0.0, spammers=0.0, accuracy=0.9)
    one = one_drawer(images, SimulatedBoxCrowd(perfect, 1))
    assert one.coverage == one.iou70_share == 1.0 and one.score.boxes == instances
    assert one.draw_tasks == instances + len(images)  # the last drawer of each image says none left
    med = median_drawers(images, SimulatedBoxCrowd(perfect, 1), drawers=3)
    assert med.coverage == 1.0 and med.draw_tasks == 3 * (instances + len(images))

    noisy = [
        one_drawer(images, SimulatedBoxCrowd(CrowdModel(), 5)),
        median_drawers(images, SimulatedBoxCrowd(CrowdModel(), 5)),
    ]
    for result in noisy:
        kept = result.kept
        assert len(kept) == len(images)
        boxes = [b for per in kept for b in per]
        best = [
            max(my_iou(b, t) for t in im.boxes) for im, per in zip(images, kept, strict=True) for b in per
        ]
        covered = sum(
            all(any(my_iou(t, b) >= 0.5 for b in per) for t in im.boxes)
            for im, per in zip(images, kept, strict=True)
        )
        assert result.score.boxes == len(boxes)
        assert result.coverage == pytest.approx(covered / len(images))
        assert result.iou70_share == pytest.approx(np.mean([x >= 0.7 for x in best]))
        assert result.iou50_share == pytest.approx(np.mean([x >= 0.5 for x in best]))
        assert result.draw_tasks_per_box == pytest.approx(result.draw_tasks / len(boxes))
    one_noisy, med_noisy = noisy
    assert one_noisy.iou70_share < 0.85 and one_noisy.coverage < 0.9  # the crowd's errors show unverified
    assert med_noisy.iou50_share > one_noisy.iou50_share and med_noisy.draw_tasks > 2 * one_noisy.draw_tasks


# -- over HTTP -------------------------------------------------------------------------------------------


def test_simulation_over_http_reports_what_the_store_holds(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p") as p:
        p.add_synsets([SQUARE, STAR])
        assert add_synthetic_box_images(p, [SQUARE, STAR], 7, seed=3) == 14
        report = simulate_boxes(p, CrowdModel(workers=10), seed=3, gold_per_synset=2)
        truth: dict[int, list[list[int]]] = {}
        with p.session() as s:
            c, gt, bi, b, t = (
                schema.Candidate,
                schema.GroundTruth,
                schema.BoxImage,
                schema.BoxRow,
                schema.Task,
            )
            for cid, boxes in s.execute(select(c.id, gt.boxes).join(gt, gt.candidate_id == c.id)):
                truth[int(cid)] = boxes
            images = sorted(int(x) for x in s.scalars(select(bi.candidate_id).where(bi.stage != "gold")))
            stages = [str(x) for x in s.scalars(select(bi.stage).where(bi.stage != "gold"))]
            good: dict[int, list[tuple[int, int, int, int]]] = {cid: [] for cid in images}
            for cid, x1, y1, x2, y2 in s.execute(
                select(b.candidate_id, b.x1, b.y1, b.x2, b.y2).where(b.origin == "crowd", b.status == "good")
            ):
                good[int(cid)].append((x1, y1, x2, y2))
            draw_tasks = s.scalar(select(func.count()).where(t.kind == "draw", t.status == "submitted"))
            v = schema.BoxVote
            coverage_votes = s.scalar(
                select(func.count()).select_from(v).join(t, t.id == v.task_id)
                .where(t.kind == "coverage", v.is_gold.is_(False))
            )  # fmt: skip
            gold_votes = s.scalar(select(func.count()).where(v.is_gold.is_(True), v.kind != "draw"))
            quality_votes = s.scalar(
                select(func.count()).select_from(v).join(b, b.id == v.box_id)
                .where(v.kind == "quality", v.is_gold.is_(False), b.status != "proposed")
            )  # fmt: skip
    assert report.run.stopped == "no work"
    # an image can stay open when every worker left has already said "none left" on it in this round
    assert report.engine.unfinished == sum(stage not in ("done", "given_up") for stage in stages)
    assert len(images) == 14 - 4  # 2 gold images per synset leave the pipeline
    e = report.engine
    boxes = [(cid, box) for cid in images for box in good[cid]]
    best = [max(my_iou(box, tb) for tb in truth[cid]) for cid, box in boxes]
    covered = sum(
        all(any(my_iou(tb, box) >= 0.5 for box in good[cid]) for tb in truth[cid]) for cid in images
    )
    assert e.score.images == len(images) and e.score.boxes == len(boxes) > 0
    assert e.score.covered == covered and e.score.iou70 == sum(x >= 0.7 for x in best)
    assert e.score.iou50 == sum(x >= 0.5 for x in best)
    assert e.draw_tasks + e.gold_draw_tasks == draw_tasks == report.run.tasks["draw"]
    assert e.score.instances == sum(len(truth[cid]) for cid in images)
    assert (e.coverage_votes, e.quality_votes) == (coverage_votes, quality_votes)
    assert e.gold_votes == gold_votes > 0
    assert e.votes_per_box == pytest.approx((coverage_votes + quality_votes) / len(boxes))
    # the simple protocols ran on the same images
    assert [r.score.images for r in report.baselines] == [len(images)] * 2
    assert [r.score.instances for r in report.baselines] == [e.score.instances] * 2
    as_json = report.as_dict()
    assert as_json["protocols"][0]["covered"] == covered and as_json["crowd"]["miss"] == 0.1


def test_cli_simulate_json_and_refusals(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "p"
    with Project.init(root) as p:
        p.add_synsets([SQUARE])
    r = runner.invoke(app, ["boxes", "simulate", "-p", str(root)])
    assert r.exit_code != 0 and "no accepted images with ground-truth boxes" in str(r.exception)
    r = runner.invoke(app, ["boxes", "simulate", "-p", str(root), "--spammers", "2"])
    assert r.exit_code != 0 and "spammers must be in" in str(r.exception)
    r = runner.invoke(
        app,
        ["boxes", "simulate", "-p", str(root), "--add-synthetic", "6", "--workers", "8", "--gold", "2",
         "--median-drawers", "3", "--median-drawers", "5", "--max-tasks", "30", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    names = [row["protocol"] for row in out["protocols"]]
    assert names[0].startswith("engine") and names[2:] == [
        "3 drawers per instance, median box",
        "5 drawers per instance, median box",
    ]
    assert out["protocols"][0]["images"] == 4 and out["crowd"]["workers"] == 8
    assert out["run"]["stopped"] == "max tasks" and sum(out["run"]["tasks"].values()) == 30


def test_report_table_shows_each_protocol() -> None:
    from rich.console import Console

    from synsetforge.boxes.cli_simulate import print_report
    from synsetforge.boxes.simulate import BoxRun, BoxSimReport

    images = truth_images(40)
    one = one_drawer(images, SimulatedBoxCrowd(CrowdModel(), 0))
    med = median_drawers(images, SimulatedBoxCrowd(CrowdModel(), 0))
    run = BoxRun(40, {"draw": 5, "quality": 7, "coverage": 3}, 2, 40, 1.5, "no work")
    report = BoxSimReport(CrowdModel(), 0, run, one, (med,), gold="box gold: 2 images")
    out = Console(record=True, width=250)
    print_report(report, out)
    text = out.export_text()
    assert "15 box tasks (5 draw, 7 quality, 3 coverage)" in text and "box gold: 2 images" in text
    assert "10% spammers" in text and "mean accuracy 0.85" in text
    for r in (one, med):
        row = next(line for line in text.splitlines() if line.strip("│ ").startswith(r.protocol))
        assert (
            f"{r.coverage:.1%}" in row
            and f"{r.iou70_share:.1%}" in row
            and f"{r.draw_tasks_per_box:.2f}" in row
        )
