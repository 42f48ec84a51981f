"""Benchmark release exports: WebDataset shards and Parquet, against copying the same blobs into one tar.

Peer (the ceiling): Python's ``tarfile`` adding the release's blob files to a single tar, in the same order,
with nothing else -- no manifest parsing, no metadata members, no shards. Each phase runs in a fresh process,
so its peak RSS (``ru_maxrss``) is its own; the build phase (distinct small JPEGs, rows, the release) is timed
too. Exports stream, so their peak RSS should not grow with the image count (compare ``--images`` sizes).

    python bench/export.py                     # 20,000 images of 64x48
    python bench/export.py --images 5000       # smaller
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, n: int, classes: int, size: tuple[int, int]) -> dict[str, float]:
    """A project with `n` distinct JPEGs accepted over `classes` WordNet leaves, and a release of them."""
    from PIL import Image
    from sqlalchemy import insert, select

    from synsetforge.releases import create_release
    from synsetforge.store import Project, schema
    from synsetforge.store.hashes import phash_to_db

    t0 = time.perf_counter()
    project = Project.init(root / "project", name="bench-export")
    h = project.hierarchy
    synsets = h.select(subtree="n02084071", leaves=True, max_n=classes, seed=1)  # dog breeds
    project.add_synsets(synsets)
    rng = random.Random(0)
    bases = []
    for _ in range(256):
        img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        for _ in range(40):
            img.putpixel(
                (rng.randrange(size[0]), rng.randrange(size[1])), tuple(rng.randrange(256) for _ in range(3))
            )
        bases.append(img)
    images, keys = [], []
    for i in range(n):
        img = bases[i % 256].copy()
        # vary pixels (a contrasting 2x2 block at a position given by i) so every JPEG is a distinct blob
        k = i // 256
        x, y = 2 * (k % (size[0] // 2)), 2 * (k // (size[0] // 2) % (size[1] // 2))
        r, g, b = img.getpixel((x, y))  # type: ignore[misc]
        for dx in (0, 1):
            for dy in (0, 1):
                img.putpixel((x + dx, y + dy), (255 - r, 255 - g, 255 - b))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        key = project.blobs.put(buf.getvalue())
        keys.append(key)
        images.append(
            {
                "sha256": key,
                "blob": key,
                "width": size[0],
                "height": size[1],
                "orig_width": size[0],
                "orig_height": size[1],
                "orig_bytes": len(buf.getvalue()),
                "orig_format": "JPEG",
                "phash": phash_to_db(rng.getrandbits(64)),
            }
        )
    if len(set(keys)) != n:
        raise SystemExit(f"only {len(set(keys))} distinct blobs out of {n}")
    t1 = time.perf_counter()
    with project.session() as s:
        src = schema.Source(kind="synthetic", name="bench", config={})
        s.add(src)
        s.flush()
        for start in range(0, n, 5000):
            s.execute(insert(schema.Image), images[start : start + 5000])
        ids = {sha: i for sha, i in s.execute(select(schema.Image.sha256, schema.Image.id))}
        cands = [
            {
                "synset_id": synsets[i % len(synsets)],
                "source_id": src.id,
                "key": str(i),
                "url": f"x://{i}",
                "image_id": ids[keys[i]],
                "status": "stored",
                "decision": "accepted",
                "confidence": 0.9 + (i % 100) / 1000,
                "license": "CC-BY-4.0",
                "author": f"author {i % 97}",
            }
            for i in range(n)
        ]
        for start in range(0, n, 5000):
            s.execute(insert(schema.Candidate), cands[start : start + 5000])
    t2 = time.perf_counter()
    create_release(project, "bench")
    t3 = time.perf_counter()
    project.close()
    return {"images": t1 - t0, "rows": t2 - t1, "release": t3 - t2}


def phase(kind: str, root: Path, shard_size: int, row_group: int) -> dict[str, float]:
    from sqlalchemy import select

    from synsetforge.releases import export_release, get_release
    from synsetforge.store import Project, schema

    out = root / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    with Project.open(root / "project") as project:
        rss0 = _rss_mib()
        t0 = time.perf_counter()
        if kind == "tarfile":
            rel = get_release(project, "bench")
            with project.session() as s:
                blobs = list(
                    s.scalars(
                        select(schema.Image.blob)
                        .join(schema.ReleaseItem, schema.ReleaseItem.image_id == schema.Image.id)
                        .where(schema.ReleaseItem.release_id == rel.id)
                        .order_by(schema.ReleaseItem.split, schema.ReleaseItem.sha256)
                    )
                )
            out.mkdir(parents=True)
            with tarfile.open(out / "all.tar", "w") as tar:
                for i, key in enumerate(blobs):
                    tar.add(project.blobs.path(key), arcname=f"{i:08d}.jpg")
            n = len(blobs)
        else:
            result = export_release(
                project,
                "bench",
                kind,
                out,
                shard_size=shard_size,
                row_group_bytes=row_group,
                row_group_rows=10**9,
            )
            n = get_release(project, "bench").stats["images"]
            assert result.files > 0
        seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"seconds": seconds, "images": n, "rss_mib": _rss_mib(), "rss_before_mib": rss0, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--size", default="64x48", help="WxH of the generated JPEGs")
    ap.add_argument("--shard-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--row-group-bytes", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the project and outputs here")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    if args.phase == "build":
        print(json.dumps(build(args.workdir, args.images, args.classes, (w, h))))
        return
    if args.phase:
        print(json.dumps(phase(args.phase, args.workdir, args.shard_size, args.row_group_bytes)))
        return
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="bench-export-")
        args.workdir = Path(tmp)
    try:
        # every phase runs in a fresh interpreter started from this small process: a child's ru_maxrss starts
        # at its parent's size (the fork copies it), so the parent must stay small
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            "build",
            "--workdir",
            str(args.workdir),
            "--images",
            str(args.images),
            "--classes",
            str(args.classes),
            "--size",
            args.size,
        ]
        times = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
        print(
            f"built {args.images:,} distinct {args.size} JPEGs in {times['images']:.1f} s, rows in "
            f"{times['rows']:.1f} s, release (splits + pHash clusters + manifest) in {times['release']:.1f} s"
        )
        results = {}
        for kind in ("tarfile", "webdataset", "parquet"):
            cmd = [
                sys.executable,
                __file__,
                "--phase",
                kind,
                "--workdir",
                str(args.workdir),
                "--shard-size",
                str(args.shard_size),
                "--row-group-bytes",
                str(args.row_group_bytes),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        base = results["tarfile"]
        base_rate = base["images"] / base["seconds"]
        print(f"{'export':<12}{'images/s':>12}{'vs tarfile':>12}{'peak RSS MiB':>14}{'output MB':>11}")
        for kind, r in results.items():
            rate = r["images"] / r["seconds"]
            print(
                f"{kind:<12}{rate:>12,.0f}{rate / base_rate:>11.2f}x{r['rss_mib']:>14.0f}{r['bytes'] / 1e6:>11.1f}"
            )
        print(
            f"(peak RSS includes the interpreter and imports; before exporting it was "
            f"{results['webdataset']['rss_before_mib']:.0f} MiB for webdataset, "
            f"{results['parquet']['rss_before_mib']:.0f} MiB for parquet)"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
