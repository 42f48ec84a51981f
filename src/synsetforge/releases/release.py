"""Releases: immutable snapshots of the accepted images per synset.

`create_release` reads the accepted candidates once, freezes everything an export will need into the
manifest (see `manifest.py`), assigns duplicate-safe splits, computes the statistics and writes the
`releases` row and its `release_items` in one transaction. Nothing later -- new votes, a changed decision,
new boxes -- touches a release: exports read its manifest only.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, distinct, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.hierarchy.model import Hierarchy
from synsetforge.hierarchy.suggest import Suggester, did_you_mean
from synsetforge.releases.manifest import Item, write_manifest
from synsetforge.releases.names import check_release_name
from synsetforge.releases.splits import (
    DEFAULT_PHASH_DISTANCE,
    SPLITS,
    SplitSpec,
    UnionFind,
    assign_splits,
    near_pairs,
)
from synsetforge.releases.stats import SynsetFacts, compute_stats
from synsetforge.store import schema
from synsetforge.store.hashes import phash_from_db
from synsetforge.store.project import Project

TRUSTED_BOX_ORIGINS = ("synthetic", "import")
_BATCH = 2000
_IN_LIMIT = 500  # beyond this many synsets, filter in Python instead of a long IN (...) list


@dataclass(frozen=True)
class Release:
    """A release as stored: its parameters, manifest checksum and statistics."""

    id: int
    name: str
    created_at: datetime
    method: str | None
    params: dict[str, Any]
    manifest_sha256: str
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Creation time as a Unix timestamp (used as the fixed mtime of exported archives)."""
        return int(self.created_at.timestamp())

    @property
    def synset_ids(self) -> list[str]:
        return [row["synset"] for row in self.stats.get("per_synset", [])]


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _iso(dt: datetime | None) -> str | None:
    a = _aware(dt)
    return a.astimezone(UTC).isoformat(timespec="seconds") if a else None


def bytewise(project: Project, column: Any) -> ColumnElement[Any]:
    """ORDER BY a text column in code-point order on every backend (PostgreSQL's locale collation ignores
    punctuation, which would make orders, merges and exports depend on the server's locale)."""
    if project.dialect == "postgresql":
        return column.collate("C")
    return column


def _to_release(row: schema.Release) -> Release:
    created = _aware(row.created_at)
    assert created is not None
    return Release(
        id=row.id,
        name=row.name,
        created_at=created,
        method=row.method,
        params=dict(row.params or {}),
        manifest_sha256=row.manifest_sha256 or "",
        stats=dict(row.stats or {}),
    )


def get_release(project: Project, name: str) -> Release:
    """The release with this name; NotFoundError (with suggestions) otherwise."""
    with project.session() as s:
        row = s.scalar(select(schema.Release).where(schema.Release.name == name))
        if row is None:
            names = list(s.scalars(select(schema.Release.name).order_by(schema.Release.name)))
            if not names:
                raise NotFoundError(f"no release named {name!r}: the project has no releases yet")
            hint = did_you_mean(Suggester(names).suggest(name)) or f" (releases: {', '.join(names[:10])})"
            raise NotFoundError(f"no release named {name!r}{hint}")
        return _to_release(row)


def list_releases(project: Project) -> list[Release]:
    with project.session() as s:
        rows = s.scalars(select(schema.Release).order_by(schema.Release.created_at, schema.Release.id))
        return [_to_release(r) for r in rows]


def _scale_box(
    box: tuple[int, int, int, int], orig: tuple[int | None, int | None], size: tuple[int | None, int | None]
) -> tuple[int, int, int, int] | None:
    """A box in original-image pixels mapped to the stored image (inclusive corners, clamped)."""
    x1, y1, x2, y2 = box
    w, h = size
    ow, oh = orig
    if w and h and ow and oh and (ow, oh) != (w, h):
        sx, sy = w / ow, h / oh
        x1, y1 = math.floor(x1 * sx), math.floor(y1 * sy)
        x2, y2 = math.ceil((x2 + 1) * sx) - 1, math.ceil((y2 + 1) * sy) - 1
    if w and h:
        x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2, w - 1))
        y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2, h - 1))
    if x1 > x2 or y1 > y2:
        return None
    return (x1, y1, x2, y2)


