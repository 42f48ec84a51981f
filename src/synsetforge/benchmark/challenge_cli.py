"""CLI of the challenge server: `challenge ...` (organisers), `submit` (participants) and `worker`.

Register in the top-level app::

    app.add_typer(challenge_app, name="challenge")
    app.command("submit")(submit_command)
    app.command("worker")(worker_command)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from synsetforge.benchmark.challenge import (
    METRIC_LABELS,
    ChallengeInfo,
    ChallengeSettings,
    create_challenge,
    get_challenge,
    list_challenges,
)
from synsetforge.benchmark.participants import authenticate, create_account, create_team, list_teams
from synsetforge.benchmark.queue import DEFAULT_LEASE
from synsetforge.benchmark.queue import counts as job_counts
from synsetforge.benchmark.standings import Board, board_csv, leaderboard, team_submissions
from synsetforge.benchmark.submissions import count_submissions, submit
from synsetforge.cliopts import ProjectOpt, typer_app
from synsetforge.clitables import Table
from synsetforge.errors import InputError
from synsetforge.store.project import Project

console = Console(highlight=False)

challenge_app = typer_app(
    help="ILSVRC-style challenges: hidden test labels, per-team limits, leaderboards.", no_args_is_help=True
)


class Task(StrEnum):
    classification = "classification"
    localization = "localization"


class BoardName(StrEnum):
    public = "public"
    private = "private"


def _when(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{what}: {text!r} is not an ISO date such as 2025-06-30 or 2025-06-30T23:59"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


SHORT_LABELS = {
    "top5_error": "top-5 error",
    "top1_error": "top-1 error",
    "hierarchical_error_normalized": "hier. error (norm.)",
    "hierarchical_error_raw": "hier. error (raw)",
    "localization_error": "loc. error",
}


def fmt_metric(value: float, metric: str) -> str:
    return f"{value:.3f}" if metric == "hierarchical_error_raw" else f"{100 * value:.2f}%"


def _describe(info: ChallengeInfo) -> None:
    st = info.settings
    console.print(
        f"challenge [bold]{info.name}[/] on release {info.release}: {st.task}, {len(info.classes)} classes"
    )
    console.print(
        f"  test   {info.n_test:,} images (labels hidden): {info.n_public:,} public / {info.n_private:,} private"
    )
    dropped = info.stats.get("dropped_test_images", {})
    if any(dropped.values()):
        console.print(
            f"         left out: {dropped.get('ambiguous', 0)} with several classes, "
            f"{dropped.get('also_in_train_or_val', 0)} also in train/val"
        )
    console.print(f"  val    {info.n_val:,} images (labels public)")
    console.print(f"  ranked by {METRIC_LABELS[st.rank_by]}; shown: {', '.join(st.metrics)}")
    ladder = "off" if not st.ladder else f"on (margin {st.ladder_margin or 'parameter-free'})"
    console.print(f"  limit  {st.daily_limit} submissions per team per 24 h; Ladder {ladder}")
    opens = f"{info.starts_at:%Y-%m-%d %H:%M} UTC" if info.starts_at else "now"
    ends = f"{info.ends_at:%Y-%m-%d %H:%M} UTC" if info.ends_at else "no end date"
    console.print(f"  dates  opens {opens}, ends {ends} ({info.status()})")


@challenge_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="Challenge name (letters, digits, . _ -).")],
    release: Annotated[
        str, typer.Option("--release", help="Release whose test split becomes the hidden test set.")
    ],
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="Class list file (one wnid per line, ILSVRC2012_ID order)."),
    ] = None,
    leaves: Annotated[
        bool, typer.Option("--leaves", help="Use the release's leaf synsets as classes.")
    ] = False,
    min_images: Annotated[int, typer.Option("--min-images", help="With --leaves: images a leaf needs.")] = 1,
    task: Annotated[Task, typer.Option("--task")] = Task.classification,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help=f"Metric to show (repeat): {', '.join(METRIC_LABELS)}."),
    ] = None,
    rank_by: Annotated[
        str | None, typer.Option("--rank-by", help="Ranking metric (default top5_error).")
    ] = None,
    daily_limit: Annotated[int, typer.Option("--daily-limit", help="Submissions per TEAM per 24 hours.")] = 5,
    public_fraction: Annotated[
        float, typer.Option("--public-fraction", help="Share of test images on the public board.")
    ] = 0.5,
    starts: Annotated[str | None, typer.Option("--starts", help="Opening date (ISO, UTC).")] = None,
    ends: Annotated[
        str | None, typer.Option("--ends", help="End date (ISO, UTC): the private board is revealed then.")
    ] = None,
    ladder: Annotated[
        bool, typer.Option("--ladder/--no-ladder", help="Ladder mode on the public board.")
    ] = False,
    ladder_margin: Annotated[
        float | None, typer.Option("--ladder-margin", help="Fixed Ladder step (default: parameter-free).")
    ] = None,
    max_upload_bytes: Annotated[int, typer.Option("--max-upload-bytes")] = 32 * 1024 * 1024,
    description: Annotated[str, typer.Option("--description")] = "",
    boxed_only: Annotated[
        bool,
        typer.Option(
            "--boxed-only", help="Localization: leave out test images without a box instead of refusing."
        ),
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Create a challenge: non-overlapping classes, hidden anonymised test set, settings."""
    settings = ChallengeSettings(
        task=task.value,
        metrics=list(metric or []),
        rank_by=rank_by or "",
        daily_limit=daily_limit,
        public_fraction=public_fraction,
        ladder=ladder,
        ladder_margin=ladder_margin,
        max_upload_bytes=max_upload_bytes,
        description=description,
    )
    with Project.open(project) as p:
        info = create_challenge(
            p,
            name,
            release,
            classes=classes,
            leaves=leaves,
            min_images=min_images,
            settings=settings,
            starts_at=_when(starts, "--starts"),
            ends_at=_when(ends, "--ends"),
            boxed_only=boxed_only,
        )
        _describe(info)


