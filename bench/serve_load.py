"""Load test of the crowd web app: 100 simulated workers over HTTP against `synsetforge serve`, on projects of
10k to 1M candidates, SQLite and PostgreSQL, with CPU per task for the server and the database.

    .venv/bin/python bench/serve_load.py                                   # 30k candidates, both backends
    .venv/bin/python bench/serve_load.py --sizes 10k,100k,1m               # flatness sweep (ratios to 10k)
    .venv/bin/python bench/serve_load.py --sizes 100k --rebuilds           # table rebuilds during the run
    .venv/bin/python bench/serve_load.py --peer HEAD~3 --sizes 30k         # same load on another commit
    .venv/bin/python bench/serve_load.py --think 2 --seconds 60            # 2 s (+-50%) per task to answer
                                                                           # (first requests spread over 2 s;
                                                                           # --burst: all at once)
    .venv/bin/python bench/serve_load.py --code 73fc4c1 --sizes 10k        # measure a commit, not the checkout

Requests still in flight `--drain` seconds (60) after the measured phase are cut and said so; their
submissions count as unanswered (their votes may be stored, never twice).

Per run (one backend, one size, one code tree):
1. Project: `Project.init` (the code under test's migrations), then the rows written straight into the
   schema in bulk (SQLite: one transaction with synchronous=OFF for the build only; PostgreSQL: COPY into a
   fresh database created on the server and dropped afterwards): `--synsets` synsets, one image row per
   candidate sharing 4 placeholder blobs, candidates (20% good), ground truth and 20 gold images per synset.
   Not through collection: a 1M-candidate project builds in well under a minute.
2. Warm phase: the initial rounds are done: every initial-subset image (the first 5% of each synset in
   the consensus' hash order) gets `initial_votes` votes from 10 warm-up workers (accuracy 0.8), inserted
   in bulk; then the code under test's `CrowdService.refresh()` brings decisions (and whatever state it
   keeps) up to date and ANALYZE runs. With `--rebuilds`, each synset also gets single votes on open
   images up to just below its next table rebuild point (the table is rebuilt at each ~20% growth of a
   synset's votes), so rebuilds happen early in the measured phase.
3. Measured phase: the server (`synsetforge serve --workers N`, N = `--server-workers` on PostgreSQL, 1 on
   SQLite, which has one writer; a peer tree without that option runs `uvicorn --factory --workers N`) and
   `--workers` clients (httpx async, one coroutine each): ask for a task, optionally think, answer it like a
   SimulatedWorker (accuracy 0.8) from ground truth, submit, repeat for `--seconds`. Then every
   acknowledged vote is checked in the store: each (image, worker) present exactly once, nothing else.

Printed per run: votes/s, next-task and submit p50/p99 and the slowest request, CPU ms per submitted task
of the server processes (utime+stime from /proc over the measured phase) and of the database (PostgreSQL:
the backends of the run's database, found in pg_stat_activity, and those that exited meanwhile, from the
postmaster's reaped children; SQLite runs inside the server process, so its CPU is in the server's
figure) and of the load generator itself (it shares the cores: when it doubles, the machine disturbed the
run), server memory peak (sum of VmHWM of the server processes), rebuild points crossed. At the end a table
of all runs, with ratios to the smallest size (flatness) and to the peer run where there is one, and the
must-show checks that apply (PostgreSQL against SQLite only without --think: with think time the offered
load sets votes/s). CPU figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
PRECISION = 0.2  # share of good candidates
GOLD_PER_SYNSET = 20
WARM_WORKERS = 10
ACCURACY = 0.8
TICK = os.sysconf("SC_CLK_TCK")
GROWTH = 1.2  # crowd.consensus.REBUILD_GROWTH (a peer tree may differ; only --rebuilds' warm-up uses it)


# -- sizes and small helpers ---------------------------------------------------------------------------


def parse_size(text: str) -> int:
    t = text.strip().lower().replace("_", "").replace(",", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        value = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise SystemExit(f"not a size: {text!r} (examples: 10k, 100k, 1m, 30000)") from None
    if value < 1000:
        raise SystemExit(f"size {text!r}: at least 1000 candidates")
    return value


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


_M64 = np.uint64((1 << 64) - 1)


def unit_hash(ids: np.ndarray) -> np.ndarray:
    """crowd.consensus.unit_hash vectorised (splitmix64 finaliser; uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.astype(np.float64) / 2.0**64


def rebuild_bucket(n: int) -> int:
    """crowd.consensus._log_bucket: the table is rebuilt when this changes (each ~20% more votes)."""
    return int(math.log(max(n, 1)) / math.log(GROWTH))


def next_rebuild_point(n: int) -> int:
    """The smallest vote count above `n` in the next bucket."""
    k = rebuild_bucket(n)
    m = max(int(GROWTH ** (k + 1)) - 2, n + 1)
    while rebuild_bucket(m) <= k:
        m += 1
    return m


# -- steps run under the code tree being measured (its synsetforge on PYTHONPATH) -------------------------


def step_init(root: str, db: str) -> None:
    """Create the project with the tree's migrations; store 4 placeholder JPEGs; print their blob keys."""
    import io

    from PIL import Image

    from synsetforge.store import Project

    with Project.init(Path(root), db=db or None) as p:
        keys = []
        for i in range(4):
            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (40 * i, 120, 200 - 40 * i)).save(buf, "JPEG", quality=80)
            keys.append(p.blobs.put(buf.getvalue()))
        print(json.dumps({"blobs": keys, "url": str(p.engine.url.render_as_string(hide_password=False))}))