def _aggregation(s: Session, method: str | None) -> tuple[str, dict[str, Any]]:
    """The verification method that produced `candidates.decision`: given, or as recorded in `meta`."""
    meta = {
        m.key: m.value
        for m in s.scalars(
            select(schema.Meta).where(schema.Meta.key.in_(["aggregation.method", "aggregation.params"]))
        )
    }
    params: dict[str, Any] = {}
    if "aggregation.params" in meta:
        try:
            loaded = json.loads(meta["aggregation.params"])
            params = loaded if isinstance(loaded, dict) else {"value": loaded}
        except ValueError:
            params = {"raw": meta["aggregation.params"]}
    return method or meta.get("aggregation.method") or "recorded-decisions", params


def _resolve_synsets(
    project: Project, s: Session, synsets: Sequence[str] | None, subtree: str | None
) -> set[str] | None:
    if not synsets and not subtree:
        return None
    known = set(s.scalars(select(schema.Synset.id)))
    chosen: set[str] = set()
    if synsets:
        unknown = [x for x in synsets if x not in known]
        if unknown:
            hint = did_you_mean(Suggester(sorted(known)).suggest(unknown[0])) if known else ""
            raise NotFoundError(f"synset {unknown[0]!r} is not in the project{hint}")
        chosen.update(synsets)
    if subtree:
        h = project.hierarchy
        root = h.resolve(subtree).id
        chosen.update(x for x in h.subtree(root) if x in known)
        if not chosen:
            raise InputError(f"no project synset lies under {subtree!r}")
    return chosen


Key = tuple[int, str]  # (image id, synset id): one item of a release


def _frozen_votes(
    s: Session, accepted: Sequence[ColumnElement[bool]], cand_item: dict[int, Key]
) -> tuple[dict[Key, list[int]], Any]:
    """[yes, no] verification votes per item, and (workers, first, last vote) over the selection.

    Audit votes are left out: they judge releases, they do not make them."""
    C, V, T = schema.Candidate, schema.Vote, schema.Task
    not_audit = or_(V.task_id.is_(None), T.kind.is_(None), T.kind != "audit")
    votes: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    stmt = (
        select(V.candidate_id, func.count(), func.sum(case((V.label.is_(True), 1), else_=0)))
        .join(C, C.id == V.candidate_id)
        .outerjoin(T, T.id == V.task_id)
        .where(*accepted, not_audit)
        .group_by(V.candidate_id)
    )
    for cid, n, n_yes in s.execute(stmt).yield_per(_BATCH):
        key = cand_item.get(cid)
        if key is not None:
            votes[key][0] += int(n_yes or 0)
            votes[key][1] += int(n) - int(n_yes or 0)
    span = s.execute(
        select(func.count(distinct(V.worker_id)), func.min(V.created_at), func.max(V.created_at))
        .join(C, C.id == V.candidate_id)
        .outerjoin(T, T.id == V.task_id)
        .where(*accepted, not_audit)
    ).one()
    return votes, span


