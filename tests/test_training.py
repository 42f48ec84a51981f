"""Deep baselines end to end on small releases of drawn figures: a short run learns, a killed run resumes to
the same weights, `predict` writes a file the challenge scores, transfer beats training from scratch, and bad
input is one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from _training_fixtures import CIRCLE, HEART, SHAPES_A, SHAPES_B, add_figures, figure_release
from synsetforge.benchmark.challenge import create_challenge
from synsetforge.benchmark.worker import drain
from synsetforge.errors import InputError, NotFoundError
from synsetforge.releases import create_release, get_release
from synsetforge.releases.manifest import write_manifest
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.training.checkpoint import CHECKPOINT, MODEL, RUN_JSON, load, load_model_file
from synsetforge.training.config import TrainConfig
from synsetforge.training.predict import predict
from synsetforge.training.train import TrainResult, train
from synsetforge.training.transfer import transfer

# A quick recipe: 32 px inputs of letterboxed figures, any rotation, the CPU demo network.
QUICK = {"image_size": 32, "batch_size": 16, "lr": 0.1, "schedule": "cosine", "fit": "pad", "rotate": 180.0}


def quick(epochs: int = 10, **kw: object) -> TrainConfig:
    return TrainConfig.for_arch("small", **{**QUICK, "epochs": epochs, "crop_scale": (0.5, 1.0), **kw})


@dataclass
class World:
    project: Project
    root: Path
    run: TrainResult


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("training")
    project = Project.init(root / "proj", db=None)
    figure_release(project, "a", {c: 80 for c in SHAPES_A}, val=0.2, test=0.2)
    figure_release(project, "b", {c: 40 for c in SHAPES_B}, seed=1, val=0.4, test=0.1)
    result = train(project, "a", quick(), out=root / "run-a", workers=1)
    yield World(project, root, result)
    project.close()


def run_cli(
    *args: str, timeout: float = 300, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"} | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "synsetforge", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- learning ---------------------------------------------------------------------------------------------------
def test_a_short_run_lowers_the_loss_and_beats_chance(world: World) -> None:
    history = world.run.history
    assert len(history) == 10
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.2
    val = history[-1]["val"]
    assert val["n"] == world.run.val_images > 40
    assert val["top1_error"] < 0.45  # chance is 75% with four classes
    saved = json.loads((world.run.run_dir / RUN_JSON).read_text())
    assert saved["finished"] and saved["epochs_done"] == 10 and saved["classes"] == sorted(SHAPES_A)
    meta, state, _ = load_model_file(world.run.run_dir)
    assert meta.arch == "small" and meta.classes == world.run.classes and "fc.weight" in state


def test_checkpoint_holds_only_plain_data(world: World) -> None:
    data = torch.load(world.run.run_dir / CHECKPOINT, weights_only=True)  # would raise on pickled objects
    assert data["epoch"] == 10 and data["meta"]["arch"] == "small"


def test_kill_then_resume_gives_the_weights_of_an_uninterrupted_run(world: World) -> None:
    proj = str(world.project.root)
    common = ["train", "-p", proj, "--release", "a", "--arch", "small", "--epochs", "5", "--image-size", "48",
              "--batch-size", "32", "--lr", "0.2", "--schedule", "cosine", "--fit", "pad", "--rotate", "180",
              "--seed", "3", "--workers", "0"]  # fmt: skip
    killed = world.root / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synsetforge", *common, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = killed / "log.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = int(load(killed / CHECKPOINT)["epoch"])
    assert 1 <= done < 5 and not (killed / MODEL).exists(), "the run was not killed mid-way"

    resumed = run_cli(*common[:3], "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout.replace("\n", " ")
    whole = run_cli(*common, "--out", str(world.root / "whole"))
    assert whole.returncode == 0, whole.stderr

    _, a, _ = load_model_file(killed)
    _, b, _ = load_model_file(world.root / "whole")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    history = json.loads((killed / RUN_JSON).read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]  # no epoch lost or run twice


# -- predict -----------------------------------------------------------------------------------------------------
def test_predict_writes_a_file_that_the_challenge_scores(world: World) -> None:
    info = create_challenge(world.project, "figures", "a", classes=list(SHAPES_A))
    result = predict(world.project, world.run.run_dir, "figures", submit_as=("cnn-small", "run-a"))
    lines = result.file.decode().splitlines()
    assert len(lines) == info.n_test and all(len(line.split()) == 4 for line in lines)  # 4 classes: 4 guesses
    assert result.val_top1_error is not None and result.val_top1_error < 0.5
    outcomes = drain(world.project)
    assert [o.status for o in outcomes] == ["done"]
    with world.project.session() as s:
        row = s.get(schema.Submission, result.submission_id)
        assert row is not None and row.status == "scored", row and row.error
        assert 0 <= row.public_scores["metrics"]["top1_error"]["value"] < 0.6


def test_predict_refuses_a_network_that_lacks_a_challenge_class(world: World) -> None:
    create_challenge(world.project, "other-figures", "b", classes=list(SHAPES_B))
    with pytest.raises(InputError, match="does not know 4 of the challenge's 4 classes"):
        predict(world.project, world.run.run_dir, "other-figures")


# -- transfer ----------------------------------------------------------------------------------------------------
def test_transfer_from_a_pretrained_run_beats_training_from_scratch(world: World, tmp_path: Path) -> None:
    result = transfer(
        world.project,
        world.run.run_dir,
        "b",
        mode="linear",
        shots=5,
        epochs=15,
        workers=0,
        out=tmp_path / "t",
    )
    assert result.train_images == 20 and result.val_images == 64
    assert result.pretrained.top1_error < result.scratch.top1_error - 0.1, result.line()
    low, high = result.pretrained.interval
    assert low <= result.pretrained.top1_error <= high
    assert "pretrained" in result.line() and "from scratch" in result.line()
    saved = json.loads((tmp_path / "t" / "transfer.json").read_text())
    assert saved["pretrained"]["top1_error"] == result.pretrained.top1_error and saved["shots"] == 5
    for arm in ("pretrained", "scratch"):  # both networks are run folders predict and embed accept
        meta, state, _ = load_model_file(tmp_path / "t" / arm)
        assert meta.classes == sorted(SHAPES_B) and state["fc.weight"].shape[0] == 4


# -- bad input ---------------------------------------------------------------------------------------------------
def test_a_class_without_train_images_is_refused(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        add_figures(project, {CIRCLE: 12})
        [both] = add_figures(project, {HEART: 1}, seed=4)
        with project.session() as s:  # the only heart is also accepted as a circle: two labels, not usable
            cand = s.query(schema.Candidate).filter_by(image_id=both).one()
            s.add(schema.Candidate(synset_id=CIRCLE, source_id=cand.source_id, key="dup", url="synthetic://x",
                                   image_id=both, status="stored", decision="accepted", confidence=1.0))  # fmt: skip
        create_release(
            project, "r", synsets=[CIRCLE, HEART], split=SplitSpec(val=0.2, test=0.0), phash_distance=-1
        )
        with pytest.raises(InputError, match=r"1 of 2 classes have no train image .* n13865904 \(heart\)"):
            train(project, "r", quick(1), out=tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_an_empty_release_is_refused(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        project.add_synsets([CIRCLE])
        # create_release refuses an empty selection, so write what an empty release would be: a manifest
        # with a header and no items
        key, _ = write_manifest(project.blobs, {"release": "empty", "items": 0, "synsets": {}}, [])
        with project.session() as s:
            s.add(schema.Release(name="empty", method="fixture", params={}, manifest_sha256=key, stats={}))
        proc = run_cli("train", "-p", str(project.root), "--release", "empty", "--arch", "small")
        assert_one_line_error(proc, "holds no images")


def test_a_release_of_one_class_is_refused(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        figure_release(project, "one", {CIRCLE: 8})
        with pytest.raises(InputError, match="at least 2 classes"):
            train(project, "one", quick(1), out=tmp_path / "run")


def test_a_corrupt_blob_is_skipped_and_counted(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", db=None) as project:
        rel = figure_release(project, "c", {c: 10 for c in SHAPES_A[:2]}, seed=7)
        from synsetforge.releases.manifest import iter_items

        victim = next(iter_items(project.blobs, rel.manifest_sha256, "train"))
        path = project.blobs.local_path(victim.blob)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG any more")
        n_train = sum(1 for _ in iter_items(project.blobs, rel.manifest_sha256, "train"))
        result = train(project, "c", quick(1), out=tmp_path / "run", workers=1)
        assert result.skipped == {"train": 1, "val": 0}
        assert result.train_images == n_train - 1  # trained on the rest
        assert json.loads((tmp_path / "run" / RUN_JSON).read_text())["skipped_undecodable"]["train"] == 1


def test_resuming_with_another_architecture_is_one_line(world: World) -> None:
    proc = run_cli("train", "-p", str(world.project.root), "--out", str(world.run.run_dir), "--resume",
                   "--arch", "resnet18", "--release", "a")  # fmt: skip
    assert_one_line_error(proc, "resnet18")
    with pytest.raises(InputError, match="holds a small network, not a resnet18"):
        train(
            world.project,
            "a",
            TrainConfig.for_arch("resnet18", **QUICK, epochs=10),
            out=world.run.run_dir,
            resume=True,
        )


def test_a_checkpoint_of_another_class_count_is_refused(world: World, tmp_path: Path) -> None:
    state = load(world.run.run_dir / CHECKPOINT)
    state["meta"]["classes"] = state["meta"]["classes"][:3]
    state["epoch"] = 1
    run = tmp_path / "three"
    run.mkdir()
    torch.save(state, run / CHECKPOINT)
    cfg = TrainConfig.from_json(state["config"])
    with pytest.raises(InputError, match="holds a network for 4 classes, this run has 3"):
        train(world.project, "a", cfg, out=run, resume=True)


def test_a_truncated_checkpoint_is_one_line(world: World, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    run.mkdir()
    data = (world.run.run_dir / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])
    (run / RUN_JSON).write_text((world.run.run_dir / RUN_JSON).read_text())
    proc = run_cli("train", "-p", str(world.project.root), "--out", str(run), "--resume")
    assert_one_line_error(proc, "damaged or not a checkpoint")
    with pytest.raises(NotFoundError):
        load_model_file(run / MODEL)


def test_device_cuda_without_a_gpu_is_one_line(world: World, tmp_path: Path) -> None:
    # CUDA_VISIBLE_DEVICES="" hides any GPU from torch, so this runs the same on a machine that has one
    proc = run_cli("train", "-p", str(world.project.root), "--release", "a", "--arch", "small", "--device", "cuda",
                   "--out", str(tmp_path / "gpu"), env_extra={"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    assert_one_line_error(proc, "no CUDA GPU")
    assert not (tmp_path / "gpu").exists()


def test_a_run_folder_in_use_is_not_overwritten(world: World) -> None:
    before = (world.run.run_dir / MODEL).read_bytes()
    with pytest.raises(InputError, match="is not empty"):
        train(world.project, "a", quick(), out=world.run.run_dir)
    assert (world.run.run_dir / MODEL).read_bytes() == before


def test_the_cli_trains_and_reports(world: World) -> None:
    proc = run_cli("train", "-p", str(world.project.root), "--release", "b", "--arch", "small", "--epochs", "1",
                   "--image-size", "32", "--batch-size", "16", "--workers", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "epoch 1/1: train loss" in out and "val top-1 error" in out and "(chance 75% / 0%)" in out
    assert (world.project.root / "runs" / "b-small" / MODEL).exists()


def test_top5_of_few_classes_counts_every_class(world: World) -> None:
    assert np.isclose(world.run.final["val"]["top5_error"], 0.0)  # 4 classes: every label is in the top 5


# -- embed and the explorer's similar images ---------------------------------------------------------------------
def test_embed_stores_features_that_the_explorer_shows(world: World) -> None:
    from fastapi.testclient import TestClient

    from synsetforge.releases.manifest import iter_items
    from synsetforge.training.embed import embed, load_features
    from synsetforge.web.app import create_app

    result = embed(world.project, world.run.run_dir, "a", workers=0)
    rel = get_release(world.project, "a")
    items = list(iter_items(world.project.blobs, rel.manifest_sha256))
    split_of = {it.image_id: it.split for it in items}
    label_of = {it.image_id: it.synset for it in items}
    assert result.images == len(split_of) and result.dim == 128 and result.skipped == 0
    feats = load_features(world.project, "a")
    assert feats.vectors.dtype == np.float16 and feats.vectors.shape == (len(split_of), 128)
    assert feats.probs.shape == (len(split_of), 4) and feats.classes == world.run.classes
    with pytest.raises(InputError, match="already has features named"):
        embed(world.project, world.run.run_dir, "a", workers=0)

    # the features carry the class: most nearest neighbours of a val image share its class (chance: 1 in 4)
    from synsetforge.training.embed import Neighbours

    near = Neighbours(feats)
    vals = [i for i, sp in split_of.items() if sp == "val"]
    same = [label_of[o] == label_of[i] for i in vals for o, _ in near.of(i, 5)]
    assert np.mean(same) > 0.5  # twice chance (this tiny run gives 0.55 since the boxes work; 0.6+ before)

    with TestClient(create_app(world.project)) as client:
        train_id = next(i for i, sp in split_of.items() if sp == "train")
        page = client.get(f"/explore/a/image/{train_id}")
        assert page.status_code == 200 and 'id="similar"' in page.text
        strip = page.text.split('id="similar"')[1].split("</ul>")[0]
        shown = [int(x) for x in re.findall(r"/explore/a/image/(\d+)", strip)]
        assert len(shown) == 8 and train_id not in shown
        assert all(split_of[i] in ("train", "val") for i in shown)  # never a hidden test image
        test_id = next(i for i, sp in split_of.items() if sp == "test")
        assert client.get(f"/explore/a/image/{test_id}").status_code == 404


def test_torchvision_layout_weights_start_a_run_and_a_transfer(world: World, tmp_path: Path) -> None:
    """A user's torchvision-layout .pth (a 1000-class ResNet-18 here) starts training and transfer."""
    from synsetforge.training.models import build_model

    torch.manual_seed(5)
    donor = build_model("resnet18", 1000)
    pth = tmp_path / "resnet18-imagenet.pth"
    torch.save(donor.state_dict(), pth)
    proc = run_cli("train", "-p", str(world.project.root), "--release", "b", "--arch", "resnet18", "--epochs", "1",
                   "--image-size", "32", "--batch-size", "16", "--workers", "0", "--weights", str(pth),
                   "--out", str(tmp_path / "ft"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert (
        "initial weights: loaded" in out
        and "head not loaded (1000 classes in the file, 4 in the model)" in out
    )
    _, state, _ = load_model_file(tmp_path / "ft")
    assert state["fc.weight"].shape == (4, 512)
    result = transfer(world.project, pth, "b", arch="resnet18", shots=2, epochs=1, workers=0)
    assert result.train_images == 8 and result.pretrained.interval[0] <= result.pretrained.top1_error
    with pytest.raises(InputError):
        transfer(world.project, pth, "b", arch="alexnet", shots=2, epochs=1, workers=0)  # keys do not fit