def step_warm(root: str, workers: int) -> None:
    """Invite the load workers and an admin; refresh every decision from the bulk-inserted votes."""
    import synsetforge
    from synsetforge.crowd.service import CrowdService
    from synsetforge.store import Project

    with Project.open(Path(root)) as p:
        svc = CrowdService(p)
        t0 = time.perf_counter()
        changed = svc.refresh()
        refresh_s = time.perf_counter() - t0
        tokens = [(new.worker_id, new.token) for new in (svc.invite(f"load{i}") for i in range(workers))]
        admin = svc.create_token("admin", "serve-load")
    print(
        json.dumps(
            {"tokens": tokens, "admin": admin, "refresh_s": refresh_s, "changed": changed,
             "code": str(Path(synsetforge.__file__).resolve().parent)}
        )
    )  # fmt: skip


# -- the code trees: this checkout and an optional peer ------------------------------------------------


@dataclass
class Code:
    name: str  # "this" or "peer <rev>"
    src: Path | None  # folder to put first on PYTHONPATH (None: the installed synsetforge)
    has_serve_workers: bool

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, **extra}
        if self.src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.src), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def step(self, *argv: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, str(HERE), "--step", *argv], env=self.env(), capture_output=True, text=True
        )
        if out.returncode != 0:  # the end of its traceback, long lines (SQL with their parameters) cut
            sys.stderr.write("\n".join(line[:400] for line in out.stderr.strip().splitlines()[-25:]) + "\n")
            raise SystemExit(f"{self.name}: setup step {argv[0]} failed")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def peer_code(rev: str, keep: list[Path]) -> Code:
    """A peer tree: an existing folder with src/synsetforge, or a git revision checked out in a temporary
    worktree (removed at the end)."""
    path = Path(rev)
    if not (path / "src" / "synsetforge").is_dir():
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True
        )
        if sha.returncode != 0:
            raise SystemExit(f"--peer {rev}: neither a source tree nor a git revision")
        path = Path(tempfile.mkdtemp(prefix="sf-peer-")) / sha.stdout.strip()
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True
        )
        keep.append(path)
    return Code(f"peer {path.name}", path / "src", serve_has_workers(path / "src"))


def serve_has_workers(src: Path) -> bool:
    """Whether the tree's `synsetforge serve` takes --workers (older trees: uvicorn --workers instead)."""
    return "serve_workers" in (src / "synsetforge" / "crowd" / "cli.py").read_text()


def remove_worktrees(paths: list[Path]) -> None:
    for path in paths:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(path.parent, ignore_errors=True)


# -- building the project in bulk --------------------------------------------------------------------


@dataclass
class Build:
    truth: dict[int, bool]
    synsets: list[str]
    votes_per_synset: dict[str, int]
    warm_votes: int
    seconds: float