def _frozen_boxes(
    s: Session,
    accepted: Sequence[ColumnElement[bool]],
    cand_item: dict[int, Key],
    image_facts: dict[int, tuple[Any, ...]],
    box_statuses: Sequence[str],
) -> dict[Key, set[tuple[int, int, int, int]]]:
    """The boxes of each item, mapped to the stored image's pixels (see `_scale_box`).

    Crowd boxes with a status in `box_statuses` ("good": accepted by quality votes), plus imported and
    synthetic boxes not marked bad; never gold boxes (known answers that check workers, not annotations)."""
    C, B = schema.Candidate, schema.BoxRow
    boxes: dict[Key, set[tuple[int, int, int, int]]] = defaultdict(set)
    stmt = (
        select(B.candidate_id, B.x1, B.y1, B.x2, B.y2)
        .join(C, C.id == B.candidate_id)
        .where(
            *accepted,
            B.origin != "gold",
            or_(B.status.in_(list(box_statuses)), (B.origin.in_(TRUSTED_BOX_ORIGINS) & (B.status != "bad"))),
        )
    )
    for cid, x1, y1, x2, y2 in s.execute(stmt).yield_per(_BATCH):
        key = cand_item.get(cid)
        if key is None:
            continue
        f = image_facts[key[0]]
        scaled = _scale_box((x1, y1, x2, y2), (f[4], f[5]), (f[2], f[3]))
        if scaled is not None:
            boxes[key].add(scaled)
    return boxes


def _ground_truth(
    s: Session,
    accepted: Sequence[ColumnElement[bool]],
    cand_item: dict[int, Key],
    representative: dict[Key, int],
) -> dict[Key, bool]:
    """Known truth per item (synthetic sources know it; experts may have said), the representative first."""
    C, G = schema.Candidate, schema.GroundTruth
    truth: dict[Key, bool] = {}
    stmt = select(G.candidate_id, G.positive).join(C, C.id == G.candidate_id).where(*accepted)
    for cid, positive in s.execute(stmt).yield_per(_BATCH):
        key = cand_item.get(cid)
        if key is not None and (key not in truth or representative[key] == cid):
            truth[key] = bool(positive)
    return truth


