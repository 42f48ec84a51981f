"""The benchmark part of `make demo`: a challenge on the demo release, the classical baseline, the leaderboard."""

from __future__ import annotations

from rich.console import Console

from synsetforge.benchmark.challenge import METRIC_LABELS, ChallengeInfo, create_challenge, list_challenges
from synsetforge.benchmark.challenge_cli import fmt_metric, print_board
from synsetforge.benchmark.standings import leaderboard
from synsetforge.benchmark.worker import drain
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.store.project import Project


def _challenge(project: Project, release: str, console: Console) -> ChallengeInfo:
    taken = {c.name for c in list_challenges(project)}
    name = f"{release}-challenge"
    k = 2
    while name in taken:
        name = f"{release}-challenge-{k}"
        k += 1
    try:
        return create_challenge(project, name, release, leaves=True, min_images=2)
    except InputError as exc:
        # a release of inner synsets: fall back to the non-overlapping part of its classes
        console.print(f"--leaves: {exc}; using the release's non-overlapping synsets instead", markup=False)
        from sqlalchemy import select

        from synsetforge.store import schema

        with project.session() as s:
            rel = s.scalar(select(schema.Release.id).where(schema.Release.name == release))
            sids = sorted(
                set(
                    s.scalars(
                        select(schema.ReleaseItem.synset_id).where(
                            schema.ReleaseItem.release_id == rel, schema.ReleaseItem.split == "test"
                        )
                    )
                )
            )
        return create_challenge(project, name, release, classes=project.hierarchy.non_overlapping(sids))


def run_benchmark_demo(project: Project, release_name: str, console: Console | None = None) -> ChallengeInfo:
    """Create a challenge on `release_name`, submit the classical baseline, score it, print the boards."""
    console = console or Console(highlight=False)
    console.rule("[bold]Benchmark[/]: an ILSVRC-style challenge on the release")
    info = _challenge(project, release_name, console)
    console.print(
        f"challenge {info.name}: {len(info.classes)} non-overlapping classes, {info.n_test} hidden test images "
        f"({info.n_public} public / {info.n_private} private), {info.n_val} val images with public labels; "
        f"limit {info.settings.daily_limit} submissions per team per 24 h",
        markup=False,
    )
    console.rule("[bold]Classical baseline[/]: HOG + colour histogram, linear SVM (2010-style)")
    from synsetforge.baselines.classical import run_classical_baseline

    result = run_classical_baseline(
        project, info.name, release=release_name, log=lambda m: console.print(m, markup=False)
    )
    console.rule("[bold]Worker[/]: scoring off the request path (job queue in the project database)")
    for outcome in drain(project):
        console.print(
            f"job {outcome.job_id} ({outcome.kind}): {outcome.status} {outcome.message}", markup=False
        )
    board = leaderboard(project, info.name)
    print_board(board, console)
    private = leaderboard(project, info.name, split="private", organiser=True)
    console.print("Organiser's view of the private board (participants see it when the challenge ends):")
    print_board(private, console)
    table = Table("metric", "public [95% CI]", "private [95% CI]", title="classical baseline scores")
    entry_pub = next((e for e in board.entries if e.submission_id == result.submission_id), None)
    entry_priv = next((e for e in private.entries if e.submission_id == result.submission_id), None)
    for m in info.settings.metrics:
        cells = []
        for e in (entry_pub, entry_priv):
            sc = e.scores.get(m) if e else None
            cells.append(
                f"{fmt_metric(sc.value, m)} [{fmt_metric(sc.low, m)}, {fmt_metric(sc.high, m)}]"
                if sc
                else "-"
            )
        table.add_row(METRIC_LABELS[m], *cells)
    console.print(table)
    chance = 1 - min(5, len(info.classes)) / len(info.classes)
    console.print(f"chance level: top-5 error {chance:.0%}, top-1 error {1 - 1 / len(info.classes):.0%}")
    console.print(
        f"next: synsetforge challenge leaderboard {info.name} -p {project.root}; "
        f"synsetforge challenge account-add TEAM NAME -p {project.root}"
    )
    return info