class BulkWriter:
    """Whole tables written fast: SQLite executemany in one transaction (synchronous=OFF for the build),
    PostgreSQL COPY. Columns the bench does not give get the current schema's Python-side defaults."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, inspect

        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.engine = create_engine(url)
        self.columns = {t: [c["name"] for c in inspect(self.engine).get_columns(t)] for t in self._tables()}
        self.dropped: list[str] = []
        if self.sqlite:
            import sqlite3

            self.conn: Any = sqlite3.connect(self.engine.url.database or "")
            self.conn.execute("PRAGMA synchronous=OFF")
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            try:  # no per-row foreign-key triggers while loading rows that are consistent by construction
                self.conn.execute("SET session_replication_role = replica")
            except psycopg.Error:
                self.conn.rollback()  # not a superuser: the checks run, the build is slower

    def _tables(self) -> list[str]:
        from sqlalchemy import inspect

        return list(inspect(self.engine).get_table_names())

    def _default(self, table: str, column: str) -> tuple[bool, Any]:
        from synsetforge.store import schema

        model = schema.Base.metadata.tables.get(table)
        if model is None or column not in model.c:
            return False, None
        col = model.c[column]
        if col.default is None or col.default.is_sequence:
            return False, None
        arg = getattr(col.default, "arg", None)
        value = arg(None) if callable(arg) else arg
        return True, value

    def _cell(self, value: Any) -> Any:
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        if self.sqlite and isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        return value

    def write(
        self,
        table: str,
        names: Sequence[str],
        rows: Iterable[Sequence[Any]],
        const: dict[str, Any] | None = None,
    ) -> None:
        """Append rows to `table`: tuples in the order of `names` holding only ints, bools and plain strings
        (no tab, newline or backslash); `const` columns have one value for every row, other columns the
        current schema's Python-side default where it has one."""
        fixed = dict(const or {})
        for col in self.columns[table]:
            if col not in names and col not in fixed:
                has, value = self._default(table, col)
                if has:
                    fixed[col] = value
        cols = [*names, *fixed]
        quoted = ", ".join(f'"{c}"' for c in cols)
        self._drop_indexes(table)
        if self.sqlite:
            tail = tuple(self._cell(v) for v in fixed.values())
            marks = ", ".join("?" * len(cols))
            self.conn.executemany(
                f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', (tuple(row) + tail for row in rows)
            )
            return
        suffix = "".join("\t" + _copy_text(self._cell(v)) for v in fixed.values()) + "\n"
        with self.conn.cursor() as cur, cur.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
            lines: list[str] = []
            for row in rows:
                lines.append("\t".join(map(str, row)) + suffix)
                if len(lines) >= 50000:
                    copy.write("".join(lines))
                    lines.clear()
            copy.write("".join(lines))

    def _drop_indexes(self, table: str) -> None:
        """Drop the table's plain indexes (not those of keys and unique constraints) until `finish`: one
        sort per index after the load is much faster than maintaining them row by row."""
        if self.sqlite:
            rows = self.conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
                "AND sql NOT LIKE 'CREATE UNIQUE%'",
                (table,),
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = %s AND indexdef NOT LIKE 'CREATE UNIQUE%%'",
                (table,),
            ).fetchall()
        for name, sql in rows:
            self.conn.execute(f'DROP INDEX "{name}"')
            self.dropped.append(sql)

    def finish(self) -> None:
        """Commit, move PostgreSQL sequences past the ids written, refresh planner statistics."""
        for sql in self.dropped:
            self.conn.execute(sql)
        if not self.sqlite:
            with self.conn.cursor() as cur:
                for table in ("synsets", "sources", "images", "candidates", "workers", "votes"):
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"), false)'
                        if table != "synsets"
                        else "SELECT 1"
                    )
        self.conn.commit()
        if self.sqlite:
            self.conn.execute("ANALYZE")
            self.conn.commit()
        else:
            self.conn.autocommit = True
            self.conn.execute("ANALYZE")
        self.conn.close()
        self.engine.dispose()


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def build_project(url: str, blobs: list[str], size: int, n_synsets: int, rebuilds: bool) -> Build:
    """Synsets, images, candidates, ground truth, gold and the warm phase's votes, straight into the schema."""
    from synsetforge.crowd.settings import CrowdSettings

    settings = CrowdSettings()
    t0 = time.perf_counter()
    rng = np.random.default_rng(12345)
    w = BulkWriter(url)
    synsets = [f"x{9000000 + i:08d}" for i in range(n_synsets)]
    for i, sid in enumerate(synsets):
        lemmas = [f"bench_thing_{i}"]
        w.write("synsets", ["id", "gloss"], [(sid, f"bench synset {i}")], {"lemmas": lemmas, "parents": []})
    w.write("sources", ["id", "kind", "name"], [(1, "synthetic", "serve-load")], {"config": {}})
    ids = np.arange(1, size + 1, dtype=np.int64)
    synset_of = (ids - 1) * n_synsets // size  # contiguous blocks of ids per synset
    positive = rng.random(size) < PRECISION
    w.write(
        "images",
        ["id", "sha256", "blob"],
        ((i, f"{i:064x}", blobs[i % len(blobs)]) for i in ids.tolist()),
        {
            "width": 64,
            "height": 48,
            "orig_width": 64,
            "orig_height": 48,
            "orig_bytes": 0,
            "orig_format": "JPEG",
        },
    )
    w.write(
        "candidates",
        ["id", "synset_id", "key", "url", "image_id", "rank"],
        (
            (i, synsets[k], f"k{i}", f"synthetic://bench/{i}", i, i)
            for i, k in zip(ids.tolist(), synset_of.tolist(), strict=True)
        ),
        {"source_id": 1, "status": "stored", "transient": False, "attempts": 0},
    )
    w.write(
        "ground_truth",
        ["candidate_id", "positive"],
        zip(ids.tolist(), positive.tolist(), strict=True),
        {"boxes": []},
    )
    # gold: the first 10 good and 10 bad candidates of each synset
    gold: dict[int, bool] = {}
    for k in range(n_synsets):
        block = ids[synset_of == k]
        pos = block[positive[block - 1]][: GOLD_PER_SYNSET // 2]
        neg = block[~positive[block - 1]][: GOLD_PER_SYNSET - len(pos)]
        gold.update({int(c): True for c in pos} | {int(c): False for c in neg})
    w.write("gold", ["candidate_id", "answer"], sorted(gold.items()))
    w.write(
        "workers",
        ["id", "name"],
        [(i + 1, f"warm{i}") for i in range(WARM_WORKERS)],
        {"kind": "invite", "status": "active", "gold_correct": 0, "gold_total": 0},
    )
    # warm phase: the initial subset of each synset, `initial_votes` votes per image
    vote_rows: list[tuple[int, int, bool]] = []
    per_synset: dict[str, int] = {}
    need = settings.initial_votes
    for k, sid in enumerate(synsets):
        block = ids[(synset_of == k)]
        block = block[[int(c) not in gold for c in block]]
        order = block[np.argsort(unit_hash(block), kind="stable")]
        below = int(np.count_nonzero(unit_hash(block) < settings.initial_fraction))
        initial = order[: min(len(order), max(below, settings.initial_min))]
        labels = rng.random((len(initial), need)) < ACCURACY  # right answer with probability 0.8
        for row, cid in enumerate(initial.tolist()):
            good = bool(positive[cid - 1])
            for j in range(need):
                vote_rows.append((cid, j + 1, good == bool(labels[row, j])))
        count = len(initial) * need
        if rebuilds:  # single votes on open images, up to just below the next rebuild point
            target = next_rebuild_point(count) - 3
            if target <= count:
                target = next_rebuild_point(next_rebuild_point(count)) - 3
            rest = order[len(initial) :][: target - count]
            for cid in rest.tolist():
                right = rng.random() < ACCURACY
                vote_rows.append((cid, 1, bool(positive[cid - 1]) == right))
            count += len(rest)
        per_synset[sid] = count
    w.write(
        "votes",
        ["id", "candidate_id", "worker_id", "label"],
        ((n, c, wk, lab) for n, (c, wk, lab) in enumerate(vote_rows, start=1)),
        {"is_gold": False, "weight": 1.0},
    )
    w.finish()
    truth = {int(i): bool(p) for i, p in zip(ids, positive, strict=True)}
    return Build(truth, synsets, per_synset, len(vote_rows), time.perf_counter() - t0)


# -- measuring processes ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process in seconds (None once it is gone)."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICK


def proc_children_cpu_s(pid: int) -> float:
    """cutime + cstime: CPU of the process's children that exited and were reaped (0 when unreadable)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[13]) + int(fields[14])) / TICK


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def proc_hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(root: int) -> list[int]:
    """`root` and every descendant (uvicorn's worker processes, multiprocessing helpers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        ppid = _ppid(int(entry.name))
        if ppid is not None:
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


class CpuMeter:
    """CPU seconds of a changing set of processes between `start()` and `stop()`."""

    def __init__(self, pids: Any) -> None:
        self.pids = pids  # callable returning the current pids
        self.base: dict[int, float] = {}
        self.seconds = 0.0
        self.count = 0

    def start(self) -> None:
        self.base = {p: c for p in self.pids() if (c := proc_cpu_s(p)) is not None}

    def stop(self) -> None:
        now = {p: c for p in self.pids() if (c := proc_cpu_s(p)) is not None}
        self.count = len(now)
        self.seconds = sum(c - self.base.get(p, 0.0) for p, c in now.items())


class DatabaseCpuMeter(CpuMeter):
    """The run's PostgreSQL backends, those that exited during the phase included: a backend that closes
    (a pool's overflow connection given back) takes its CPU with it, and the postmaster, its parent, then
    counts it among its reaped children. Counted that way too: the short admin connections of the bench's
    own backend lookups (tiny), and a closing backend's CPU from before the phase (it started with the
    server: little)."""

    def start(self) -> None:
        super().start()
        self.parent = next((ppid for p in self.base if (ppid := _ppid(p))), None)
        self.reaped = proc_children_cpu_s(self.parent) if self.parent else 0.0

    def stop(self) -> None:
        super().stop()
        if self.parent:
            self.seconds += proc_children_cpu_s(self.parent) - self.reaped


def pg_backends(admin_dsn: str, dbname: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
        ).fetchall()
    return [int(r[0]) for r in rows]


# -- the load -----------------------------------------------------------------------------------------


@dataclass
class Stats:
    task_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acked: list[tuple[int, int]] = field(default_factory=list)
    tasks: int = 0
    empty: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    uncertain: list[tuple[int, int]] = field(default_factory=list)  # votes of submissions left unanswered
    cut: int = 0  # requests still waiting when the drain limit was reached
    slow: list[tuple[float, str, float]] = field(default_factory=list)  # (s into the phase, kind, ms) > 1 s
    start: float = 0.0


async def worker_loop(
    client: httpx.AsyncClient, token: str, worker_id: int, truth: dict[int, bool], deadline: float,
    stats: Stats, seed: int, think: float, stagger: bool = True,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    auth = {"Authorization": f"Bearer {token}"}
    if think > 0 and stagger:  # arrive spread over one think time, as a crowd already at work does
        await asyncio.sleep(think * rng.random())
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            r = await client.get("/api/v1/task", headers=auth)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.task_ms.append((time.perf_counter() - t0) * 1000)
        if stats.task_ms[-1] > 1000:
            stats.slow.append((time.monotonic() - stats.start, "next-task", stats.task_ms[-1]))
        if r.status_code != 200:
            stats.errors[f"task HTTP {r.status_code}"] += 1
            if r.status_code == 403:
                return  # blocked
            continue
        task = r.json()["task"]
        if task is None:
            stats.empty += 1
            await asyncio.sleep(0.2)
            continue
        if think > 0:
            await asyncio.sleep(think * (0.5 + rng.random()))
        items = [int(it["candidate_id"]) for it in task["items"]]
        yes = [c for c in items if truth[c] == (rng.random() < ACCURACY)]
        t0 = time.perf_counter()
        try:
            r = await client.post(f"/api/v1/tasks/{task['task_id']}/submit", json={"yes": yes}, headers=auth)
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            # no answer: the votes may or may not be stored (the store check allows either, never twice)
            stats.uncertain.extend((c, worker_id) for c in items)
            if isinstance(exc, asyncio.CancelledError):
                raise
            stats.errors[type(exc).__name__] += 1
            continue
        stats.submit_ms.append((time.perf_counter() - t0) * 1000)
        if stats.submit_ms[-1] > 1000:
            stats.slow.append((time.monotonic() - stats.start, "submit", stats.submit_ms[-1]))
        if r.status_code == 200:
            stats.tasks += 1
            stats.acked.extend((c, worker_id) for c in items)
        else:
            stats.errors[f"submit HTTP {r.status_code}"] += 1


async def drive(
    url: str, tokens: list[tuple[int, str]], truth: dict[int, bool], seconds: float, think: float,
    on_start: Any, on_stop: Any, drain: float, stagger: bool = True,
) -> tuple[Stats, float]:  # fmt: skip
    """Run the workers for `seconds`; requests in flight then get `drain` more seconds before they are cut."""
    stats = Stats()
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        on_start()
        start = stats.start = time.monotonic()
        loops = [
            worker_loop(client, tok, wid, truth, start + seconds, stats, wid, think, stagger)
            for wid, tok in tokens
        ]
        running = [asyncio.ensure_future(loop) for loop in loops]
        _done, late = await asyncio.wait(running, timeout=seconds + drain)
        for future in late:  # still waiting for an answer at the drain limit
            future.cancel()
        stats.cut = len(late)
        results = await asyncio.gather(*running, return_exceptions=True)
        elapsed = time.monotonic() - start
        for outcome in results:
            if isinstance(outcome, Exception):
                raise outcome
        on_stop()
    return stats, elapsed


def start_server(code: Code, root: Path, port: int, procs: int, log: Path) -> subprocess.Popen[bytes]:
    env = code.env(SYNSETFORGE_PROJECT=str(root))
    if code.has_serve_workers:
        cmd = [sys.executable, "-m", "synsetforge", "serve", "--port", str(port), "--workers", str(procs)]
    else:
        cmd = [
            sys.executable, "-m", "uvicorn", "--factory", "synsetforge.web.app:create_app_from_env",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
            "--workers", str(procs),
        ]  # fmt: skip
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(f"the server exited with {proc.returncode}: {' '.join(cmd)}\n" + "\n".join(tail))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                time.sleep(1.0 if procs > 1 else 0.0)  # let every worker process come up
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("the server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout|Exit)\b.*")


def server_error_summary(log: Path) -> str:
    """How many tracebacks the server logged, and the most common exception line."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
    if not tracebacks:
        return "no tracebacks"
    kinds = Counter(line[:160] for line in lines if _EXC_LINE.match(line))
    common, n = kinds.most_common(1)[0] if kinds else ("?", 0)
    return f"{tracebacks} tracebacks, most often ({n}x): {common}"


def check_store(
    url: str, acked: list[tuple[int, int]], uncertain: list[tuple[int, int]], load_ids: set[int]
) -> tuple[bool, str]:
    """Every acknowledged (image, worker) vote stored exactly once; nothing else stored, except possibly the
    votes of submissions that got no answer (connection error, or cut at the drain limit), each at most once."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT candidate_id, worker_id FROM votes WHERE worker_id > :n"), {"n": WARM_WORKERS}
        )
        stored = [(int(c), int(w)) for c, w in rows if int(w) in load_ids]
    engine.dispose()
    counts = Counter(stored)
    maybe = set(uncertain)
    dupes = sum(1 for n in counts.values() if n > 1)
    missing = sum(1 for pair in acked if counts.get(pair, 0) != 1)
    known = set(acked)
    extra = sum(1 for pair in counts if pair not in known and pair not in maybe)
    unanswered = sum(1 for pair in counts if pair in maybe)
    ok = dupes == 0 and missing == 0 and extra == 0 and len(set(acked)) == len(acked)
    return ok, (
        f"{len(acked):,} acknowledged votes, {len(stored):,} stored, {missing} missing, {dupes} duplicated, "
        f"{extra} extra" + (f"; {unanswered} of {len(maybe)} unanswered votes stored" if maybe else "")
    )


def synset_vote_counts(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.synset_id, COUNT(*) FROM votes v JOIN candidates c ON c.id = v.candidate_id "
                "WHERE v.weight > 0 GROUP BY c.synset_id"
            )
        ).all()
    engine.dispose()
    return {str(s): int(n) for s, n in rows}