def create_release(
    project: Project,
    name: str,
    *,
    min_confidence: float | None = None,
    synsets: Sequence[str] | None = None,
    subtree: str | None = None,
    min_images: int = 1,
    split: SplitSpec | None = None,
    seed: int = 0,
    phash_distance: int = DEFAULT_PHASH_DISTANCE,
    method: str | None = None,
    box_statuses: Sequence[str] = ("good",),
    notes: str = "",
) -> Release:
    """Freeze the accepted images of the chosen synsets into a new release and return it.

    An item is an (image, synset) pair with at least one candidate whose decision is ``accepted`` (and whose
    confidence reaches `min_confidence`, when given; a missing confidence then does not qualify). Synsets
    with fewer than `min_images` items are left out (listed in ``stats["dropped_synsets"]``). Boxes come from
    the `boxes` table: those with a status in `box_statuses`, plus synthetic or imported ones not marked bad;
    gold boxes never.
    """
    check_release_name(name)
    if min_confidence is not None and not (
        isinstance(min_confidence, int | float) and 0.0 <= float(min_confidence) <= 1.0
    ):
        raise InputError(f"--min-confidence must be a probability in [0, 1], got {min_confidence}")
    if min_images < 0:
        raise InputError(f"--min-images must be >= 0, got {min_images}")
    if not -1 <= phash_distance <= 64:
        raise InputError(f"--phash-distance must be in -1..64 (-1 turns it off), got {phash_distance}")
    spec = split or SplitSpec()
    created_at = datetime.now(UTC).replace(microsecond=0)

    with project.session() as s:
        if s.scalar(select(schema.Release.id).where(schema.Release.name == name)) is not None:
            raise InputError(
                f"a release named {name!r} already exists (releases are immutable; pick a new name)"
            )
        chosen = _resolve_synsets(project, s, synsets, subtree)
        agg_method, agg_params = _aggregation(s, method)
        sources = {r.id: (r.name, r.kind) for r in s.scalars(select(schema.Source))}

        C, IMG = schema.Candidate, schema.Image
        accepted: list[ColumnElement[bool]] = [C.decision == "accepted"]
        if chosen is not None and len(chosen) <= _IN_LIMIT:
            accepted.append(C.synset_id.in_(sorted(chosen)))

        def selected(synset: str) -> bool:
            return chosen is None or synset in chosen

        stmt = (
            select(
                C.id,
                C.synset_id,
                C.image_id,
                C.confidence,
                C.source_id,
                C.query,
                C.url,
                C.page_url,
                C.license,
                C.author,
                C.created_at,
                IMG.sha256,
                IMG.blob,
                IMG.width,
                IMG.height,
                IMG.orig_width,
                IMG.orig_height,
                IMG.phash,
            )
            .join(IMG, IMG.id == C.image_id)
            .where(*accepted, IMG.blob.is_not(None))
        )
        if min_confidence is not None:
            stmt = stmt.where(C.confidence >= float(min_confidence))
        best: dict[tuple[int, str], Any] = {}
        cand_item: dict[int, tuple[int, str]] = {}
        image_facts: dict[int, tuple[Any, ...]] = {}
        missing: set[int] = set()
        for row in s.execute(stmt).yield_per(_BATCH):
            if not selected(row.synset_id) or row.image_id in missing:
                continue
            if row.image_id not in image_facts and not project.blobs.exists(row.blob):
                missing.add(row.image_id)  # bytes lost from the blob store: cannot be released
                continue
            key = (row.image_id, row.synset_id)
            cand_item[row.id] = key
            image_facts[row.image_id] = (
                row.sha256,
                row.blob,
                row.width,
                row.height,
                row.orig_width,
                row.orig_height,
                row.phash,
            )
            cur = best.get(key)
            rank = (row.confidence if row.confidence is not None else -1.0, -row.id)
            if cur is None or rank > (cur.confidence if cur.confidence is not None else -1.0, -cur.id):
                best[key] = row

        per_synset: dict[str, int] = defaultdict(int)
        for _, synset in best:
            per_synset[synset] += 1
        dropped = sorted((sy, n) for sy, n in per_synset.items() if n < min_images)
        dropped_set = {sy for sy, _ in dropped}
        if dropped_set:
            best = {k: v for k, v in best.items() if k[1] not in dropped_set}
            cand_item = {c: k for c, k in cand_item.items() if k[1] not in dropped_set}
        if not best:
            what = [
                f"min_confidence={min_confidence}" if min_confidence is not None else None,
                f"{len(chosen)} chosen synsets" if chosen is not None else None,
                f"min_images={min_images}" if min_images > 1 else None,
            ]
            filters = ", ".join(w for w in what if w) or "no filters"
            raise InputError(f"empty selection: no accepted, stored images match ({filters})")

        votes, vote_span = _frozen_votes(s, accepted, cand_item)
        gold_items = int(s.scalar(select(func.count()).select_from(schema.Gold)) or 0)
        item_boxes = _frozen_boxes(s, accepted, cand_item, image_facts, box_statuses)
        truth = _ground_truth(s, accepted, cand_item, {k: row.id for k, row in best.items()})

        # duplicate clusters: duplicate_of chains anywhere in the store, plus pHash neighbours in the release
        links = list(s.execute(select(IMG.id, IMG.duplicate_of).where(IMG.duplicate_of.is_not(None))))
        release_images = {k[0] for k in best}
        hashed = sorted(
            (img, h)
            for img, f in image_facts.items()
            if img in release_images and (h := phash_from_db(f[6])) is not None
        )
        near = near_pairs([i for i, _ in hashed], [h for _, h in hashed], phash_distance)
        keys = sorted(best)
        assignment = assign_splits(
            [(img, sy, image_facts[img][0]) for img, sy in keys],
            [(int(a), int(b)) for a, b in links if b is not None] + near,
            spec,
            seed,
        )
        if assignment.straddling_groups:
            raise AssertionError("split assignment put a duplicate cluster in two splits")

        items: list[Item] = []
        for key in keys:
            row = best[key]
            f = image_facts[key[0]]
            src_name, src_kind = sources.get(row.source_id, (str(row.source_id), "unknown"))
            yes, no = votes.get(key, (0, 0))
            items.append(
                Item(
                    split=assignment.split_of[key],
                    sha256=f[0],
                    synset=key[1],
                    image_id=key[0],
                    blob=f[1],
                    width=f[2],
                    height=f[3],
                    confidence=row.confidence,
                    candidate_id=row.id,
                    source=src_name,
                    source_kind=src_kind,
                    query=row.query,
                    url=row.url,
                    page_url=row.page_url,
                    license=row.license,
                    author=row.author,
                    collected=_iso(row.created_at),
                    votes_yes=yes,
                    votes_no=no,
                    boxes=tuple(sorted(item_boxes.get(key, ()))),
                    group=assignment.group_of[key[0]],
                )
            )
        items.sort(key=Item.sort_key)

        params: dict[str, Any] = {
            "min_confidence": min_confidence,
            "synsets": sorted(chosen) if chosen is not None else None,
            "subtree": subtree,
            "min_images": min_images,
            "split": {"val": spec.val, "test": spec.test},
            "seed": seed,
            "phash_distance": phash_distance,
            "box_statuses": sorted(box_statuses),
            "aggregation": {"method": agg_method, "params": agg_params},
            "notes": notes,
        }
        facts = {
            r.id: SynsetFacts(r.id, tuple(r.lemmas or ()), r.gloss or "", r.depth or 0)
            for r in s.scalars(select(schema.Synset))
        }
        in_release = sorted({it.synset for it in items})
        header = {
            "release": name,
            "created_at": _iso(created_at),
            "method": agg_method,
            "params": params,
            "items": len(items),
            "synsets": {
                sy: {"lemmas": list(facts[sy].lemmas), "gloss": facts[sy].gloss, "depth": facts[sy].depth}
                for sy in in_release
            },
        }
        manifest_sha, _ = write_manifest(project.blobs, header, items)
        hierarchy: Hierarchy | None
        try:
            hierarchy = project.hierarchy
        except SynsetforgeError:  # a custom taxonomy file that went missing: stats without coverage
            hierarchy = None
        truth_pos = sum(1 for v in truth.values() if v)
        stats = compute_stats(
            items,
            facts,
            hierarchy,
            extra={
                "created_at": _iso(created_at),
                "dropped_synsets": [{"synset": sy, "images": n} for sy, n in dropped],
                "missing_blobs": len(missing),
                "short_synsets": assignment.short_synsets,
                "duplicates": {
                    "phash_distance": phash_distance,
                    "clusters": assignment.multi_groups,
                    "images_in_clusters": assignment.images_in_multi_groups,
                    "largest_cluster": assignment.largest_group,
                    "straddling_clusters": assignment.straddling_groups,
                    "phash_pairs": len(near),
                },
                "votes": {"workers": int(vote_span[0] or 0), "gold_items_in_project": gold_items},
                "dates": {
                    "verified_first": _iso(vote_span[1]),
                    "verified_last": _iso(vote_span[2]),
                    "released": _iso(created_at),
                },
                "ground_truth": {
                    "items_with_truth": len(truth),
                    "true_precision": truth_pos / len(truth) if truth else None,
                },
                "method": agg_method,
            },
        )

        rel = schema.Release(
            name=name,
            created_at=created_at,
            method=agg_method,
            params=params,
            manifest_sha256=manifest_sha,
            stats=stats,
        )
        s.add(rel)
        try:
            s.flush()
        except IntegrityError:
            raise InputError(f"a release named {name!r} already exists") from None
        rows = [
            {
                "release_id": rel.id,
                "image_id": it.image_id,
                "synset_id": it.synset,
                "split": it.split,
                "sha256": it.sha256,
                "confidence": it.confidence,
            }
            for it in items
        ]
        for start in range(0, len(rows), _BATCH):
            s.execute(insert(schema.ReleaseItem), rows[start : start + _BATCH])
        return _to_release(rel)


