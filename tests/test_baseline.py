"""The classical baseline: numpy HOG against a loop-by-loop reference, colour histograms, and a full run
that trains on the release, beats chance on val and test, and writes a file the worker accepts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from _challenge_fixtures import World, build_world, make_challenge
from synsetforge.baselines.classical import run_classical_baseline
from synsetforge.baselines.cli import baseline_app
from synsetforge.baselines.features import colour_histogram, hog
from synsetforge.benchmark.scoring import load_context, score_file
from synsetforge.benchmark.standings import team_submissions
from synsetforge.benchmark.worker import drain
from synsetforge.errors import InputError


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
    assert result.feature_dim == 7 * 7 * 36 + 64  # HOG on 64x64 + 64 colour bins
    assert result.val_top1_error is not None and result.val_top1_error < 0.5  # chance is 0.75
    assert result.val_top5_error == 0.0  # 4 classes: five guesses cover them all
    assert any(m.startswith("val: top-1 error") for m in messages)
    lines = result.file.decode().splitlines()
    assert len(lines) == 24 and all(len(line.split()) == 4 for line in lines)
    assert result.submission_id is not None
    (outcome,) = drain(world.project)
    assert outcome.status == "done"
    (view,) = team_submissions(world.project, "shapes", _team_id(world, "classical-baseline"))
    assert view.status == "scored" and view.public is not None
    scored = score_file(result.file, load_context(world.project, "shapes"))
    assert scored.scores.top1_error < 0.5


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


def test_baseline_cli_writes_the_file(world: World, tmp_path: Path) -> None:
    make_challenge(world)
    app = typer.Typer()
    app.add_typer(baseline_app, name="baseline")
    out = tmp_path / "sub.txt"
    result = CliRunner().invoke(
        app,
        [
            "baseline", "classical", "--release", world.release, "--challenge", "shapes",
            "--per-class", "5", "--no-submit", "-o", str(out), "-p", str(world.project.root),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "val: top-1 error" in result.output and f"wrote {out}" in result.output
    assert len(out.read_text().splitlines()) == 24
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