# -- one run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    size: int
    code: str
    procs: int
    votes_s: float
    task_p50: float
    task_p99: float
    submit_p50: float
    submit_p99: float
    max_ms: float
    server_cpu_ms: float
    db_cpu_ms: float | None
    client_cpu_ms: float  # the load generator's own CPU: it shares the machine's cores with the server
    server_mib: float
    rebuild_points: int
    ok: bool
    cut: int  # requests cut at the drain limit (then max_ms is a lower bound)


def run_one(backend: str, size: int, code: Code, args: argparse.Namespace) -> Result:
    import psycopg

    label = f"{backend} {size_label(size)} [{code.name}]"
    procs = args.server_workers if backend == "postgresql" else 1
    dbname = None
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        root = Path(tmp) / "project"
        db = ""
        if backend == "postgresql":
            dbname = "sfbench_" + uuid.uuid4().hex[:12]
            with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            db = args.pg_dsn.rsplit("/", 1)[0] + "/" + dbname
        try:
            t0 = time.perf_counter()
            init = code.step("init", str(root), db)
            url = init["url"]
            build = build_project(url, init["blobs"], size, args.synsets, args.rebuilds)
            warm = code.step("warm", str(root), str(args.workers))
            tokens = [(int(a), str(b)) for a, b in warm["tokens"]]
            print(
                f"{label}: project built in {build.seconds:.1f} s ({size:,} candidates in {args.synsets} synsets,"
                f" {build.warm_votes:,} warm-phase votes), decisions refreshed in {warm['refresh_s']:.1f} s,"
                f" ready in {time.perf_counter() - t0:.1f} s; code {warm['code']}",
                flush=True,
            )
            before = synset_vote_counts(url)
            port = free_port()
            log = Path(tmp) / "server.log"
            server = start_server(code, root, port, procs, log)
            server_cpu = CpuMeter(lambda: process_tree(server.pid))
            db_cpu = DatabaseCpuMeter(lambda: pg_backends(args.pg_dsn, dbname) if dbname else [])

            client_cpu = [0.0, 0.0]

            def measure_start() -> None:
                server_cpu.start()
                db_cpu.start()
                client_cpu[0] = time.process_time()

            def measure_stop() -> None:
                server_cpu.stop()
                db_cpu.stop()
                client_cpu[1] = time.process_time() - client_cpu[0]

            try:
                stats, elapsed = asyncio.run(
                    drive(
                        f"http://127.0.0.1:{port}", tokens, build.truth, args.seconds, args.think,
                        measure_start, measure_stop, args.drain, not args.burst,
                    )
                )  # fmt: skip
                server_mib = sum(proc_hwm_mib(p) for p in process_tree(server.pid))
                server_pids = len(process_tree(server.pid))
            finally:
                stop_server(server)
            ok, detail = check_store(url, stats.acked, stats.uncertain, {w for w, _ in tokens})
            after = synset_vote_counts(url)
            server_errors = server_error_summary(log)
        finally:
            if dbname is not None:
                with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    crossed = sum(rebuild_bucket(after.get(s, 0)) - rebuild_bucket(before.get(s, 0)) for s in after)
    tasks = stats.tasks or math.nan  # no finished task: no CPU per task
    every = stats.task_ms + stats.submit_ms
    slowest = max(every, default=math.nan)
    if stats.cut:  # some requests waited longer than the drain limit: the slowest is at least that
        slowest = max(slowest if not math.isnan(slowest) else 0.0, args.drain * 1000)
    result = Result(
        backend, size, code.name, procs, len(stats.acked) / elapsed, pct(stats.task_ms, 50),
        pct(stats.task_ms, 99), pct(stats.submit_ms, 50), pct(stats.submit_ms, 99), slowest,
        server_cpu.seconds * 1000 / tasks, db_cpu.seconds * 1000 / tasks if dbname else None,
        client_cpu[1] * 1000 / tasks, server_mib, crossed, ok, stats.cut,
    )  # fmt: skip
    print(
        f"{label}: {args.workers} workers, {procs} server process(es), {elapsed:.1f} s: "
        f"{result.votes_s:,.0f} votes/s, {stats.tasks / elapsed:.1f} tasks/s ({stats.tasks:,} tasks, "
        f"{stats.empty} empty polls, think {args.think:g} s)\n"
        f"{label}: next-task p50 {result.task_p50:.0f} ms p99 {result.task_p99:.0f} ms; submit p50 "
        f"{result.submit_p50:.0f} ms p99 {result.submit_p99:.0f} ms; slowest request {'>=' if stats.cut else ''}{result.max_ms:.0f} ms\n"
        f"{label}: CPU per task: server {result.server_cpu_ms:.1f} ms ({server_pids} processes)"
        + (
            f", database {result.db_cpu_ms:.1f} ms ({db_cpu.count} PostgreSQL backends)"
            if result.db_cpu_ms is not None
            else ", database: SQLite runs inside the server process (included in the server's figure)"
        )
        + f"; load generator {result.client_cpu_ms:.1f} ms (this process, on the same cores)"
        + f"; server memory peak {server_mib:.0f} MiB (sum of VmHWM)\n"
        f"{label}: table rebuild points crossed: {crossed} (each ~20% growth of a synset's votes); "
        f"errors {dict(stats.errors) or 'none'}"
        + (
            f"; {stats.cut} requests cut, still unanswered {args.drain:g} s after the phase"
            if stats.cut
            else ""
        )
        + "\n"
        f"{label}: requests over 1 s: {_slow_summary(stats.slow)}\n"
        f"{label}: server log: {server_errors}\n"
        f"{label}: store check {'OK' if ok else 'FAILED'}: {detail}",
        flush=True,
    )
    return result