# --- reading and comparing ------------------------------------------------------------------------------


def release_items(
    project: Project, release: Release, *, split: str | None = None, synset: str | None = None
) -> Iterator[tuple[str, str, str, int]]:
    """(synset, sha256, split, image_id) of a release, in code-point order of (synset, sha256), streamed."""
    RI = schema.ReleaseItem
    stmt = select(RI.synset_id, RI.sha256, RI.split, RI.image_id).where(RI.release_id == release.id)
    if split is not None:
        stmt = stmt.where(RI.split == split)
    if synset is not None:
        stmt = stmt.where(RI.synset_id == synset)
    stmt = stmt.order_by(bytewise(project, RI.synset_id), RI.sha256)
    with project.session() as s:
        for row in s.execute(stmt).yield_per(_BATCH):
            yield (row[0], row[1], row[2], int(row[3]))


@dataclass
class SynsetDiff:
    """What changed for one synset between two releases (images by content hash)."""

    synset: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (sha256, old split, new split)


def diff_releases(project: Project, old: str, new: str) -> list[SynsetDiff]:
    """Images added and removed per synset from release `old` to release `new` (a streaming merge)."""
    a, b = get_release(project, old), get_release(project, new)
    out: dict[str, SynsetDiff] = {}

    def entry(synset: str) -> SynsetDiff:
        if synset not in out:
            out[synset] = SynsetDiff(synset)
        return out[synset]

    left, right = release_items(project, a), release_items(project, b)
    x, y = next(left, None), next(right, None)
    while x is not None or y is not None:
        if y is None or (x is not None and (x[0], x[1]) < (y[0], y[1])):
            assert x is not None
            entry(x[0]).removed.append(x[1])
            x = next(left, None)
        elif x is None or (x[0], x[1]) > (y[0], y[1]):
            entry(y[0]).added.append(y[1])
            y = next(right, None)
        else:
            if x[2] != y[2]:
                entry(x[0]).moved.append((x[1], x[2], y[2]))
            x, y = next(left, None), next(right, None)
    return [out[k] for k in sorted(out)]


