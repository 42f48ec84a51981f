"""Benchmark the hierarchy: command-line start-up, cold load time of WordNet 3.0 and LCA throughput.

Start-up: wall time of `synsetforge --help` and `synsetforge taxonomy show n02084071` in fresh processes,
next to `python -c pass` (the floor no command can beat). Goals: --help under 0.3 s, taxonomy show under 0.6 s
(best wall time; the CPU time, user + system, shows the cost when other processes share the cores).

Peer: NLTK's WordNet is not available offline, so the baseline is a plain-Python LCA (breadth-first ancestor
sets per query, intersected, no caching), the way one writes it without a precomputed closure. Every method
must return the same LCA; the script exits 1 if they disagree.

    python bench/taxonomy.py                       # 100,000 queries
    python bench/taxonomy.py --queries 10000 --reference-queries 2000 --loads 1
    python bench/taxonomy.py --startup-only        # just the command-line start-up times
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import deque

_COLD_LOAD = """
import resource, time
t0 = time.perf_counter()
from synsetforge.hierarchy.wordnet import load_wordnet
t1 = time.perf_counter()
h = load_wordnet()
t2 = time.perf_counter()
h.lca("n02084071", "n02121620")
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, len(h), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def cold_loads(runs: int) -> None:
    """Time import + load + first LCA (closure build) in fresh processes so nothing is cached."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD_LOAD], check=True, capture_output=True, text=True)
        imp, load, first, n, rss = out.stdout.split()
        rows.append((float(imp), float(load), float(first), int(n), int(rss)))
    med = [statistics.median(r[k] for r in rows) for k in range(3)]
    print(
        f"cold load ({runs} fresh processes, median): import {med[0]:.3f} s, load_wordnet {med[1]:.3f} s "
        f"({rows[0][3]} synsets), first lca incl. closure {med[2]:.3f} s; "
        f"peak RSS {max(r[4] for r in rows) / 1024:.0f} MiB"
    )
    best = min(r[1] for r in rows)
    print(f"load_wordnet best {best:.3f} s: {'OK' if best < 1.0 else 'SLOW'} (goal < 1 s)")


STARTUP_GOALS = {"--help": 0.3, "taxonomy show n02084071": 0.6}


def startup(runs: int) -> bool:
    """Median and best wall time of the CLI against `python -c pass`; True when both goals are met."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [sys.executable, "-m", "synsetforge", "--help"],
        "taxonomy show n02084071": [sys.executable, "-m", "synsetforge", "taxonomy", "show", "n02084071"],
    }
    env = {k: v for k, v in os.environ.items() if k != "SYNSETFORGE_PROJECT"}
    ok = True
    floor = 0.0
    for name, argv in commands.items():
        times, cpu = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        med, best = statistics.median(times), min(times)
        line = (
            f"start-up {name:<26} median {med:.3f} s, best {best:.3f} s, CPU {min(cpu):.3f} s ({runs} runs)"
        )
        if name == "python -c pass":
            floor = best
        else:
            goal = STARTUP_GOALS[name]
            ok &= best < goal
            line += (
                f", {best - floor:.3f} s above the floor: {'OK' if best < goal else 'SLOW'} (goal < {goal} s)"
            )
        print(line)
    return ok


def reference_lca(parents, height, depth, ids, a: int, b: int):
    """Plain Python, no caching: ancestor sets by BFS, intersect, lowest by (height, -depth, id)."""

    def up(start: int) -> set[int]:
        seen = {start}
        queue = deque([start])
        while queue:
            for p in parents[queue.popleft()]:
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
        return seen

    common = up(a) & up(b)
    if not common:
        return None
    return min(common, key=lambda i: (height[i], -depth[i], ids[i]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queries", type=int, default=100_000, help="random LCA queries (default 100000)")
    parser.add_argument(
        "--reference-queries",
        type=int,
        default=None,
        help="queries for the slow plain-Python baseline (default: same as --queries)",
    )
    parser.add_argument("--loads", type=int, default=3, help="fresh-process load timings (0 to skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--startup-runs", type=int, default=5, help="fresh-process CLI timings (0 to skip)")
    parser.add_argument("--startup-only", action="store_true", help="time only the command-line start-up")
    args = parser.parse_args()
    if args.startup_runs or args.startup_only:
        fast = startup(max(args.startup_runs, 1))
        if args.startup_only:
            return 0 if fast else 1
    n_ref = args.reference_queries if args.reference_queries is not None else args.queries

    if args.loads:
        cold_loads(args.loads)

    from synsetforge.hierarchy.wordnet import load_wordnet

    h = load_wordnet()
    ids = h.ids
    rng = random.Random(args.seed)
    pairs = [(rng.randrange(len(ids)), rng.randrange(len(ids))) for _ in range(args.queries)]
    a_ids = [ids[a] for a, _ in pairs]
    b_ids = [ids[b] for _, b in pairs]

    t = time.perf_counter()
    h.lca(ids[0], ids[1])  # builds depths, heights and the ancestor closure once
    h.lca_batch(ids[:1], ids[1:2])  # and its CSR arrays
    prep = time.perf_counter() - t

    t = time.perf_counter()
    scalar = [h.lca(a, b) for a, b in zip(a_ids, b_ids, strict=True)]
    t_scalar = time.perf_counter() - t

    t = time.perf_counter()
    batch_ids, batch_heights = h.lca_batch(a_ids, b_ids)
    t_batch = time.perf_counter() - t

    a_idx, b_idx = h.indexes_of(a_ids), h.indexes_of(b_ids)
    t = time.perf_counter()
    h.lca_indexes(a_idx, b_idx)
    t_idx = time.perf_counter() - t

    parents = [tuple(h.index_of(p) for p in h.parents(s)) for s in ids]
    height = [h.height(s) for s in ids]
    depth = [h.depth(s) for s in ids]
    t = time.perf_counter()
    reference = [reference_lca(parents, height, depth, ids, a, b) for a, b in pairs[:n_ref]]
    t_ref = time.perf_counter() - t

    agree_batch = all(
        s is not None and s[0] == bid and s[1] == int(bh)
        for s, bid, bh in zip(scalar, batch_ids, batch_heights.tolist(), strict=True)
    )
    agree_ref = all(
        s is not None and r is not None and ids[r] == s[0]
        for s, r in zip(scalar[:n_ref], reference, strict=True)
    )
    qps_scalar = args.queries / t_scalar
    qps_batch = args.queries / t_batch
    qps_ref = n_ref / t_ref
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"closure build (depth, height, ancestor closure + CSR): {prep:.3f} s")
    print(f"lca (scalar)      : {args.queries} queries in {t_scalar:.3f} s = {qps_scalar:,.0f} queries/s")
    print(f"lca_batch (numpy) : {args.queries} queries in {t_batch:.3f} s = {qps_batch:,.0f} queries/s")
    print(f"lca_indexes (numpy, index arrays in and out): {args.queries / t_idx:,.0f} queries/s")
    print(
        f"reference (plain Python, BFS per query): {n_ref} queries in {t_ref:.3f} s"
        f" = {qps_ref:,.0f} queries/s"
    )
    print(f"ratio vs reference: scalar {qps_scalar / qps_ref:.1f}x, batch {qps_batch / qps_ref:.1f}x")
    print(
        f"agreement: batch == scalar on {args.queries}: {agree_batch}; "
        f"reference == scalar on {n_ref}: {agree_ref}"
    )
    print(f"peak RSS {rss:.0f} MiB")
    return 0 if agree_batch and agree_ref else 1


if __name__ == "__main__":
    raise SystemExit(main())
