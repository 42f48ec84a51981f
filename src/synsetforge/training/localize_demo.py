"""The demo's localization stage: boxes on the benchmark figures, a release that freezes them, a localization
challenge, and the CNN with a box head on its leaderboard beside a centre-box baseline.

Where the boxes come from: boxes the project already holds (crowd-accepted by `boxes simulate`, imported,
or synthetic) are used as they are; an accepted image that has none gets its ground-truth boxes from the
synthetic source, stored as origin "synthetic" (trusted, like imported boxes), and the stage says how many
images got which. The CNN is the classification run's network with a box head added, trained for a few
more epochs on both losses (`train --boxes --weights RUN/model.pt`), which costs a fraction of training a
second network from scratch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from synsetforge.errors import InputError
from synsetforge.store import schema
from synsetforge.store.project import Project

LOC_EPOCHS = 10  # box-head epochs on top of the classification run (measured: README, "The demo")
CNN_TEAM, CENTRE_TEAM = "cnn-small-boxes", "centre-box"


@dataclass(frozen=True)
class DemoBoxes:
    """Accepted images of the classes, by where their boxes came from."""

    images: int
    by_origin: dict[str, int]  # images whose boxes have this origin (already in the project)
    from_truth: int  # images that got their ground-truth boxes copied now
    without: int  # accepted images with no box at all (ground truth says the figure is not there)

    def line(self) -> str:
        have = ", ".join(f"{n:,} with {origin} boxes" for origin, n in sorted(self.by_origin.items()))
        parts = [have] if have else []
        if self.from_truth:
            parts.append(
                f"{self.from_truth:,} got their ground-truth boxes copied as origin 'synthetic' (the box "
                "crowd simulation, `synsetforge boxes simulate`, had not boxed them)"
            )
        if self.without:
            parts.append(f"{self.without:,} have none (the figure is not in them: false accepts)")
        return f"boxes on the {self.images:,} accepted images of the classes: " + "; ".join(parts)


def ensure_boxes(project: Project, classes: Sequence[str]) -> DemoBoxes:
    """Copy ground-truth boxes (origin "synthetic") onto accepted images of `classes` that have no usable box
    yet; boxes a release would freeze (good, or synthetic/imported not bad; never gold) count as usable."""
    c, b, gt = schema.Candidate, schema.BoxRow, schema.GroundTruth
    wanted = list(classes)
    with project.session() as s:
        accepted = dict(
            s.execute(
                select(c.id, c.synset_id).where(
                    c.synset_id.in_(wanted), c.decision == "accepted", c.image_id.is_not(None)
                )
            ).all()
        )
        origins: dict[int, set[str]] = {}
        for cid, origin, status in s.execute(select(b.candidate_id, b.origin, b.status)):
            if (
                cid in accepted
                and origin != "gold"
                and (status == "good" or (origin in ("synthetic", "import") and status != "bad"))
            ):
                origins.setdefault(int(cid), set()).add(str(origin))
        truth = dict(
            s.execute(
                select(gt.candidate_id, gt.boxes).where(
                    gt.positive.is_(True), gt.candidate_id.in_(list(accepted))
                )
            ).all()
        )
        copied = 0
        for cid in accepted:
            boxes = truth.get(cid) or []
            if cid in origins or not boxes:
                continue
            for x1, y1, x2, y2 in boxes:
                s.add(b(candidate_id=cid, x1=x1, y1=y1, x2=x2, y2=y2, origin="synthetic", status="good",
                        confidence=1.0))  # fmt: skip
            copied += 1
    by_origin = Counter("+".join(sorted(o)) for o in origins.values())
    return DemoBoxes(len(accepted), dict(by_origin), copied, len(accepted) - len(origins) - copied)


def run_localization_demo(
    project: Project,
    console: Console,
    *,
    classes: Sequence[str],
    cnn_run: Path | None,
    release: str = "loc-v1",
    epochs: int = LOC_EPOCHS,
    split_val: float = 0.1,
    split_test: float = 0.15,
    workers: int = 2,
    lr: float | None = None,
) -> str | None:
    """The stage (module docstring); returns the localization challenge's name, or None (with a note) when
    the project is too small for one."""
    from synsetforge.benchmark.challenge import ChallengeSettings, create_challenge, list_challenges
    from synsetforge.benchmark.challenge_cli import print_board
    from synsetforge.benchmark.standings import leaderboard
    from synsetforge.benchmark.worker import drain
    from synsetforge.releases import create_release
    from synsetforge.releases.manifest import iter_items
    from synsetforge.releases.splits import SplitSpec
    from synsetforge.training.cli import default_run_dir, progress_bar
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.data import release_classes
    from synsetforge.training.predict import predict
    from synsetforge.training.train import train

    say = lambda m: console.print(m, markup=False)  # noqa: E731
    started = time.perf_counter()
    console.rule("[bold]8. Localization[/]: boxes, a localization challenge, a box head on the CNN")
    boxes = ensure_boxes(project, classes)
    say(boxes.line())
    rel = create_release(
        project, release, synsets=list(classes), split=SplitSpec(val=split_val, test=split_test), min_images=1
    )
    boxed = Counter(it.split for it in iter_items(project.blobs, rel.manifest_sha256) if it.boxes)
    say(
        f"release {release}: {int(rel.stats.get('images', 0)):,} images, with boxes: "
        f"{boxed['train']:,} train, {boxed['val']:,} val, {boxed['test']:,} test"
    )
    tested = {it.synset for it in iter_items(project.blobs, rel.manifest_sha256, "test") if it.boxes}
    chosen = [c for c in release_classes(project, rel) if c in tested]
    taken = {c.name for c in list_challenges(project)}
    name, k = f"{release}-localization", 2
    while name in taken:
        name, k = f"{release}-localization-{k}", k + 1
    try:
        info = create_challenge(
            project,
            name,
            release,
            classes=chosen,
            settings=ChallengeSettings(task="localization"),
            boxed_only=True,
        )
    except InputError as exc:
        say(f"no localization challenge: {exc}")
        return None
    left_out = info.stats.get("dropped_test_images", {}).get("without_boxes", 0)
    say(
        f"challenge {info.name}: localization (a guess is right when its class is and its box overlaps a "
        f"true box with IoU >= 0.5), {len(info.classes)} classes, {info.n_test} test images"
        + (f" ({left_out} test images without a box left out)" if left_out else "")
    )
    config = TrainConfig.for_arch("small", epochs=epochs, boxes=True, lr=lr)  # lr None: the recipe's
    weights = _starting_weights(project, cnn_run, release, say)
    out = default_run_dir(project.root, release, "small-boxes")
    say(
        f"training: the small CNN with a box head, {epochs} epochs on both losses, "
        + (f"starting from {weights}" if weights else "from scratch (no classification run to start from)")
    )
    with progress_bar(True) as bar:
        result = train(
            project, release, config, out=out, weights=weights, log=say, progress=bar, workers=workers
        )
    say(f"trained in {result.seconds:.0f} s; run folder {out}")
    head = predict(project, out, info.name, submit_as=(CNN_TEAM, out.name), log=say, workers=workers)
    centre = predict(
        project, out, info.name, submit_as=(CENTRE_TEAM, out.name), log=say, workers=workers, boxes="centre"
    )
    for outcome in drain(project):
        say(f"job {outcome.job_id} ({outcome.kind}): {outcome.status} {outcome.message}")
    board = leaderboard(project, info.name)
    print_board(board, console)
    private = leaderboard(project, info.name, split="private", organiser=True)
    by_team = {e.team: e for e in private.entries}
    if CNN_TEAM in by_team and CENTRE_TEAM in by_team:
        a = by_team[CNN_TEAM].scores["localization_error"].value
        b = by_team[CENTRE_TEAM].scores["localization_error"].value
        say(
            f"private half ({info.n_private} images): localization error {a:.1%} with the box head against "
            f"{b:.1%} with the same labels and a centred box of the median train-box size; "
            f"val: {_pct(head.val_localization_error)} against {_pct(centre.val_localization_error)}"
        )
    say(f"localization stage: {time.perf_counter() - started:.0f} s")
    return info.name


def _starting_weights(
    project: Project, cnn_run: Path | None, release: str, say: Callable[[str], None]
) -> Path | None:
    """The classification run's weights, unless that run trained on images that are val or test images of
    `release` (then its weights would have seen the localization challenge's test set)."""
    from synsetforge.releases.manifest import iter_items
    from synsetforge.releases.release import get_release
    from synsetforge.training.checkpoint import MODEL, load_model_file

    if cnn_run is None or not (cnn_run / MODEL).exists():
        return None
    meta, _, _ = load_model_file(cnn_run)
    seen = {it.sha256 for it in iter_items(project.blobs, meta.manifest_sha256, "train")}
    rel = get_release(project, release)
    held = {it.sha256 for it in iter_items(project.blobs, rel.manifest_sha256) if it.split != "train"}
    if seen & held:
        say(f"the classification run trained on {len(seen & held)} val/test images of {release}: not reused")
        return None
    return cnn_run / MODEL


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if v is not None else "-"
