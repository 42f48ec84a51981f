"""The classical baseline: numpy HOG and dense SIFT against loop-by-loop references, colour invariance of the
SIFT features, the bag-of-words codebook, and full runs that train on the release, beat chance on val and
test, and write a file the worker accepts."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image, ImageDraw
from sqlalchemy import select
from typer.testing import CliRunner

from _challenge_fixtures import World, build_world, make_challenge
from synsetforge.baselines.bow import Codebook, fit_codebook
from synsetforge.baselines.classical import (
    bow_features,
    codebook_from_train,
    hog_colour_features,
    load_images,
    run_classical_baseline,
    train_linear,
)
from synsetforge.baselines.cli import baseline_app
from synsetforge.baselines.features import colour_histogram, dense_sift, hog, oriented_gradients
from synsetforge.benchmark.scoring import load_context, score_file
from synsetforge.benchmark.standings import team_submissions
from synsetforge.benchmark.worker import drain
from synsetforge.errors import InputError
from synsetforge.store import schema


def hog_reference(
    img: np.ndarray, cell: int = 8, bins: int = 9, block: int = 2, eps: float = 1e-6
) -> np.ndarray:
    """Dalal-Triggs HOG written pixel by pixel, as the textbook states it."""
    h, w = img.shape
    ny, nx = h // cell, w // cell
    hist = np.zeros((ny, nx, bins))
    width = 180.0 / bins
    for y in range(ny * cell):
        for x in range(nx * cell):
            dx = img[y, x + 1] - img[y, x - 1] if 0 < x < nx * cell - 1 else 0.0
            dy = img[y + 1, x] - img[y - 1, x] if 0 < y < ny * cell - 1 else 0.0
            mag = math.hypot(dx, dy)
            ang = math.degrees(math.atan2(dy, dx)) % 180.0
            pos = ang / width - 0.5
            lo = math.floor(pos)
            frac = pos - lo
            hist[y // cell, x // cell, lo % bins] += mag * (1 - frac)
            hist[y // cell, x // cell, (lo + 1) % bins] += mag * frac
    out = []
    for by in range(ny - block + 1):
        for bx in range(nx - block + 1):
            v = hist[by : by + block, bx : bx + block].reshape(-1)
            v = v / math.sqrt(float((v**2).sum()) + eps**2)
            v = np.minimum(v, 0.2)
            v = v / math.sqrt(float((v**2).sum()) + eps**2)
            out.append(v)
    return np.concatenate(out)


def test_hog_matches_the_pixel_by_pixel_reference() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 26, 35))  # not multiples of the cell size: the rest is cropped
    got = hog(images)
    assert got.shape == (3, 2 * 3 * 4 * 9)
    for i in range(3):
        np.testing.assert_allclose(got[i], hog_reference(images[i][:24, :32]), atol=2e-6)
    np.testing.assert_allclose(hog(images[0]), got[:1])


def test_hog_orientation_and_contrast_invariance() -> None:
    vertical_edge = np.zeros((16, 16))
    vertical_edge[:, 8:] = 1.0  # horizontal gradient: 0 degrees, split between the 10 and 170 degree bins
    cells = hog(vertical_edge, block=1, clip=1.0).reshape(2, 2, 9)
    assert cells[0, 0, 0] == pytest.approx(cells[0, 0, 8]) and cells[0, 0, 0] > 0.6
    assert cells[0, 0, 1:8].sum() == pytest.approx(0.0)
    horizontal_edge = vertical_edge.T.copy()  # vertical gradient: 90 degrees, the centre of bin 4
    cells = hog(horizontal_edge, block=1, clip=1.0).reshape(2, 2, 9)
    assert cells[0, 0, 4] == pytest.approx(1.0) and np.delete(cells[0, 0], 4).sum() == pytest.approx(0.0)
    img = np.random.default_rng(1).random((32, 32))
    np.testing.assert_allclose(hog(img), hog(0.5 * img + 0.2), atol=1e-6)  # block normalisation


def test_colour_histogram_counts_pixels() -> None:
    img = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    img[0, :2] = (255, 0, 0)  # half red, half black
    img[1] = (100, 200, 30)  # levels 1, 3, 0 -> bin (1*4 + 3)*4 + 0 = 28
    h = colour_histogram(img)
    assert h.shape == (2, 64)
    assert h[0, (3 * 4 + 0) * 4 + 0] == 0.5 and h[0, 0] == 0.5
    assert h[1, 28] == 1.0 and h.sum(axis=1).tolist() == [1.0, 1.0]


def test_feature_input_errors() -> None:
    with pytest.raises(InputError, match="too small"):
        hog(np.zeros((10, 10)))
    with pytest.raises(InputError, match=r"\[B, H, W\]"):
        hog(np.zeros((1, 2, 16, 16)))
    with pytest.raises(InputError, match=r"\[B, H, W, 3\]"):
        colour_histogram(np.zeros((4, 4)))


def dense_sift_reference(o: np.ndarray, cell: int, step: int, grid: int = 4) -> np.ndarray:
    """Dense SIFT of one image's orientation maps [bins, H, W], patch by patch and cell by cell: each cell
    weighs its pixels with a triangular window 2*cell-1 wide (peak 1/cell), then L2, clip 0.2, L2."""
    _, h, w = o.shape
    tri = np.asarray([min(i + 1, 2 * cell - 1 - i) for i in range(2 * cell - 1)], dtype=float) / cell
    span = (grid + 1) * cell - 1
    out = []
    for y in range(0, h - span + 1, step):
        for x in range(0, w - span + 1, step):
            cells = []
            for a in range(grid):
                for b in range(grid):
                    patch = o[
                        :,
                        y + a * cell : y + a * cell + 2 * cell - 1,
                        x + b * cell : x + b * cell + 2 * cell - 1,
                    ]
                    cells.append((patch * tri[:, None] * tri[None, :]).sum(axis=(1, 2)))
            v = np.concatenate(cells)
            v = v / max(math.sqrt(float((v**2).sum())), 1e-6)
            v = np.minimum(v, 0.2)
            out.append(v / max(math.sqrt(float((v**2).sum())), 1e-6))
    return np.stack(out)


def test_dense_sift_matches_the_patch_by_patch_reference() -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((2, 37, 41, 3)) * 255).astype(np.uint8)
    o = oriented_gradients(images).astype(np.float64)
    for cell, step in [(4, 2), (4, 4), (3, 2), (6, 3)]:  # steps that divide the cell and one that does not
        got, centres = dense_sift(images, cell=cell, step=step)
        for i in range(2):
            np.testing.assert_allclose(got[i], dense_sift_reference(o[i], cell, step), atol=1e-6)
        span = 5 * cell - 1
        assert centres[0].tolist() == pytest.approx([span / 2 / 37, span / 2 / 41])
        assert len(centres) == got.shape[1]
    both, centres = dense_sift(images, cell=(4, 6))  # two scales, each every half cell, concatenated
    four, _ = dense_sift(images, cell=4, step=2)
    six, _ = dense_sift(images, cell=6, step=3)
    np.testing.assert_array_equal(both, np.concatenate([four, six], axis=1))
    assert both.shape[2] == 128 and len(centres) == both.shape[1]


def test_oriented_gradients_are_unsigned_and_follow_the_strongest_colour_edge() -> None:
    edge = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    edge[:, :, 4:, 0] = 200  # red step, left to right: horizontal gradient, 0 degrees -> bin 0
    o = oriented_gradients(edge)
    assert o.shape == (1, 8, 8, 8)
    assert o[0, 0, 3, 3] == pytest.approx(200.0) and o[0, 1:, 3, 3].sum() == 0.0
    np.testing.assert_allclose(oriented_gradients(255 - edge), o)  # the dark-to-light step gives the same
    o = oriented_gradients(np.swapaxes(edge, 1, 2))  # vertical gradient: 90 degrees, bin 4 of 8
    assert o[0, 4, 3, 3] == pytest.approx(200.0) and np.delete(o[0, :, 3, 3], 4).sum() == 0.0
    diagonal = np.fromfunction(lambda _, y, x: (x + y) * 10.0, (1, 8, 8))  # 45 degrees: bin 2
    o = oriented_gradients(diagonal)
    assert (
        o[0, 2, 4, 4] == pytest.approx(math.hypot(20, 20), rel=1e-5)
        and np.delete(o[0, :, 4, 4], 2).sum() < 1e-4
    )
    weak = edge.copy()
    weak[..., 1] = np.swapaxes(edge[..., 0], 1, 2) // 4  # a weaker green edge the other way
    o = oriented_gradients(weak)
    assert o[0, 0, 3, 3] == pytest.approx(200.0)  # the colour tensor's main direction: the stronger edge


def _shapes(n_per_class: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """JPEGs of a square, a triangle and a circle in random colours on random backgrounds, anywhere, at any
    size and rotation: a colour histogram or a fixed-grid HOG has nothing to hold on to."""
    rng = np.random.default_rng(seed)
    blobs: list[bytes] = []
    labels: list[int] = []
    for i in range(3 * n_per_class):
        kind = i % 3
        img = Image.new("RGB", (64, 48), tuple(int(v) for v in rng.integers(0, 256, 3)))
        d = ImageDraw.Draw(img)
        r = rng.uniform(8, 18)
        cx, cy = rng.uniform(r, 64 - r), rng.uniform(r, 48 - r)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == 2:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            corners = 4 if kind == 0 else 3
            turn = rng.uniform(0, 2 * math.pi)
            d.polygon(
                [
                    (
                        cx + r * math.cos(turn + 2 * math.pi * k / corners),
                        cy + r * math.sin(turn + 2 * math.pi * k / corners),
                    )
                    for k in range(corners)
                ],
                fill=fill,
            )
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
        labels.append(kind)
    return blobs, np.asarray(labels)


def test_bow_features_ignore_colour_inversion_and_channel_order() -> None:
    blobs, _ = _shapes(4, seed=3)
    rgb, _ = load_images(blobs, 64)
    variants = [255 - rgb, rgb[..., ::-1], rgb[..., [1, 2, 0]]]
    d, _ = dense_sift(rgb, cell=(4, 6))
    for other in variants:
        np.testing.assert_allclose(dense_sift(other, cell=(4, 6))[0], d, atol=1e-6)
    book, _, _ = codebook_from_train(blobs, 64, 20)
    x, sizes = bow_features(blobs, 64, book)
    assert x.shape == (12, 20 * 5) and sizes == [(64, 48)] * 12
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)

    def encoded(images: np.ndarray) -> list[bytes]:
        out = []
        for im in images:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(im)).save(buf, "PNG")  # lossless: the same pixels
            out.append(buf.getvalue())
        return out

    lossless = bow_features(encoded(rgb), 64, book)[0]
    for other in variants:
        np.testing.assert_allclose(
            bow_features(encoded(other), 64, book)[0], lossless, atol=1e-6
        )  # same words
    # the earlier features are not invariant: the colour histogram moves with the colours
    assert not np.allclose(hog_colour_features(255 - rgb), hog_colour_features(rgb))


def test_bow_pipeline_beats_chance_on_shapes_of_random_colour() -> None:
    train, y_train = _shapes(30, seed=1)
    val, y_val = _shapes(15, seed=2)
    book, sampled, patches = codebook_from_train(train, 64, 200)
    assert book.words == 200 and sampled == 90 * math.ceil(patches)
    model = train_linear(bow_features(train, 64, book)[0], y_train, 3, c=1.0, standardise=False)
    top = model.top_k(bow_features(val, 64, book)[0])
    assert top.shape == (45, 3)
    assert (top[:, 0] != y_val).mean() < 0.4  # chance is 2/3


def test_codebook_counts_words_over_the_pyramid() -> None:
    centres = np.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    book = Codebook(centres, np.zeros(2, np.float32), np.eye(2, dtype=np.float32), (1, 2))
    assert book.words == 3 and book.dim == 15
    # one image, four patches: top-left and top-right near word 1, bottom-left near word 2, bottom-right 0
    desc = np.asarray([[[0.9, 0.1], [1.1, -0.1], [0.1, 0.8], [0.05, 0.0]]], dtype=np.float32)
    where = np.asarray([[0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]])
    np.testing.assert_array_equal(book.assign(desc[0]), [1, 1, 2, 0])
    x = book.encode(desc, where)[0]
    whole = np.sqrt([0.25, 0.5, 0.25])  # Hellinger map of the word fractions
    quarters = np.zeros((4, 3))
    quarters[[0, 1, 2, 3], [1, 1, 2, 0]] = 1.0  # each quarter holds one patch
    expected = np.concatenate([whole, quarters.ravel() / 2])  # level 1 weighs as much as level 0
    np.testing.assert_allclose(x, expected / np.linalg.norm(expected), rtol=1e-6)
    # the PCA: assignment happens after centring and projecting
    shifted = Codebook(centres, np.asarray([5.0, 5.0], np.float32), np.eye(2, dtype=np.float32))
    np.testing.assert_array_equal(shifted.assign(desc[0] + 5.0), [1, 1, 2, 0])


def test_fit_codebook_words_stay_inside_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(5, 16)) * 10
    x = np.repeat(truth, 200, axis=0) + rng.normal(size=(1000, 16)) * 0.1
    book = fit_codebook(x, 20, dims=8, seed=0)
    assert book.words == 20 and book.centres.shape == (20, 8) and book.basis.shape == (16, 8)
    words = book.assign(x).reshape(5, 200)
    owners = [{int(w) for w in row} for row in words]
    assert all(owners) and sum(len(o) for o in owners) == len(set().union(*owners))  # no word shared
    # the PCA keeps the directions the clusters differ in: each point's word sits near its own cluster
    near = book.centres[book.assign(x)] @ book.basis.T + book.mean
    assert np.abs(near - x).max() < 1.0
    assert fit_codebook(x[:40], 100).words == 10  # at most a quarter of the sample


def test_bow_input_errors() -> None:
    with pytest.raises(InputError, match="too small for 4x4 cells of 6 pixels"):
        dense_sift(np.zeros((1, 20, 40, 3), np.uint8), cell=(4, 6))
    with pytest.raises(InputError, match=r"\[B, H, W\] or \[B, H, W, 3\]"):
        dense_sift(np.zeros((1, 32, 32, 4), np.uint8))
    with pytest.raises(InputError, match="must be positive"):
        dense_sift(np.zeros((1, 32, 32), np.uint8), cell=0)
    with pytest.raises(InputError, match="at least 2"):
        fit_codebook(np.zeros((100, 8)), 1)
    with pytest.raises(InputError, match="at least 8 sample descriptors"):
        fit_codebook(np.zeros((3, 8)), 2)
    book = fit_codebook(np.random.default_rng(0).random((100, 8)), 4)
    with pytest.raises(InputError, match=r"descriptors \[N, 8\]"):
        book.assign(np.zeros((3, 7)))
    with pytest.raises(InputError, match="centres of shape"):
        book.encode(np.zeros((1, 3, 8)), np.zeros((2, 2)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path / "proj", n_train=12, n_val=4, n_test=6, extras=False)
    yield w
    w.close()


def test_baseline_trains_beats_chance_and_writes_a_valid_submission(world: World) -> None:
    make_challenge(world)
    messages: list[str] = []
    result = run_classical_baseline(world.project, "shapes", release=world.release, log=messages.append)
    assert result.n_classes == 4 and result.n_train == 48 and result.n_val == 16 and result.n_test == 24
    assert result.features == "bow" and result.words == 2000
    assert result.feature_dim == 2000 * 5  # a word histogram over the whole image and its four quarters
    assert result.val_top1_error is not None and result.val_top1_error < 0.5  # chance is 0.75
    assert result.val_top5_error == 0.0  # 4 classes: five guesses cover them all
    assert 0 < result.seconds_codebook < result.seconds_features
    codebook, feats, svm, val, queued = messages
    assert codebook.startswith("codebook: 2000 visual words, k-means on ") and "48 train images" in codebook
    assert feats.startswith("features: 10,000 per image (bag of 2000 words over a 1x1 + 2x2 pyramid")
    assert svm.startswith("linear SVM (one-vs-rest, C=1) on 48 images of 4 classes")
    assert val.startswith("val: top-1 error") and queued.startswith("submission")
    lines = result.file.decode().splitlines()
    assert len(lines) == 24 and all(len(line.split()) == 4 for line in lines)
    assert result.submission_id is not None
    (outcome,) = drain(world.project)
    assert outcome.status == "done"
    (view,) = team_submissions(world.project, "shapes", _team_id(world, "classical-baseline"))
    assert view.status == "scored" and view.public is not None
    scored = score_file(result.file, load_context(world.project, "shapes"))
    assert scored.scores.top1_error < 0.5


def test_baseline_with_hog_features_still_runs(world: World) -> None:
    make_challenge(world)
    messages: list[str] = []
    result = run_classical_baseline(world.project, "shapes", features="hog", log=messages.append)
    assert result.features == "hog" and result.words is None and result.seconds_codebook == 0.0
    assert result.feature_dim == 7 * 7 * 36 + 64  # HOG on 64x64 + 64 colour bins
    assert result.val_top1_error is not None and result.val_top1_error < 0.5  # the fixture's colours help
    assert not any(m.startswith("codebook") for m in messages)
    assert any("HOG + colour histogram of 64 x 64 images" in m for m in messages)
    assert any("C=0.01" in m for m in messages)
    with world.project.session() as s:
        names = s.scalars(
            select(schema.Participant.name).where(
                schema.Participant.team_id == _team_id(world, "classical-baseline")
            )
        ).all()
    assert names == ["hog-colour-linear-svm"]  # each kind of features submits as its own account


def _team_id(world: World, name: str) -> int:
    from synsetforge.benchmark.participants import team_id

    return team_id(world.project, name)


def test_baseline_for_localization_boxes_the_whole_image(world: World) -> None:
    make_challenge(world, "loc", task="localization")
    result = run_classical_baseline(world.project, "loc", file_format="kaggle", submit_as=None)
    assert result.submission_id is None
    rows = result.file.decode().splitlines()
    assert rows[0] == "ImageId,PredictionString"
    first = rows[1].split(",")[1].split()
    assert len(first) == 4 * 5 and first[1:5] == ["0", "0", "47", "47"]
    scored = score_file(result.file, load_context(world.project, "loc"))
    assert scored.scores.localization_error is not None


def test_baseline_refuses_a_mismatched_release(world: World) -> None:
    make_challenge(world)
    with pytest.raises(InputError, match="is on release 'shapes-v1', not 'other'"):
        run_classical_baseline(world.project, "shapes", release="other")
    with pytest.raises(InputError, match="--per-class"):
        run_classical_baseline(world.project, "shapes", per_class=0)


def test_baseline_refuses_bad_settings(world: World) -> None:
    make_challenge(world)
    with pytest.raises(InputError, match="--features must be one of bow, hog, not 'sift'"):
        run_classical_baseline(world.project, "shapes", features="sift")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--words must be at least 2, not 1"):
        run_classical_baseline(world.project, "shapes", words=1)
    with pytest.raises(InputError, match="--size must be at least 29 pixels for bow features, not 20"):
        run_classical_baseline(world.project, "shapes", size=20)  # too small for the 6-pixel cells
    with pytest.raises(InputError, match="--size must be at least 16 pixels for hog features, not 12"):
        run_classical_baseline(world.project, "shapes", features="hog", size=12)
    with pytest.raises(InputError, match="--c must be positive, not 0"):
        run_classical_baseline(world.project, "shapes", c=0.0)
    assert (
        run_classical_baseline(world.project, "shapes", features="hog", size=20, submit_as=None).n_train == 48
    )


def test_baseline_cli_writes_the_file(world: World, tmp_path: Path) -> None:
    make_challenge(world)
    app = typer.Typer()
    app.add_typer(baseline_app, name="baseline")
    out = tmp_path / "sub.txt"
    result = CliRunner().invoke(
        app,
        [
            "baseline", "classical", "--release", world.release, "--challenge", "shapes",
            "--per-class", "5", "--words", "50", "--no-submit", "-o", str(out), "-p", str(world.project.root),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "codebook: 50 visual words" in result.output and "C=1)" in result.output
    assert "val: top-1 error" in result.output and f"wrote {out}" in result.output
    assert len(out.read_text().splitlines()) == 24
    result = CliRunner().invoke(
        app,
        [
            "baseline", "classical", "--release", world.release, "--challenge", "shapes", "--features", "hog",
            "--c", "0.1", "--size", "32", "--no-submit", "-p", str(world.project.root),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "HOG + colour histogram of 32 x 32 images" in result.output and "C=0.1)" in result.output
    assert "codebook" not in result.output
    result = CliRunner().invoke(
        app,
        ["baseline", "classical", "--release", world.release, "--challenge", "shapes", "--features", "sift"],
    )
    assert result.exit_code == 2 and "sift" in result.output  # typer lists the choices
    result = CliRunner().invoke(
        app,
        [
            "baseline",
            "classical",
            "--release",
            "nope",
            "--challenge",
            "shapes",
            "-p",
            str(world.project.root),
        ],
    )
    assert result.exit_code != 0 and isinstance(result.exception, InputError)


def test_cli_defaults_are_the_modules() -> None:
    import inspect

    from synsetforge.baselines import classical
    from synsetforge.baselines.cli import classical_command

    params = inspect.signature(classical_command).parameters  # the CLI module may not import classical
    assert params["features"].default.value == classical.DEFAULT_FEATURES
    assert params["words"].default == classical.DEFAULT_WORDS
    assert params["size"].default == classical.DEFAULT_SIZE
    assert params["per_class"].default == classical.DEFAULT_PER_CLASS
    assert params["c"].default is None  # each kind of features has its own C
