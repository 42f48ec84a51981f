"""Cost of one box task (next task + submit, in-process through `BoxService`) against project size.

    .venv/bin/python bench/boxes_requests.py                      # 400 and 20k accepted images, SQLite
    .venv/bin/python bench/boxes_requests.py --sizes 200,10000 --db postgresql://127.0.0.1:5432/test

Per size: a fresh project with two synthetic synsets of `size` accepted candidates each (placeholder
images, `crowd.seed.add_synthetic_candidates(render=False)`), every image entered into drawing
(`BoxService.enroll`, timed), then 40 workers each take and answer one task (20 draw tasks, then 20 of the
most needed kind). Printed: median and 90th percentile of next task + submit. On PostgreSQL each size runs
in a fresh schema of the given database, dropped afterwards. Why: assignment and decisions read only the
task's rows through indexes, so these figures should not grow with the project.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import update

from synsetforge.boxes.service import BoxService, BoxTaskView
from synsetforge.boxes.settings import BoxSettings
from synsetforge.crowd.seed import add_synthetic_candidates
from synsetforge.store import Project, schema

SYNSETS = ["n13878634", "n13879320"]


def answer(view: BoxTaskView) -> dict[str, Any]:
    if view.kind == "draw":
        item = view.items[0]
        return {"box": [2, 2, item.width // 2, item.height // 2]}
    if view.kind == "quality":
        return {"good": [it.box_id for it in view.items]}
    return {"covered": [it.image_id for it in view.items]}


def run(size: int, db: str | None) -> None:
    folder = Path(tempfile.mkdtemp())
    pg_schema = None
    url = db or f"sqlite:///{folder / 'meta.db'}"
    if db is not None:
        import psycopg

        pg_schema = "bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        url = f"{db}?options=-csearch_path%3D{pg_schema}"
    try:
        with Project.init(folder / "p", db=url) as p:
            p.add_synsets(SYNSETS)
            add_synthetic_candidates(p, SYNSETS, size, precision=1.0, render=False)
            with p.session() as s:
                s.execute(update(schema.Candidate).values(decision="accepted"))
            svc = BoxService(p, BoxSettings(draw_probation_gold=0, draw_gold_rate=0))
            start = time.perf_counter()
            svc.enroll()
            enrolled = time.perf_counter() - start
            workers = [svc.crowd.invite().worker_id for _ in range(40)]
            seconds = []
            for i, w in enumerate(workers):
                start = time.perf_counter()
                view = svc.next_task(w, "draw" if i < 20 else None)
                assert view is not None
                svc.submit(w, view.id, answer(view))
                seconds.append(time.perf_counter() - start)
        p90 = sorted(seconds)[int(0.9 * len(seconds))]
        print(
            f"{len(SYNSETS) * size} images: enroll {enrolled:.1f} s; next task + submit median "
            f"{statistics.median(seconds) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"
        )
    finally:
        if pg_schema is not None and db is not None:
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200,10000", help="accepted images per synset, comma-separated")
    parser.add_argument("--db", default=None, help="a PostgreSQL database URL (default: SQLite files)")
    args = parser.parse_args()
    for size in (int(x) for x in args.sizes.split(",")):
        run(size, args.db)


if __name__ == "__main__":
    main()
