"""The localization baseline: boxes follow the augmentation's affine maps, a box head trained on a tiny
release of boxed figures beats a fixed centre box, `predict` writes (label, box) guesses the benchmark's
own parser scores, and networks without a box head still load."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from _training_fixtures import SHAPES_A, figure_release
from synsetforge.benchmark.challenge import (
    ChallengeInfo,
    ChallengeSettings,
    anonymous_test_images,
    create_challenge,
)
from synsetforge.benchmark.metrics import box_iou
from synsetforge.benchmark.scoring import load_context, parse_file
from synsetforge.benchmark.worker import drain
from synsetforge.candidates.sources.synthetic import SHAPES, encode
from synsetforge.errors import InputError
from synsetforge.releases import create_release, get_release
from synsetforge.releases.manifest import iter_items
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.store.hashes import phash_to_db
from synsetforge.training.augment import AugmentSpec, crop_params, train_transform
from synsetforge.training.boxgeom import SquareFit, augment_boxes
from synsetforge.training.checkpoint import MODEL, load_model_file
from synsetforge.training.config import TrainConfig
from synsetforge.training.data import open_release
from synsetforge.training.decode import decode
from synsetforge.training.localize import centre_boxes, split_boxes, typical_box_share
from synsetforge.training.predict import image_sizes, predict
from synsetforge.training.train import TrainResult, train

W, H = 60, 44  # not square: the pad fit letterboxes, so the frames really differ
_keys = itertools.count(1)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on the 2 shared cores of CI, two threads ran these tiny batches 10-20x slower."""
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("synsetforge.training.train.cpu_threads", lambda: 1)
        mp.setattr("synsetforge.training.predict.cpu_threads", lambda: 1)
        yield
    torch.set_num_threads(before)


def render(figure: str, rng: np.random.Generator, instances: int) -> tuple[bytes, list[list[int]]]:
    """A W x H JPEG with `instances` figures of one kind at random places and sizes, and their boxes
    (inclusive pixel corners of the drawn polygon)."""
    image = Image.new("RGB", (W, H), tuple(int(v) for v in rng.integers(170, 256, 3)))
    draw = ImageDraw.Draw(image)
    boxes = []
    for k in range(instances):
        pts = SHAPES[figure](rng)
        theta = rng.uniform(0, 2 * np.pi)
        pts = pts @ np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]).T
        pts = pts - pts.min(axis=0)
        side = rng.uniform(0.35, 0.6) * H * (0.7 if k else 1.0)
        pts = pts / max(float(pts.max()), 1e-9) * side
        pts = pts + rng.uniform(0, 1, 2) * (np.array([W - 1, H - 1]) - pts.max(axis=0))
        draw.polygon(
            [(float(x), float(y)) for x, y in pts], fill=tuple(int(v) for v in rng.integers(0, 90, 3))
        )
        lo, hi = np.floor(pts.min(axis=0)), np.ceil(pts.max(axis=0))
        boxes.append([int(lo[0]), int(lo[1]), min(W - 1, int(hi[0])), min(H - 1, int(hi[1]))])
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-8, 9, (H, W, 3))
    return encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), 90), boxes


def add_boxed_figures(
    project: Project, counts: Mapping[str, int], seed: int = 0, *, as_truth: bool = False
) -> None:
    """Accepted candidates of drawn figures, each with its true boxes as trusted ("synthetic") boxes (or,
    `as_truth`, only as the source's ground truth); one image in five shows two instances."""
    project.add_synsets(list(counts))
    bits = random.Random(seed)
    with project.session() as s:
        source = schema.Source(name=f"boxed-{seed}-{next(_keys)}", kind="synthetic", config={})
        s.add(source)
        s.flush()
        for synset, n in counts.items():
            for rank in range(1, n + 1):
                rng = np.random.default_rng([seed, rank, int(synset[1:])])
                data, boxes = render(synset, rng, 2 if rank % 5 == 0 else 1)
                key = project.blobs.put(data)
                image = schema.Image(sha256=key, blob=key, width=W, height=H, orig_width=W, orig_height=H,
                                     orig_bytes=len(data), orig_format="JPEG",
                                     phash=phash_to_db(bits.getrandbits(64)))  # fmt: skip
                s.add(image)
                s.flush()
                cand = schema.Candidate(synset_id=synset, source_id=source.id, key=f"box{next(_keys)}",
                                        url=f"synthetic://{seed}/{synset}/{rank}", image_id=image.id,
                                        query=synset, rank=rank, license="CC0-1.0", status="stored",
                                        decision="accepted", confidence=1.0)  # fmt: skip
                s.add(cand)
                s.flush()
                if as_truth:
                    s.add(schema.GroundTruth(candidate_id=cand.id, positive=rank != 3, true_synset=synset,
                                             boxes=boxes if rank != 3 else []))  # fmt: skip
                    continue
                for x1, y1, x2, y2 in boxes:
                    s.add(schema.BoxRow(candidate_id=cand.id, x1=x1, y1=y1, x2=x2, y2=y2, origin="synthetic",
                                        status="good", confidence=1.0))  # fmt: skip