@challenge_app.command("list")
def list_command(project: ProjectOpt = None) -> None:
    """List the project's challenges."""
    with Project.open(project) as p:
        table = Table("challenge", "release", "task", "classes", "test images", "status", "submissions")
        for c in list_challenges(p):
            n = sum(count_submissions(p, c.id).values())
            table.add_row(
                c.name,
                Text(c.release),
                c.settings.task,
                str(len(c.classes)),
                f"{c.n_test:,}",
                c.status(),
                str(n),
            )
        console.print(table)


@challenge_app.command("show")
def show_command(name: str, project: ProjectOpt = None) -> None:
    """Settings, submission counts and the job queue of one challenge."""
    with Project.open(project) as p:
        info = get_challenge(p, name)
        _describe(info)
        subs = count_submissions(p, info.id)
        console.print(
            "  submissions "
            + (", ".join(f"{k} {v}" for k, v in sorted(subs.items())) if subs else "none yet")
        )
        jobs = job_counts(p)
        console.print(
            "  job queue   " + (", ".join(f"{k} {v}" for k, v in sorted(jobs.items())) if jobs else "empty")
        )


def print_board(board: Board, out: Console | None = None) -> None:
    out = out or console
    if not board.entries:
        out.print(f"{board.challenge.name}: no scored submission on the {board.split} board yet")
        return
    for track, entries in board.tracks.items():
        table = Table(
            title=f"{board.challenge.name}: {board.split} leaderboard, {track}", title_justify="left"
        )
        table.add_column("rank", justify="right")
        table.add_column("team")
        table.add_column("entries", justify="right")
        for m in board.metrics:
            table.add_column(f"{SHORT_LABELS.get(m, m)} [95% CI]", justify="right")
        table.add_column("vs next (p)", justify="right")
        for e in entries:
            cells: list[str | Text] = [str(e.rank), Text(e.team), str(e.n_submissions)]
            for m in board.metrics:
                sc = e.scores.get(m)
                cells.append(
                    f"{fmt_metric(sc.value, m)} [{fmt_metric(sc.low, m)}, {fmt_metric(sc.high, m)}]"
                    if sc
                    else ""
                )
            if e.vs_next is not None:
                star = " *" if e.vs_next.significant else ""
                cells.append(f"{e.vs_next.p_value:.3g} {e.vs_next.method}{star}")
            else:
                cells.append("")
            table.add_row(*cells)
        out.print(table)
    if any(e.vs_next is not None for e in board.entries):
        out.print("* the gap to the next entry is significant at p < 0.05 (paired test on the same images)")