def split_sizes(release: Release) -> dict[str, int]:
    return {k: int(release.stats.get("splits", {}).get(k, 0)) for k in SPLITS}


def check_split_leaks(
    project: Project, release: Release, *, phash_distance: int | None = None
) -> dict[str, Any]:
    """Re-check, against the store as it is now, that no duplicate cluster straddles two splits.

    Duplicates found after the release was made (a later dedup pass adding `duplicate_of` links) show up
    here; the release itself never changes, so a leak means: make a new release.
    """
    distance = (
        int(release.params.get("phash_distance", DEFAULT_PHASH_DISTANCE))
        if phash_distance is None
        else phash_distance
    )
    RI, IMG = schema.ReleaseItem, schema.Image
    split_of: dict[tuple[int, str], str] = {}
    hashes: dict[int, int] = {}
    with project.session() as s:
        stmt = (
            select(RI.image_id, RI.synset_id, RI.split, IMG.phash)
            .join(IMG, IMG.id == RI.image_id)
            .where(RI.release_id == release.id)
        )
        for image_id, synset, split, ph in s.execute(stmt).yield_per(_BATCH):
            split_of[(int(image_id), synset)] = split
            h = phash_from_db(ph)
            if h is not None:
                hashes[int(image_id)] = h
        links = [
            (int(a), int(b))
            for a, b in s.execute(select(IMG.id, IMG.duplicate_of).where(IMG.duplicate_of.is_not(None)))
            if b is not None
        ]
    ids = sorted(hashes)
    links += near_pairs(ids, [hashes[i] for i in ids], distance)

    uf = UnionFind()
    for a, b in links:
        uf.union(a, b)
    by_group: dict[int, set[str]] = defaultdict(set)
    members: dict[int, set[int]] = defaultdict(set)
    for (image_id, _), split in split_of.items():
        g = uf.find(image_id)
        by_group[g].add(split)
        members[g].add(image_id)
    leaks = sorted(sorted(members[g]) for g, splits in by_group.items() if len(splits) > 1)
    return {
        "phash_distance": distance,
        "clusters": sum(1 for m in members.values() if len(m) > 1),
        "straddling": len(leaks),
        "examples": leaks[:20],
    }
