"""Benchmark the release explorer: latency of a synset page of a 20,000-image release (target p95 < 300 ms).

Builds a SQLite project quickly (tiny distinct blobs, Image and accepted Candidate rows inserted directly,
all in `--synsets` WordNet dog breeds, so by default one synset holds every image: the worst case for a
page), creates a release (default splits: 10 % val, 10 % test), then requests pages through FastAPI's
TestClient (the whole app: middleware, routing, queries, templates; no socket) `--requests` times each:
the synset's first page, a middle page and its last page, the tree, an image page and a search.

    python bench/explorer.py                    # 20,000 images, 200 requests per page
    python bench/explorer.py --images 2000 --requests 50

Prints, per page: p50 / p95 / max in ms and p95 against the 300 ms target as a ratio; then peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 300.0


def _rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, n: int, n_synsets: int) -> tuple[object, list[str], dict[str, float]]:
    """A project with `n` accepted images over `n_synsets` dog breeds and a release `bench` of them."""
    from sqlalchemy import insert, select

    from synsetforge.releases import create_release
    from synsetforge.store import Project, schema
    from synsetforge.store.hashes import phash_to_db

    t0 = time.perf_counter()
    project = Project.init(root / "project", name="bench-explorer")
    synsets = project.hierarchy.select(subtree="n02084071", leaves=True, max_n=n_synsets, seed=1)
    project.add_synsets(synsets)
    keys = [project.blobs.put(b"\xff\xd8\xff\xe0bench-image-%08d" % i) for i in range(n)]
    t1 = time.perf_counter()
    with project.session() as s:
        src = schema.Source(kind="synthetic", name="bench", config={})
        s.add(src)
        s.flush()
        images = [
            {
                "sha256": key,
                "blob": key,
                "width": 64,
                "height": 48,
                "orig_width": 640,
                "orig_height": 480,
                "orig_bytes": 20,
                "orig_format": "JPEG",
                "phash": phash_to_db((i * 0x9E3779B97F4A7C15) % 2**64),
            }
            for i, key in enumerate(keys)
        ]
        for start in range(0, n, 5000):
            s.execute(insert(schema.Image), images[start : start + 5000])
        ids = {sha: i for sha, i in s.execute(select(schema.Image.sha256, schema.Image.id))}
        cands = [
            {
                "synset_id": synsets[i % len(synsets)],
                "source_id": src.id,
                "key": str(i),
                "url": f"https://img.example/{i}.jpg",
                "page_url": f"https://img.example/page/{i}",
                "query": "dog",
                "rank": i,
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
    return project, synsets, {"blobs": t1 - t0, "rows": t2 - t1, "release": t3 - t2}


def timed(client: object, url: str, requests: int) -> list[float]:
    ms = []
    for _ in range(requests):
        t = time.perf_counter()
        r = client.get(url)  # type: ignore[attr-defined]
        ms.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url} answered {r.status_code}: {r.text[:300]}")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--synsets", type=int, default=1, help="dog breeds the images are spread over")
    ap.add_argument("--requests", type=int, default=200, help="requests per page")
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from synsetforge.store import schema
    from synsetforge.web.app import create_app
    from synsetforge.web.explore_routes import PER_PAGE, public_release

    with tempfile.TemporaryDirectory() as tmp:
        project, synsets, build_s = build(Path(tmp), args.images, args.synsets)
        print(
            f"built {args.images} images in {len(synsets)} synset(s): blobs {build_s['blobs']:.1f} s, "
            f"rows {build_s['rows']:.1f} s, release {build_s['release']:.1f} s"
        )
        with project:  # type: ignore[attr-defined]
            rel = public_release(project, "bench")  # type: ignore[arg-type]
            first = synsets[0]
            shown = int(next(r["total"] for r in rel.stats["per_synset"] if r["synset"] == first))
            pages = max(1, -(-shown // PER_PAGE))
            with project.session() as s:  # type: ignore[attr-defined]
                image = s.scalar(
                    select(schema.ReleaseItem.image_id)
                    .where(schema.ReleaseItem.release_id == rel.id, schema.ReleaseItem.split == "train")
                    .limit(1)
                )
            urls = {
                "synset page 1": f"/explore/bench/synset/{first}",
                f"synset page {pages // 2 + 1} (middle)": f"/explore/bench/synset/{first}?page={pages // 2 + 1}",
                f"synset page {pages} (last)": f"/explore/bench/synset/{first}?page={pages}",
                "tree": "/explore/bench",
                "image page": f"/explore/bench/image/{image}",
                "search": "/explore/bench/search?q=dog",
            }
            print(
                f"synset {first}: {shown} public images, {pages} pages of {PER_PAGE}; {args.requests} requests each"
            )
            print(f"{'page':<28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p95/300ms':>11}")
            with TestClient(create_app(project)) as client:  # type: ignore[arg-type]
                for name, url in urls.items():
                    timed(client, url, 3)  # warm-up
                    ms = sorted(timed(client, url, args.requests))
                    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
                    print(
                        f"{name:<28}{statistics.median(ms):>9.1f}{p95:>9.1f}{ms[-1]:>9.1f}"
                        f"{p95 / TARGET_MS:>11.3f}"
                    )
    print(f"peak RSS {_rss_mib():.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
