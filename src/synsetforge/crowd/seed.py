"""Synthetic candidates straight into the store, with ground truth: for crowd tests, benchmarks and demos.

Why not `synsetforge collect`: crowd verification only needs stored candidates with images and a known
answer; writing them directly keeps tests fast and independent of the collection pipeline. The images and
answers are the synthetic source's (`candidates.sources.synthetic`: same URLs, same renderings, same ground
truth as a collection run would store). With `render=False` every image row shares a few small placeholder
JPEGs (for load tests that never look at pixels); the answers are still the synthetic source's.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from PIL import Image
from sqlalchemy import insert, select

from synsetforge.candidates.sources import synthetic
from synsetforge.errors import InputError
from synsetforge.store import schema
from synsetforge.store.project import Project

SOURCE_NAME = "synthetic-crowd-seed"


def _placeholders(n: int = 4) -> list[bytes]:
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (40 * i, 120, 200 - 40 * i)).save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


def add_synthetic_candidates(
    project: Project,
    synset_ids: list[str],
    per_synset: int,
    *,
    seed: int = 0,
    precision: float = 0.4,
    render: bool = True,
    batch: int = 2000,
) -> int:
    """Add `per_synset` synthetic candidates (status `stored`) with ground truth to each synset.

    The synsets must be plane figures the synthetic source can draw and already be in the project.
    Returns how many candidates were added (rerunning with the same arguments adds none).
    """
    if per_synset < 1:
        raise InputError(f"per_synset must be >= 1, got {per_synset}")
    settings = synthetic.Settings(precision=precision)
    for sid in synset_ids:
        if not synthetic.SyntheticSource.supports(sid):
            raise InputError(f"synthetic: {sid} is not a plane figure this source can draw")
    shared = [project.blobs.put(b) for b in _placeholders()] if not render else []
    c = schema.Candidate
    with project.session() as s:
        missing = set(synset_ids) - set(
            s.scalars(select(schema.Synset.id).where(schema.Synset.id.in_(synset_ids)))
        )
        if missing:
            raise InputError(f"synsets not in the project: {sorted(missing)}; add them first")
        src = s.scalar(select(schema.Source.id).where(schema.Source.name == SOURCE_NAME))
        if src is None:
            row = schema.Source(
                kind="synthetic", name=SOURCE_NAME, config={"precision": precision, "seed": seed}
            )
            s.add(row)
            s.flush()
            src = row.id
        have = set(s.execute(select(c.synset_id, c.key).where(c.source_id == src)).all())
    added = 0
    pending: list[tuple[str, int, str]] = []
    for sid in synset_ids:
        for rank in range(1, per_synset + 1):
            url = synthetic.make_url(seed, sid, rank, settings)
            key = url[len(synthetic.SCHEME) + 3 :]
            if (sid, key) not in have:
                pending.append((sid, rank, url))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        images: list[dict[str, Any]] = []
        cands, truths = [], []
        for i, (sid, rank, url) in enumerate(chunk):
            scene = synthetic.plan(seed, sid, rank, settings)
            if render:
                data = synthetic.encode(synthetic.draw_scene(scene), scene.quality)
                blob, sha = project.blobs.put(data), hashlib.sha256(data).hexdigest()
                size = len(data)
            else:
                blob = shared[(start + i) % len(shared)]
                sha, size = hashlib.sha256(url.encode()).hexdigest(), 0
            images.append(
                {"sha256": sha, "blob": blob, "width": scene.width, "height": scene.height,
                 "orig_width": scene.width, "orig_height": scene.height, "orig_bytes": size, "orig_format": "JPEG"}
            )  # fmt: skip
            cands.append((sid, rank, url))
            truths.append((scene.positive, scene.figure))
        with project.session() as s:
            shas = [im["sha256"] for im in images]
            existing = dict(
                s.execute(
                    select(schema.Image.sha256, schema.Image.id).where(schema.Image.sha256.in_(shas))
                ).all()
            )
            fresh = [im for im in images if im["sha256"] not in existing]
            if fresh:
                s.execute(insert(schema.Image), fresh)
            ids = dict(
                s.execute(
                    select(schema.Image.sha256, schema.Image.id).where(schema.Image.sha256.in_(shas))
                ).all()
            )
            rows = [
                {"synset_id": sid, "source_id": src, "key": url[len(synthetic.SCHEME) + 3 :], "url": url,
                 "image_id": ids[im["sha256"]], "query": synthetic.FIGURES[sid][0][0], "rank": rank,
                 "license": synthetic.LICENSE, "author": synthetic.AUTHOR, "status": "stored"}
                for (sid, rank, url), im in zip(cands, images, strict=True)
            ]  # fmt: skip
            new_ids = s.execute(insert(c).returning(c.id, sort_by_parameter_order=True), rows).scalars().all()
            s.execute(
                insert(schema.GroundTruth),
                [
                    {"candidate_id": cid, "positive": positive, "true_synset": figure}
                    for cid, (positive, figure) in zip(new_ids, truths, strict=True)
                ],
            )
            added += len(new_ids)
    return added
