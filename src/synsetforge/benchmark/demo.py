"""The benchmark part of `make demo`: a challenge on the demo release, the classical baseline, the leaderboard."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from synsetforge.benchmark.challenge import METRIC_LABELS, ChallengeInfo, create_challenge, list_challenges
from synsetforge.benchmark.challenge_cli import fmt_metric, print_board
from synsetforge.benchmark.standings import Board, leaderboard
from synsetforge.benchmark.worker import drain
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.store.project import Project

# The demo's CNN is the `small` network with its own recipe (training.config.RECIPES["small"]), both chosen
# by measuring on the demo's figures (README, "The demo").
DEMO_TRANSFER_EPOCHS = 30


def _challenge(project: Project, release: str, console: Console) -> ChallengeInfo:
    """A challenge on the release's non-overlapping synsets that have test images (the classes a network
    trained on the release learns)."""
    from synsetforge.releases.manifest import iter_items
    from synsetforge.releases.release import get_release
    from synsetforge.training.data import release_classes

    taken = {c.name for c in list_challenges(project)}
    name = f"{release}-challenge"
    k = 2
    while name in taken:
        name = f"{release}-challenge-{k}"
        k += 1
    rel = get_release(project, release)
    tested = {it.synset for it in iter_items(project.blobs, rel.manifest_sha256, "test")}
    classes = [c for c in release_classes(project, rel) if c in tested]
    if len(classes) < 2:
        raise InputError(f"only {len(classes)} of the release's classes have test images")
    return create_challenge(project, name, release, classes=classes)


def run_benchmark_demo(
    project: Project,
    release_name: str,
    console: Console | None = None,
    *,
    transfer_release: str | None = None,
    cnn: bool = True,
    cnn_epochs: int | None = None,
) -> ChallengeInfo | None:
    """Create a challenge on `release_name`, enter the classical baseline and (with `cnn`) a CNN trained on the
    release, score both through the job queue, print the boards; then, with `transfer_release`, what the
    CNN's pretraining buys on other figures. None (with a note) when the release is too small for a challenge."""
    console = console or Console(highlight=False)
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    console.rule("[bold]5. Benchmark[/]: an ILSVRC-style challenge on the release")
    try:
        info = _challenge(project, release_name, console)
    except InputError as exc:
        say(f"no challenge: {exc} (collect more candidates per figure: --per-synset)")
        return None
    say(
        f"challenge {info.name}: {len(info.classes)} non-overlapping classes, {info.n_test} hidden test images "
        f"({info.n_public} public / {info.n_private} private), {info.n_val} val images with public labels; "
        f"limit {info.settings.daily_limit} submissions per team per 24 h"
    )
    console.rule("[bold]Classical baseline[/]: dense SIFT, bag of visual words, linear SVM (2010-style)")
    from synsetforge.baselines.classical import run_classical_baseline

    classical = run_classical_baseline(project, info.name, release=release_name, log=say)
    run_dir = None
    if cnn:
        run_dir = _deep_baseline(project, info, release_name, console, cnn_epochs)
    console.rule("[bold]Worker[/]: scoring off the request path (job queue in the project database)")
    for outcome in drain(project):
        say(f"job {outcome.job_id} ({outcome.kind}): {outcome.status} {outcome.message}")
    board = leaderboard(project, info.name)
    print_board(board, console)
    private = leaderboard(project, info.name, split="private", organiser=True)
    say("Organiser's view of the private board (participants see it when the challenge ends):")
    print_board(private, console)
    _compare(board, private, info, classical.submission_id, console)
    say(
        f"next: synsetforge challenge leaderboard {info.name} -p {project.root}; "
        f"synsetforge challenge account-add TEAM NAME -p {project.root}"
    )
    if run_dir is not None and transfer_release is not None:
        _transfer(project, run_dir, transfer_release, console)
    if run_dir is not None:
        from synsetforge.training.embed import embed

        result = embed(project, run_dir, release_name, workers=2)
        say(
            f"embedded {result.images} images of {release_name} ({result.dim}-d features): the explorer's image "
            f"pages now show similar images (synsetforge serve -p {project.root}; /explore/{release_name})"
        )
    return info