@challenge_app.command("leaderboard")
def leaderboard_command(
    name: str,
    board: Annotated[BoardName, typer.Option("--board")] = BoardName.public,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Also write the board as CSV (formula-safe).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    organiser: Annotated[
        bool, typer.Option("--organiser", help="Show the private board before the end (organisers only).")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Print the public (or, after the end, the private) leaderboard."""
    with Project.open(project) as p:
        result = leaderboard(p, name, split=board.value, organiser=organiser)
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2))
        else:
            print_board(result)
        if csv_out is not None:
            csv_out.write_text(board_csv(result), encoding="utf-8")
            console.print(f"wrote {csv_out}")


@challenge_app.command("team-add")
def team_add_command(
    name: str,
    outside_data: Annotated[
        bool, typer.Option("--outside-data", help="The team trains on more than the release.")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Create a team (limits and visibility are per team)."""
    with Project.open(project) as p:
        create_team(p, name, outside_data=outside_data)
        console.print(
            f"created team {name!r}" + (" (outside-data track)" if outside_data else ""), markup=False
        )


@challenge_app.command("account-add")
def account_add_command(team: str, name: str, project: ProjectOpt = None) -> None:
    """Create a participant account in TEAM and print its API token (shown once; only its hash is kept)."""
    with Project.open(project) as p:
        acct, token = create_account(p, team, name)
        console.print(f"account {acct.name!r} (id {acct.id}) in team {acct.team!r}", markup=False)
        console.print("token (shown once, store it now):")
        typer.echo(token)


@challenge_app.command("teams")
def teams_command(project: ProjectOpt = None) -> None:
    """List teams and their number of accounts."""
    with Project.open(project) as p:
        table = Table("team", "track", "accounts")
        for name, outside, n in list_teams(p):
            table.add_row(Text(name), "outside data" if outside else "provided data", str(n))
        console.print(table)


# -- submit -----------------------------------------------------------------------------------------


def _print_scores(status: dict[str, Any]) -> None:
    if status.get("error"):
        console.print(f"submission {status['id']} failed: {status['error']}", markup=False)
        if not status.get("counts_against_limit", True):
            console.print("(it does not count against the limit)")
        return
    for block in ("public", "private"):
        scores = status.get(block) or {}
        for m, sc in scores.items():
            console.print(
                f"  {block:7s} {m:32s} {fmt_metric(sc['value'], m)}  [95% CI {fmt_metric(sc['low'], m)}, "
                f"{fmt_metric(sc['high'], m)}]"
            )
    if status.get("ladder_improved") is False:
        console.print("  Ladder: no improvement over your team's last released score; nothing new released")


def _submit_http(url: str, challenge: str, token: str, data: bytes, wait: bool, timeout: float) -> None:
    import httpx

    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    try:
        r = httpx.post(
            f"{base}/api/challenges/{challenge}/submissions", content=data, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        raise InputError(f"cannot reach {base}: {exc}") from None
    if r.status_code != 202:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text[:200]
        raise InputError(f"the server refused the submission (HTTP {r.status_code}): {detail}")
    receipt = r.json()
    console.print(
        f"submission {receipt['id']} queued ({receipt['format']}, {receipt['bytes']:,} bytes); "
        f"team {receipt['team']!r} has {receipt['submissions_left_24h']} left in the last 24 h",
        markup=False,
    )
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = httpx.get(
            base + receipt["status_url"], headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        if s["status"] in ("scored", "failed"):
            console.print(f"submission {s['id']}: {s['status']}")
            _print_scores(s)
            return
        time.sleep(1.0)
    raise InputError(f"not scored after {timeout:.0f} s; is a worker running (`synsetforge worker`)?")


def submit_command(
    file: Annotated[Path, typer.Argument(help="Prediction file: ILSVRC text or Kaggle CSV.")],
    challenge: Annotated[str, typer.Option("--challenge", "-c", help="Challenge name.")],
    token: Annotated[str, typer.Option("--token", envvar="SYNSETFORGE_TOKEN", help="Participant token.")],
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="SYNSETFORGE_URL", help="Challenge server (default: the local project, -p)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the score.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait.")] = 300.0,
    project: ProjectOpt = None,
) -> None:
    """Submit a prediction file to a challenge, over HTTP (--url) or straight into a local project."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {file}") from None
    if url:
        _submit_http(url, challenge, token, data, wait, timeout)
        return
    with Project.open(project) as p:
        acct = authenticate(p, token)
        if acct is None:
            raise InputError("unknown participant token")
        receipt = submit(p, challenge, acct, data)
        console.print(
            f"submission {receipt.id} queued ({receipt.format}, {receipt.bytes:,} bytes); team {receipt.team!r} "
            f"has {receipt.usage.remaining} of {receipt.usage.limit} left in the last 24 h",
            markup=False,
        )
        if not wait:
            console.print(
                "a worker scores it: `synsetforge worker`; then `synsetforge challenge leaderboard`"
            )
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = team_submissions(p, challenge, acct.team_id, submission_id=receipt.id)[0]
            if view.status in ("scored", "failed"):
                console.print(f"submission {view.id}: {view.status}")
                _print_scores(view.to_json())
                return
            time.sleep(1.0)
        raise InputError(f"not scored after {timeout:.0f} s; is a worker running (`synsetforge worker`)?")


# -- worker -----------------------------------------------------------------------------------------


def worker_command(
    once: Annotated[bool, typer.Option("--once", help="Run the jobs queued now, then exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks at an empty queue.")] = 2.0,
    lease: Annotated[
        float, typer.Option("--lease", help="Seconds after which a silent worker's job is taken over.")
    ] = DEFAULT_LEASE.total_seconds(),
    project: ProjectOpt = None,
) -> None:
    """Score queued submissions (PostgreSQL: run as many as you like; SQLite: one)."""
    import threading

    from synsetforge.benchmark.worker import Outcome, run_worker, worker_name

    if lease <= 0:
        raise InputError(f"--lease must be positive, not {lease}")
    me = worker_name()
    stop = threading.Event()

    def show(o: Outcome) -> None:
        tail = f": {o.message}" if o.message else ""
        console.print(f"job {o.job_id} ({o.kind}) {o.status}{tail}", markup=False)

    with Project.open(project) as p:
        console.print(
            f"worker {me} on {p.dialect}; {'draining the queue' if once else f'polling every {poll:g} s'}"
        )
        try:
            n = run_worker(
                p, once=once, poll=poll, lease=timedelta(seconds=lease), worker=me, stop=stop, on_outcome=show
            )
        except KeyboardInterrupt:
            stop.set()
            console.print("stopped")
            return
        console.print(f"{n} jobs run")
