"""Dawid-Skene: synsetforge vs crowd-kit on the same simulated votes, each in its own child process.

Run under the peer venv (crowd-kit is not a synsetforge dependency):

    python3 -m venv .bench-venv && .bench-venv/bin/pip install -r bench/requirements-peers.txt
    .bench-venv/bin/pip install --no-deps -e .
    .bench-venv/bin/python bench/aggregate.py                       # 1,000,000 votes
    .bench-venv/bin/python bench/aggregate.py --tasks 10000         # smaller

Prints: % identical labels, each side's accuracy against the simulated truth, EM iterations, fit time
(median of --repeats fits, from the DataFrame to labels, key factorisation included), votes/s and the
speed ratio, and peak memory (ru_maxrss of each child; also the growth over the child's
baseline after imports and data loading). Both sides get the same pandas DataFrame and the same
max_iter/tol (crowd-kit's defaults n_iter=100, tol=1e-5); each stops on its own convergence test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def maxrss_mib() -> float:
    """Peak resident set of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_votes(tasks: int, per_task: int, workers: int, seed: int) -> dict[str, np.ndarray]:
    """Binary votes: 40% positives; workers 80% honest (accuracy ~ Beta(8, 2)), 10% spammers (half always
    yes, half random), 5% adversaries (answer wrong 80% of the time), 5% near-random honest (0.55)."""
    rng = np.random.default_rng(seed)
    truth = rng.random(tasks) < 0.4
    kind = rng.choice(4, size=workers, p=[0.80, 0.10, 0.05, 0.05])  # honest, spammer, adversary, weak
    acc = np.where(kind == 0, rng.beta(8, 2, workers), np.where(kind == 2, 0.2, 0.55))
    always_yes = (kind == 1) & (rng.random(workers) < 0.5)
    random_spam = (kind == 1) & ~always_yes
    task = np.repeat(np.arange(tasks, dtype=np.int64), per_task)
    # distinct workers per task: a random offset plus a per-task stride walk over a shuffled worker list
    perm = rng.permutation(workers)
    start = rng.integers(0, workers, size=tasks)
    step = np.arange(per_task)
    worker = perm[(start[:, None] + step[None, :] * 7919) % workers].reshape(-1)
    u = rng.random(task.shape[0])
    t = truth[task]
    label = np.where(u < acc[worker], t, ~t)
    label = np.where(always_yes[worker], True, label)
    label = np.where(random_spam[worker], rng.random(task.shape[0]) < 0.5, label)
    return {"task": task, "worker": worker, "label": label, "truth": truth}


def child(
    side: str, data_path: str, out_path: str, max_iter: int, tol: float, string_keys: bool, repeats: int
) -> None:
    z = np.load(data_path)
    df: Any
    try:
        import pandas as pd
    except ImportError:  # synsetforge alone (no peer venv): a dict of arrays is an accepted votes table
        df = {"task": z["task"], "worker": z["worker"], "label": z["label"]}
        if string_keys:
            df["task"] = np.char.add("t", df["task"].astype(str)).astype(object)
            df["worker"] = np.char.add("w", df["worker"].astype(str)).astype(object)
    else:
        df = pd.DataFrame({"task": z["task"], "worker": z["worker"], "label": z["label"]})
        if string_keys:
            df["task"] = "t" + df["task"].astype(str)
            df["worker"] = "w" + df["worker"].astype(str)
    n_tasks = int(z["truth"].shape[0])
    del z
    base = maxrss_mib()
    times = []
    for _ in range(repeats):
        if side == "ours":
            from synsetforge.crowd.aggregation import DawidSkene

            t0 = time.perf_counter()
            res = DawidSkene(max_iter=max_iter, tol=tol).fit_predict(df)
            times.append(time.perf_counter() - t0)
            keys, labels, iters = res.tasks, res.labels.astype(bool), res.n_iter
        else:
            from crowdkit.aggregation import DawidSkene as CrowdKitDS

            t0 = time.perf_counter()
            ck = CrowdKitDS(n_iter=max_iter, tol=tol)
            series = ck.fit_predict(df)
            times.append(time.perf_counter() - t0)
            keys, labels = series.index.to_numpy(), series.to_numpy().astype(bool)
            iters = len(ck.loss_history_)
    if string_keys:
        idx = np.asarray([int(k[1:]) for k in keys.tolist()])
    else:
        idx = np.asarray(keys, dtype=np.int64)
    out = np.zeros(n_tasks, dtype=np.int8) - 1
    out[idx] = labels
    np.save(out_path, out)
    stats = {"seconds": float(np.median(times)), "best": min(times), "iterations": iters}
    print(json.dumps({**stats, "maxrss_mib": maxrss_mib(), "base_mib": base, "repeats": repeats}))