def _deep_baseline(
    project: Project, info: ChallengeInfo, release: str, console: Console, epochs: int | None = None
) -> Path:
    """Train the demo's CNN on the release and submit its guesses; returns the run folder."""
    from synsetforge.training.cli import progress_bar
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.predict import predict
    from synsetforge.training.train import train

    say = lambda m: console.print(m, markup=False)  # noqa: E731
    config = TrainConfig.for_arch("small", epochs=epochs)  # None: the recipe's epochs
    console.rule(
        f"[bold]6. Deep baseline[/]: a small ResNet trained on the release (2012-style), {config.epochs} epochs"
    )
    from synsetforge.training.cli import default_run_dir

    out = default_run_dir(project.root, release, "small")
    with progress_bar(True) as bar:
        result = train(project, release, config, out=out, log=say, progress=bar, workers=2)
    say(f"trained in {result.seconds:.0f} s; run folder {out} (synsetforge predict --run {out} ...)")
    predict(project, out, info.name, submit_as=("cnn-small", out.name), log=say, workers=2)
    return out


def _compare(
    board: Board, private: Board, info: ChallengeInfo, classical_id: int | None, console: Console
) -> None:
    """Each entry's public and private scores side by side, chance, and how far apart the entries are."""
    entries = {e.submission_id: e for e in board.entries}
    hidden = {e.submission_id: e for e in private.entries}
    table = Table("entry", *(f"{METRIC_LABELS[m]} public / private" for m in ("top5_error", "top1_error")))
    for sid, entry in sorted(entries.items(), key=lambda kv: kv[1].rank):
        cells = []
        for m in ("top5_error", "top1_error"):
            a, b = entry.scores.get(m), hidden[sid].scores.get(m) if sid in hidden else None
            cells.append(f"{fmt_metric(a.value, m) if a else '-'} / {fmt_metric(b.value, m) if b else '-'}")
        table.add_row(entry.team, *cells)
    console.print(table)
    n = len(info.classes)
    console.print(
        f"chance level: top-1 error {1 - 1 / n:.1%}, top-5 error {max(0.0, 1 - 5 / n):.1%} ({n} classes)",
        markup=False,
    )
    cnn = next((e for e in private.entries if e.team == "cnn-small"), None)
    old = next((e for e in private.entries if e.submission_id == classical_id), None)
    if cnn is not None and old is not None:
        gap = old.scores["top1_error"].value - cnn.scores["top1_error"].value
        first = cnn if cnn.rank < old.rank else old
        # the board's paired test is on the metric it ranks by (top-5 error, as ILSVRC), not on top-1
        p = (
            f"; the boards rank by {METRIC_LABELS.get(private.rank_by, private.rank_by)}, whose paired test "
            f"({first.vs_next.method}) gives p = {first.vs_next.p_value:.2g}"
            if first.vs_next
            else ""
        )
        side = "below" if gap >= 0 else "above"
        console.print(
            f"the CNN's top-1 error is {abs(gap) * 100:.1f} points {side} the classical baseline's on the "
            f"{info.n_private} private test images{p}",
            markup=False,
        )


def _transfer(project: Project, run_dir: Path, release: str, console: Console) -> None:
    """One line: the CNN's features on figures it never saw, 5 images per class, against training from scratch."""
    from synsetforge.training.data import open_release
    from synsetforge.training.transfer import transfer

    console.rule("[bold]7. Transfer[/]: what pretraining on the release buys on figures it never saw")
    try:
        data = open_release(project, release, splits=("train", "val"))
    except InputError as exc:
        console.print(f"no transfer: {exc}", markup=False)
        return
    shots = min(5, int(data.split("train").per_class(len(data.classes)).min()))
    if shots < 1 or len(data.split("val")) == 0:
        console.print(
            f"no transfer: release {release} is too small (collect more: --per-synset)", markup=False
        )
        return
    result = transfer(
        project, run_dir, release, mode="linear", shots=shots, epochs=DEMO_TRANSFER_EPOCHS, workers=2
    )
    console.print(result.line(), markup=False)