def config(epochs: int, **kw: object) -> TrainConfig:
    """The demo network at 32 px with flips and crops (no rotation: its enclosing boxes are loose targets)."""
    settings = {"image_size": 32, "batch_size": 16, "lr": 0.1, "rotate": 0.0, "crop_scale": (0.7, 1.0)}
    return TrainConfig.for_arch("small", **{**settings, "epochs": epochs, "boxes": True, **kw})


@dataclass
class World:
    project: Project
    root: Path
    run: TrainResult


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("localize")
    project = Project.init(root / "proj", db=None)
    add_boxed_figures(project, {c: 44 for c in SHAPES_A})
    create_release(
        project, "r", synsets=list(SHAPES_A), split=SplitSpec(val=0.25, test=0.2), phash_distance=-1
    )
    run = train(project, "r", config(14), out=root / "run", workers=0)
    yield World(project, root, run)
    project.close()


# -- geometry -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_the_square_fit_places_a_box_where_decoding_puts_its_pixels(fit: str) -> None:
    image = Image.new("RGB", (W, H), (0, 0, 0))
    box = (13, 9, 40, 30)
    ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255))
    side = 48
    decoded = decode(encode(image, 95), side, fit).astype(np.float32).mean(axis=2)
    placed = SquareFit.of(W, H, side, fit)
    x1, y1, x2, y2 = (placed.to_decoded(box) + 1) * side / 2  # continuous pixel edges in the square
    ys, xs = np.nonzero(decoded > 128)
    assert xs.min() >= np.floor(x1) - 1 and xs.max() <= np.ceil(x2) and ys.min() >= np.floor(y1) - 1
    assert ys.max() <= np.ceil(y2)
    assert xs.min() <= x1 + 1 and xs.max() >= x2 - 2 and ys.min() <= y1 + 1 and ys.max() >= y2 - 2  # tight
    back = placed.from_decoded(placed.to_decoded(box), W, H)
    assert np.abs(back - np.asarray(box)).max() <= 1


