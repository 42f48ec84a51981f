"""Store-level queries behind a release explorer: tree with counts, synset pages, image provenance, search.

Every function returns plain JSON-ready dicts, so a web route can render them directly (and the CLI can
print them). What a function says about a release comes from what the release froze (its manifest and
`release_items`): synset facts, votes, confidence, provenance and duplicate clusters as they were at
creation, whatever the live tables say now; `image_provenance` alone describes an image as the store
knows it today. Counts are per (image, synset) item; a node's ``subtree_images`` adds up the items of every
release synset at or below it (a synset reached along two paths of the DAG counts once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.hierarchy.model import Hierarchy, normalize_lemma
from synsetforge.releases.frozen import frozen_index
from synsetforge.releases.release import Release, bytewise, get_release
from synsetforge.releases.splits import SPLITS
from synsetforge.store import schema
from synsetforge.store.hashes import phash_from_db
from synsetforge.store.project import Project

MAX_PER_PAGE = 500


def _release(project: Project, release: Release | str) -> Release:
    return get_release(project, release) if isinstance(release, str) else release


def _hierarchy(project: Project) -> Hierarchy | None:
    try:
        return project.hierarchy
    except SynsetforgeError:
        return None


def _counts(release: Release) -> dict[str, int]:
    return {row["synset"]: int(row["total"]) for row in release.stats.get("per_synset", [])}


def tree(project: Project, release: Release | str) -> dict[str, Any]:
    """The release's synsets and all their ancestors, each with direct and subtree image counts.

    Returns ``{"roots": [...ids], "nodes": {id: {"name", "images", "subtree_images", "subtree_synsets",
    "children": [...ids with images below them], "parents": [...]}}}``.
    """
    rel = _release(project, release)
    counts = _counts(rel)
    h = _hierarchy(project)
    up: dict[str, list[str]] = {}
    below: dict[str, set[str]] = defaultdict(set)  # node -> release synsets at or below it
    for synset in counts:
        below[synset].add(synset)
        if h is not None and synset in h:
            for a in h.ancestors(synset):
                below[a].add(synset)
    for node in below:
        up[node] = [p for p in h.parents(node) if p in below] if h is not None and node in h else []
    children: dict[str, list[str]] = defaultdict(list)
    for node, parents in up.items():
        for p in parents:
            children[p].append(node)
    nodes = {}
    for node in sorted(below):
        nodes[node] = {
            "id": node,
            "name": h.name(node) if h is not None and node in h else node,
            "images": counts.get(node, 0),
            "subtree_images": sum(counts[s] for s in below[node]),
            "subtree_synsets": len(below[node]),
            "parents": sorted(up[node]),
            "children": sorted(children.get(node, [])),
        }
    return {"release": rel.name, "roots": sorted(n for n in below if not up[n]), "nodes": nodes}


def synset_page(
    project: Project,
    release: Release | str,
    synset: str,
    *,
    page: int = 1,
    per_page: int = 50,
    split: str | None = None,
) -> dict[str, Any]:
    """One synset of a release: its facts, split counts and one page of its images (content-hash order)."""
    rel = _release(project, release)
    counts = {row["synset"]: row for row in rel.stats.get("per_synset", [])}
    if synset not in counts:
        raise NotFoundError(f"synset {synset!r} is not in release {rel.name!r}")
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InputError(f"page must be >= 1 and per_page in 1..{MAX_PER_PAGE}")
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    RI, IMG = schema.ReleaseItem, schema.Image
    where = [RI.release_id == rel.id, RI.synset_id == synset]
    if split is not None:
        where.append(RI.split == split)
    facts = frozen_index(project, rel).synset_facts(synset) or {}
    with project.session() as s:
        total = int(s.scalar(select(func.count()).select_from(RI).where(*where)) or 0)
        rows = s.execute(
            select(RI.image_id, RI.sha256, RI.split, RI.confidence, IMG.blob, IMG.width, IMG.height)
            .join(IMG, IMG.id == RI.image_id)
            .where(*where)
            .order_by(RI.sha256)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    h = _hierarchy(project)
    path: list[str] = []
    if h is not None and synset in h:
        path = list(reversed(h.hypernym_paths(synset)[0]))
    return {
        "release": rel.name,
        "synset": synset,
        "lemmas": list(facts.get("lemmas") or []),
        "gloss": facts.get("gloss") or "",
        "depth": facts.get("depth"),
        "path": [{"id": p, "name": h.name(p) if h is not None else p} for p in path],
        "counts": {k: counts[synset][k] for k in (*SPLITS, "total")},
        "split": split,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, -(-total // per_page)),
        "images": [
            {
                "image_id": r.image_id,
                "sha256": r.sha256,
                "split": r.split,
                "confidence": r.confidence,
                "blob": r.blob,
                "width": r.width,
                "height": r.height,
            }
            for r in rows
        ],
    }


def image_provenance(project: Project, image_id: int) -> dict[str, Any]:
    """Everything known about an image: bytes, candidates (source, query, licence, author, decision),
    votes, duplicates and the releases that contain it."""
    IMG, C, V, W, T, S = (
        schema.Image,
        schema.Candidate,
        schema.Vote,
        schema.Worker,
        schema.Task,
        schema.Source,
    )
    with project.session() as s:
        img = s.get(IMG, image_id)
        if img is None:
            raise NotFoundError(f"no image with id {image_id}")
        cands = s.execute(
            select(C, S.name, S.kind)
            .join(S, S.id == C.source_id)
            .where(C.image_id == image_id)
            .order_by(C.id)
        ).all()
        cand_ids = [c.id for c, _, _ in cands]
        votes = (
            s.execute(
                select(V.candidate_id, V.worker_id, W.kind, V.label, V.is_gold, T.kind, V.created_at)
                .join(W, W.id == V.worker_id)
                .outerjoin(T, T.id == V.task_id)
                .where(V.candidate_id.in_(cand_ids))
                .order_by(V.candidate_id, V.id)
            ).all()
            if cand_ids
            else []
        )
        chain: list[int] = []
        cur: schema.Image | None = img
        seen = {img.id}
        while cur is not None and cur.duplicate_of is not None and cur.duplicate_of not in seen:
            chain.append(cur.duplicate_of)
            seen.add(cur.duplicate_of)
            cur = s.get(IMG, cur.duplicate_of)
        copies = list(s.scalars(select(IMG.id).where(IMG.duplicate_of == image_id).order_by(IMG.id)))
        rel_rows = s.execute(
            select(schema.Release.name, schema.ReleaseItem.synset_id, schema.ReleaseItem.split)
            .join(schema.ReleaseItem, schema.ReleaseItem.release_id == schema.Release.id)
            .where(schema.ReleaseItem.image_id == image_id)
            .order_by(schema.Release.id, bytewise(project, schema.ReleaseItem.synset_id))
        ).all()
        ph = phash_from_db(img.phash)
        return {
            "image_id": img.id,
            "sha256": img.sha256,
            "blob": img.blob,
            "width": img.width,
            "height": img.height,
            "original": {
                "width": img.orig_width,
                "height": img.orig_height,
                "bytes": img.orig_bytes,
                "format": img.orig_format,
            },
            "phash": f"{ph:016x}" if ph is not None else None,
            "duplicate_of": chain,
            "duplicate_distance": img.duplicate_distance,
            "duplicates": copies,
            "candidates": [
                {
                    "candidate_id": c.id,
                    "synset": c.synset_id,
                    "source": name,
                    "source_kind": kind,
                    "query": c.query,
                    "rank": c.rank,
                    "url": c.url,
                    "page_url": c.page_url,
                    "license": c.license,
                    "author": c.author,
                    "status": c.status,
                    "decision": c.decision,
                    "confidence": c.confidence,
                    "votes_yes": sum(1 for v in votes if v[0] == c.id and v[3]),
                    "votes_no": sum(1 for v in votes if v[0] == c.id and not v[3]),
                }
                for c, name, kind in cands
            ],
            "votes": [
                {
                    "candidate_id": v[0],
                    "worker_id": v[1],
                    "worker_kind": v[2],
                    "label": v[3],
                    "gold": v[4],
                    "task_kind": v[5],
                    "at": v[6].isoformat(timespec="seconds") if v[6] else None,
                }
                for v in votes
            ],
            "releases": [{"release": r[0], "synset": r[1], "split": r[2]} for r in rel_rows],
        }


@dataclass(frozen=True)
class _Facts:
    id: str
    lemmas: list[str]
    gloss: str


def release_image(
    project: Project, release: Release | str, image_id: int, *, splits: Sequence[str] = SPLITS
) -> dict[str, Any]:
    """An image as the release froze it: one entry per (image, synset) item in `splits` with its split,
    provenance (source, query, URLs, licence, author), vote totals, confidence and boxes, and the other
    images of its duplicate cluster in those splits. NotFoundError when it has no item there."""
    rel = _release(project, release)
    index = frozen_index(project, rel)
    items = [it for it in index.items(project.blobs, image_id) if it.split in splits]
    if not items:
        raise NotFoundError(
            f"image {image_id} is not among the {'/'.join(splits)} images of release {rel.name!r}"
        )
    with project.session() as s:
        img = s.get(schema.Image, image_id)  # facts about the bytes themselves, which never change
        original = (
            {
                "width": img.orig_width,
                "height": img.orig_height,
                "bytes": img.orig_bytes,
                "format": img.orig_format,
            }
            if img is not None
            else {"width": None, "height": None, "bytes": None, "format": None}
        )
    first = items[0]
    return {
        "release": rel.name,
        "image_id": image_id,
        "sha256": first.sha256,
        "width": first.width,
        "height": first.height,
        "original": original,
        "items": [
            {
                "synset": it.synset,
                "split": it.split,
                "candidate_id": it.candidate_id,
                "source": it.source,
                "source_kind": it.source_kind,
                "query": it.query,
                "url": it.url,
                "page_url": it.page_url,
                "license": it.license,
                "author": it.author,
                "collected": it.collected,
                "confidence": it.confidence,
                "votes_yes": it.votes_yes,
                "votes_no": it.votes_no,
                "boxes": [list(b) for b in it.boxes],
            }
            for it in items
        ],
        "duplicates": index.cluster(image_id, tuple(splits)),
    }


def search(project: Project, release: Release | str, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Release synsets whose id, lemma or gloss contains `text`: exact lemma, then prefix, then substring
    matches of a lemma, then gloss matches; each with its image count."""
    rel = _release(project, release)
    query = normalize_lemma(text)
    if not query:
        raise InputError("search text is empty")
    counts = _counts(rel)
    frozen = frozen_index(project, rel).synsets
    ranked: list[tuple[int, int, str, dict[str, Any]]] = []
    for sid in sorted(counts):
        facts = frozen.get(sid) or {}
        row = _Facts(sid, list(facts.get("lemmas") or []), str(facts.get("gloss") or ""))
        best = None
        for lemma in row.lemmas:
            key = normalize_lemma(lemma)
            pos = key.find(query)
            if pos >= 0:
                group = 0 if key == query else (1 if pos == 0 else 2)
                cand = (group, len(key))
                best = cand if best is None or cand < best else best
        if best is None and query in row.id.lower():
            best = (0 if row.id.lower() == query else 2, len(row.id))
        if best is None and query in (row.gloss or "").lower():
            best = (3, len(row.gloss or ""))
        if best is None:
            continue
        ranked.append(
            (
                best[0],
                best[1],
                row.id,
                {
                    "synset": row.id,
                    "lemmas": row.lemmas,
                    "gloss": row.gloss,
                    "images": counts[row.id],
                },
            )
        )
    ranked.sort(key=lambda r: (r[0], r[1], r[2]))
    return [r[3] for r in ranked[:limit]]