# -- the summary ----------------------------------------------------------------------------------------


def _slow_summary(slow: list[tuple[float, str, float]]) -> str:
    """When in the phase the requests over 1 s finished (10 s bins), and their kinds."""
    if not slow:
        return "none"
    bins = Counter(int(t // 10) * 10 for t, _k, _ms in slow)
    kinds = Counter(k for _t, k, _ms in slow)
    when = ", ".join(f"{b}-{b + 10} s: {n}" for b, n in sorted(bins.items()))
    return f"{len(slow)} ({dict(kinds)}); finished at {when}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "-"
    value = a / b
    return f"x{value:.2f}" if value >= 0.1 else f"x{value:.2g}"


def summary(results: list[Result], args: argparse.Namespace) -> list[str]:
    """The table of every run and the must-show checks; returns the failed checks."""
    head = (
        f"{'backend':<10} {'size':>5} {'code':<14} {'procs':>5} {'votes/s':>8} {'next p50':>8} {'p99':>6} "
        f"{'submit p50':>10} {'p99':>6} {'max ms':>7} {'srv ms/task':>11} {'db ms/task':>10} {'srv MiB':>7} "
        f"{'rebuilds':>8}  {'next p50':>8} {'submit p50':>10}"
    )
    print("\nall runs (latencies in ms; CPU ms per submitted task; ratios: next-task and submit p50 to the "
          "smallest size of the same backend and code)")  # fmt: skip
    print(head)
    failed: list[str] = []
    smallest = min(r.size for r in results)
    for r in results:
        base = next(
            (b for b in results if b.backend == r.backend and b.code == r.code and b.size == smallest), None
        )
        db = "in server" if r.db_cpu_ms is None else f"{r.db_cpu_ms:.1f}"
        print(
            f"{r.backend:<10} {size_label(r.size):>5} {r.code[:14]:<14} {r.procs:>5} {r.votes_s:>8,.0f} "
            f"{r.task_p50:>8.0f} {r.task_p99:>6.0f} {r.submit_p50:>10.0f} {r.submit_p99:>6.0f} {('>' if r.cut else '') + f'{r.max_ms:.0f}':>7} "
            f"{r.server_cpu_ms:>11.1f} {db:>10} {r.server_mib:>7.0f} {r.rebuild_points:>8}  "
            f"{ratio(r.task_p50, base.task_p50 if base else None):>8} "
            f"{ratio(r.submit_p50, base.submit_p50 if base else None):>10}"
        )
        if not r.ok:
            failed.append(
                f"{r.backend} {size_label(r.size)} [{r.code}]: acknowledged votes and store disagree"
            )
    peers = [r for r in results if r.code != "this"]
    if peers:
        print(
            "\nthis code / peer, same backend and size (x < 1 on latency and CPU is better, x > 1 on votes/s)"
        )
        for p in peers:
            t = next(
                (r for r in results if r.code == "this" and (r.backend, r.size) == (p.backend, p.size)), None
            )
            if t is None:
                continue
            print(
                f"{t.backend:<10} {size_label(t.size):>5}: votes/s {ratio(t.votes_s, p.votes_s)}, next-task p50 "
                f"{ratio(t.task_p50, p.task_p50)}, submit p50 {ratio(t.submit_p50, p.submit_p50)}, submit p99 "
                f"{ratio(t.submit_p99, p.submit_p99)}, max {ratio(t.max_ms, p.max_ms)}, server CPU/task "
                f"{ratio(t.server_cpu_ms, p.server_cpu_ms)}, db CPU/task {ratio(t.db_cpu_ms, p.db_cpu_ms)}, "
                f"memory peak {t.server_mib:.0f} / {p.server_mib:.0f} MiB"
            )
    print("\nmust-show checks (issue 10) that apply to these runs:")
    mine = [r for r in results if r.code == "this"]
    for r in mine:
        base = next((b for b in mine if b.backend == r.backend and b.size == smallest), None)
        if base is None or r.size < 100_000 or smallest > 10_000:
            continue
        for what, a, b in (("next-task p50", r.task_p50, base.task_p50), ("submit p50", r.submit_p50,
                                                                           base.submit_p50)):  # fmt: skip
            good = a <= 1.5 * b
            good = good and not math.isnan(a) and not r.cut
            line = f"{r.backend} {size_label(r.size)}: {what} {a:.0f} ms = {ratio(a, b)} of {size_label(smallest)}"
            print(f"  {'OK  ' if good else 'FAIL'} {line} (at most x1.5)")
            if not good:
                failed.append(line)
    for r in mine:
        if r.backend == "sqlite" and 25_000 <= r.size <= 35_000 and args.think == 0:
            good = r.votes_s >= 1000 and r.submit_p99 < 250
            line = f"sqlite {size_label(r.size)}: {r.votes_s:,.0f} votes/s, submit p99 {r.submit_p99:.0f} ms"
            print(f"  {'OK  ' if good else 'FAIL'} {line} (at least 1,000 votes/s, p99 under 250 ms)")
            if not good:
                failed.append(line)
        if args.rebuilds:
            good = r.max_ms < 1000 and r.rebuild_points > 0 and not r.cut
            line = (f"{r.backend} {size_label(r.size)} with {r.rebuild_points} rebuild points crossed: slowest "
                    f"request {r.max_ms:.0f} ms")  # fmt: skip
            print(f"  {'OK  ' if good else 'FAIL'} {line} (under 1 s, at least one rebuild)")
            if not good:
                failed.append(line)
    for size in sorted({r.size for r in mine}):
        lite = next((r for r in mine if r.backend == "sqlite" and r.size == size), None)
        pg = next((r for r in mine if r.backend == "postgresql" and r.size == size), None)
        if lite and pg:
            line = (f"{size_label(size)}: postgresql --workers {pg.procs} {pg.votes_s:,.0f} votes/s vs sqlite "
                    f"{lite.votes_s:,.0f} ({ratio(pg.votes_s, lite.votes_s)})")  # fmt: skip
            if args.think > 0:  # the workers' think time sets the rate, not the server: no capacity compared
                print(f"  --   {line} (not a capacity check: with --think the offered load sets votes/s)")
                continue
            good = pg.votes_s >= lite.votes_s and pg.votes_s > 0
            print(f"  {'OK  ' if good else 'FAIL'} {line} (PostgreSQL at least as fast)")
            if not good:
                failed.append(line)
    for r in mine:
        print(
            f"  {'OK  ' if r.ok else 'FAIL'} {r.backend} {size_label(r.size)}: every acknowledged vote stored once"
        )
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="30k", help="candidates per project, comma-separated (10k,100k,1m)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured phase per run")
    parser.add_argument("--workers", type=int, default=100, help="concurrent simulated crowd workers")
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds requests in flight may still take after the phase"
    )
    parser.add_argument("--server-workers", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument("--synsets", type=int, default=6, help="synsets per project (sizes split evenly)")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds a worker looks at a task")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="with --think: every worker asks at once at the start (default: first requests spread over one"
        " think time, as a crowd already at work arrives)",
    )
    parser.add_argument(
        "--rebuilds", action="store_true", help="start each synset just below a rebuild point"
    )
    parser.add_argument(
        "--peer", help="git revision or source tree to run the same load against, side by side"
    )
    parser.add_argument("--code", help="git revision or source tree to measure instead of this checkout")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("SYNSETFORGE_TEST_PG", "postgresql://127.0.0.1:5432/test"),
        help="PostgreSQL to create each run's fresh database on (trust auth, CREATEDB)",
    )  # fmt: skip
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, *rest = args.step
        if name == "init":
            step_init(rest[0], rest[1] if len(rest) > 1 else "")
        elif name == "warm":
            step_warm(rest[0], int(rest[1]))
        return
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {b!r}: sqlite or postgresql")
    worktrees: list[Path] = []
    codes = [Code("this", REPO / "src", serve_has_workers(REPO / "src"))]
    results: list[Result] = []
    t0 = time.monotonic()
    try:
        if args.code:
            other = peer_code(args.code, worktrees)
            codes = [Code("this", other.src, other.has_serve_workers)]
        if args.peer:
            codes.append(peer_code(args.peer, worktrees))
        for backend in backends:
            for size in sizes:
                for code in codes:
                    results.append(run_one(backend, size, code, args))
    finally:
        remove_worktrees(worktrees)
    failed = summary(results, args)
    print(f"\nwhole bench {time.monotonic() - t0:.0f} s on {os.cpu_count()} CPUs (load average now "
          f"{os.getloadavg()[0]:.1f}; CPU and latency figures on a shared machine are noisy)")  # fmt: skip
    if failed:
        raise SystemExit(f"{len(failed)} check(s) failed")


if __name__ == "__main__":
    main()