@pytest.mark.parametrize("rotate", [0.0, 180.0])
def test_an_augmented_box_still_covers_the_drawn_rectangle(rotate: float) -> None:
    side, out = 48, 40
    batch = np.zeros((16, side, side, 3), dtype=np.uint8)
    boxes = np.zeros((16, 4), dtype=np.float32)
    rng = np.random.default_rng(1)
    for i in range(16):
        x1, y1 = rng.integers(0, side // 2, 2)
        x2, y2 = x1 + rng.integers(8, side // 2), y1 + rng.integers(8, side // 2)
        batch[i, y1 : y2 + 1, x1 : x2 + 1] = 255
        boxes[i] = SquareFit.of(side, side, side, "stretch").to_decoded((x1, y1, x2, y2))
    spec = AugmentSpec(scale=(0.3, 1.0), flip=True, rotate=rotate)
    theta = crop_params(16, spec, torch.Generator().manual_seed(3))
    images = train_transform(torch.from_numpy(batch), theta, out, "imagenet").mean(dim=1)  # [B, out, out]
    unit, weight = augment_boxes(theta, torch.from_numpy(boxes))
    valid = (unit[:, 2] > unit[:, 0]) & (unit[:, 3] > unit[:, 1])
    assert ((weight > 0) <= valid).all()
    if rotate == 0:
        assert torch.equal(weight > 0, valid)  # unrotated boxes are exact: every visible one counts
    checked = 0
    for i in range(16):
        ys, xs = np.nonzero(images[i].numpy() > 1.0)  # well inside the white rectangle (black is < -1.7)
        if not valid[i]:
            assert len(xs) == 0  # a box that left the crop takes no pixel along
            continue
        bx1, by1, bx2, by2 = (unit[i].numpy() * out).tolist()
        assert (
            xs.min() >= bx1 - 1
            and xs.max() + 1 <= bx2 + 1
            and ys.min() >= by1 - 1
            and ys.max() + 1 <= by2 + 1
        )
        if rotate == 0:  # no rotation: the box is the rectangle's, not just around it
            drawn = np.asarray([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
            assert box_iou(drawn, np.asarray([bx1, by1, bx2 - 1, by2 - 1])) > 0.7
        checked += 1
    assert checked >= 10


# -- training ----------------------------------------------------------------------------------------------
def test_the_box_head_beats_a_fixed_centre_box(world: World) -> None:
    history = world.run.history
    last = history[-1]["val"]
    assert last["n_boxed"] == world.run.val_images > 30
    first_loc = history[0]["val"]["localization_error"]
    assert last["localization_error"] < first_loc
    # the same val images with a centred box of the median train-box size and the *true* label
    data = open_release(world.project, "r", splits=("train", "val"))
    share = typical_box_share(split_boxes(world.project, data, data.split("train")))
    val = split_boxes(world.project, data, data.split("val"))
    centre = centre_boxes(val.widths, val.heights, share)
    centre_hit = np.mean(
        [max(float(box_iou(centre[r], np.asarray(b, dtype=np.float64))) for b in val.boxes[r]) >= 0.5
         for r in range(len(val.boxes))]
    )  # fmt: skip
    assert 1 - last["localization_error"] > centre_hit + 0.1, (last, centre_hit)
    meta, state, _ = load_model_file(world.run.run_dir)
    assert meta.boxes and any(k.startswith("box_head.") for k in state)
    saved = json.loads((world.run.run_dir / "run.json").read_text())
    assert saved["config"]["boxes"] is True and "localization_error" in saved["history"][-1]["val"]


def test_boxes_on_a_release_without_boxes_is_one_line(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        figure_release(project, "plain", {c: 6 for c in SHAPES_A}, seed=9, val=0.3)
        with pytest.raises(InputError, match="release 'plain' has no boxes on its train images"):
            train(project, "plain", config(1), out=tmp_path / "run", workers=0)


# -- predict -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def challenge(world: World) -> ChallengeInfo:
    return create_challenge(
        world.project, "loc", "r", classes=list(SHAPES_A), settings=ChallengeSettings(task="localization")
    )


def test_predict_writes_label_box_guesses_that_the_benchmark_scores(
    world: World, challenge: ChallengeInfo
) -> None:
    info = challenge
    head = predict(world.project, world.run.run_dir, "loc", workers=0, submit_as=("cnn-loc", "run"))
    centre = predict(world.project, world.run.run_dir, "loc", workers=0, boxes="centre",
                     submit_as=("centre-box", "run"))  # fmt: skip
    assert head.box_source == "head" and centre.box_source == "centre"
    assert head.val_localization_error is not None and centre.val_localization_error is not None
    assert head.val_localization_error < centre.val_localization_error
    ctx = load_context(world.project, "loc")
    sub, fmt = parse_file(head.file, ctx)  # the benchmark's own parser
    assert fmt == "ilsvrc" and sub.boxes is not None and sub.labels.shape == (info.n_test, 5)
    assert (sub.labels[:, :4] >= 0).all() and (sub.labels[:, 4] == -1).all()  # 4 classes: 4 guesses
    boxes = sub.boxes[:, :4]
    widths, heights = image_sizes(world.project, _test_image_ids(world, info.id))
    assert (boxes[..., 2] <= (widths - 1)[:, None]).all() and (boxes[..., 3] <= (heights - 1)[:, None]).all()
    assert (boxes[..., :2] >= 0).all() and (boxes[..., 2:] >= boxes[..., :2]).all()
    assert (boxes[:, 1:] == boxes[:, :1]).all()  # one class-agnostic box per image
    assert [o.status for o in drain(world.project)] == ["done", "done"]
    scores = {}
    with world.project.session() as s:
        for pred in (head, centre):
            row = s.get(schema.Submission, pred.submission_id)
            assert row is not None and row.status == "scored", row and row.error
            scores[pred.box_source] = row.public_scores["metrics"]["localization_error"]["value"]
    assert scores["head"] < scores["centre"]


def _test_image_ids(world: World, challenge_id: int) -> list[int]:
    return [i for _, i in anonymous_test_images(world.project, challenge_id)]


def test_a_network_without_a_box_head_still_loads_and_guesses_whole_images(
    world: World, challenge: ChallengeInfo
) -> None:
    old = world.root / "old-run"
    old.mkdir()
    data = torch.load(world.run.run_dir / MODEL, weights_only=True)
    data["model"] = {k: v for k, v in data["model"].items() if not k.startswith("box_head.")}
    del data["meta"]["boxes"]  # a model.pt written before box heads existed
    data["config"].pop("boxes")
    data["config"].pop("box_weight")
    torch.save(data, old / MODEL)
    meta, _, _ = load_model_file(old)
    assert meta.boxes is False
    result = predict(world.project, old, "loc", workers=0)
    assert result.box_source == "whole"
    first = result.file.decode().splitlines()[0].split()
    assert first[1:5] == ["0", "0", str(W - 1), str(H - 1)]
    with pytest.raises(InputError, match="no box head"):
        predict(world.project, old, "loc", workers=0, boxes="head")


def test_a_localization_challenge_can_leave_out_test_images_without_boxes(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        add_boxed_figures(project, {c: 10 for c in SHAPES_A[:2]})
        with project.session() as s:  # take the boxes off every third image
            cands = s.query(schema.Candidate).order_by(schema.Candidate.id).all()
            unboxed = {c.id for c in cands[::3]}
            s.query(schema.BoxRow).filter(schema.BoxRow.candidate_id.in_(unboxed)).delete()
        create_release(
            project, "r", synsets=list(SHAPES_A[:2]), split=SplitSpec(val=0.2, test=0.5), phash_distance=-1
        )
        localization = ChallengeSettings(task="localization")
        with pytest.raises(InputError, match=r"needs a box on every test image.*--boxed-only"):
            create_challenge(project, "loc", "r", classes=list(SHAPES_A[:2]), settings=localization)
        info = create_challenge(
            project, "loc", "r", classes=list(SHAPES_A[:2]), settings=localization, boxed_only=True
        )
        left_out = info.stats["dropped_test_images"]["without_boxes"]
        tests = list(iter_items(project.blobs, get_release(project, "r").manifest_sha256, "test"))
        assert left_out == sum(1 for it in tests if not it.boxes) > 0
        assert info.n_test == sum(1 for it in tests if it.boxes)
        ctx = load_context(project, "loc")
        assert ctx.truth.box_offsets is not None and (np.diff(ctx.truth.box_offsets) > 0).all()


def test_the_demo_stage_boxes_the_figures_and_puts_both_baselines_on_a_localization_board(
    tmp_path: Path,
) -> None:
    import io

    from rich.console import Console

    from synsetforge.training.localize_demo import CENTRE_TEAM, CNN_TEAM, ensure_boxes, run_localization_demo

    with Project.init(tmp_path / "p", db=None) as project:
        add_boxed_figures(project, {c: 16 for c in SHAPES_A}, seed=5, as_truth=True)  # rank 3: a false accept
        buf = io.StringIO()
        name = run_localization_demo(
            project, Console(file=buf, width=200), classes=list(SHAPES_A), cnn_run=None, epochs=2, workers=0
        )
        out = " ".join(buf.getvalue().split())
        assert name is not None and "8. Localization" in out
        assert "60 got their ground-truth boxes copied as origin 'synthetic'" in out and "4 have none" in out
        assert CNN_TEAM in out and CENTRE_TEAM in out and "localization error" in out and "nan" not in out
        again = ensure_boxes(project, list(SHAPES_A))  # a second run copies nothing
        assert again.from_truth == 0 and again.by_origin == {"synthetic": 60} and again.without == 4
        with project.session() as s:
            rows = s.query(schema.Submission).all()
            assert len(rows) == 2 and all(r.status == "scored" for r in rows)