def run_child(side: str, data: str, out: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", side, "--data", data, "--out", out]
    cmd += ["--max-iter", str(args.max_iter), "--tol", repr(args.tol), "--repeats", str(args.repeats)]
    if args.string_keys:
        cmd.append("--string-keys")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{side} child failed:\n{proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--votes-per-task", type=int, default=10)
    p.add_argument("--workers", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=100, help="EM iterations cap for both (crowd-kit n_iter)")
    p.add_argument("--tol", type=float, default=1e-5, help="ELBO tolerance for both (crowd-kit tol)")
    p.add_argument("--string-keys", action="store_true", help="task/worker ids as strings ('t17', 'w3')")
    p.add_argument("--repeats", type=int, default=3, help="fits per side; the median time is reported")
    p.add_argument("--child", choices=["ours", "crowdkit"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.data, args.out, args.max_iter, args.tol, args.string_keys, args.repeats)
        return

    n_votes = args.tasks * args.votes_per_task
    print(
        f"Dawid-Skene on {n_votes:,} binary votes ({args.tasks:,} tasks x {args.votes_per_task}, "
        f"{args.workers:,} workers incl. spammers/adversaries), seed {args.seed}; "
        f"{'string' if args.string_keys else 'integer'} keys"
    )
    print(f"both: max_iter={args.max_iter}, tol={args.tol:g} (crowd-kit defaults n_iter=100, tol=1e-5)")
    v = make_votes(args.tasks, args.votes_per_task, args.workers, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "votes.npz")
        np.savez(data, **v)
        stats, labels = {}, {}
        sides = ["ours", "crowdkit"]
        try:
            import crowdkit  # noqa: F401
        except ImportError:
            print("crowd-kit is not installed in this interpreter: run under .bench-venv (see docstring)")
            sides = ["ours"]
        for side in sides:
            out = os.path.join(tmp, f"{side}.npy")
            stats[side] = run_child(side, data, out, args)
            labels[side] = np.load(out)
    truth = v["truth"]
    for side in sides:
        s = stats[side]
        acc = float((labels[side] == truth).mean())
        print(
            f"{side:>9}: {s['seconds']:.3f} s fit (median of {args.repeats}, best {s['best']:.3f} s), "
            f"{n_votes / s['seconds']:,.0f} votes/s, "
            f"{int(s['iterations'])} EM iterations, accuracy vs truth {acc:.4%}, "
            f"peak RSS {s['maxrss_mib']:.0f} MiB (+{s['maxrss_mib'] - s['base_mib']:.0f} MiB over the child's "
            f"{s['base_mib']:.0f} MiB after loading)"
        )
    if len(sides) == 2:
        same = float((labels["ours"] == labels["crowdkit"]).mean())
        ratio = stats["crowdkit"]["seconds"] / stats["ours"]["seconds"]
        mem = (stats["crowdkit"]["maxrss_mib"] - stats["crowdkit"]["base_mib"]) / max(
            stats["ours"]["maxrss_mib"] - stats["ours"]["base_mib"], 1.0
        )
        print(f"identical labels: {same:.4%} of {args.tasks:,} tasks (goal >= 99.9%)")
        print(f"speed ratio (median fit times): synsetforge is {ratio:.1f}x crowd-kit (goal >= 10x)")
        print(f"memory growth ratio: crowd-kit uses {mem:.1f}x synsetforge's")
    print(f"parent peak RSS {maxrss_mib():.0f} MiB ({Path(__file__).name})")


if __name__ == "__main__":
    main()
