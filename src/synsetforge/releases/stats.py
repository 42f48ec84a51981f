"""Release statistics, computed once from the frozen items and stored with the release.

Counts are per (image, synset) item unless said otherwise (an image labelled with two synsets counts once in
`distinct_images` and once per synset elsewhere). Coverage is measured against the full hierarchy: for each
top-level project synset (one with no ancestor among the project's synsets), how many synsets of its subtree
have at least one image in the release.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synsetforge.releases.manifest import Item
from synsetforge.releases.splits import SPLITS

if TYPE_CHECKING:
    from synsetforge.hierarchy.model import Hierarchy

SIZE_EDGES = (0, 64, 128, 256, 384, 512, 768, 1024, 2048, 4096)


@dataclass(frozen=True)
class SynsetFacts:
    """What the release knows of a synset: the project's snapshot of it."""

    id: str
    lemmas: tuple[str, ...]
    gloss: str
    depth: int

    @property
    def name(self) -> str:
        return self.lemmas[0] if self.lemmas else self.id


def size_histogram(longer_sides: Sequence[int]) -> dict[str, Any]:
    counts = [0] * len(SIZE_EDGES)
    for v in longer_sides:
        k = len(SIZE_EDGES) - 1
        while k > 0 and v < SIZE_EDGES[k]:
            k -= 1
        counts[k] += 1
    labels = [
        f"{lo}-{hi - 1}" if hi is not None else f">={lo}"
        for lo, hi in zip(SIZE_EDGES, [*SIZE_EDGES[1:], None], strict=True)
    ]
    return {
        "measure": "longer side of the stored image, px",
        "edges": list(SIZE_EDGES),
        "labels": labels,
        "counts": counts,
    }


def _summary(values: Sequence[int]) -> dict[str, float | int | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def coverage(
    synsets: Mapping[str, SynsetFacts],
    per_synset: Mapping[str, int],
    hierarchy: Hierarchy | None,
) -> list[dict[str, Any]]:
    """One row per top-level project synset: its subtree in the hierarchy and how much of it has images."""
    in_h = {s for s in synsets if hierarchy is not None and s in hierarchy}
    tops = []
    for s in sorted(synsets):
        if s in in_h and hierarchy is not None:
            if not any(a in synsets for a in hierarchy.ancestors(s)):
                tops.append(s)
        else:
            tops.append(s)
    rows = []
    for t in tops:
        if t in in_h and hierarchy is not None:
            subtree = hierarchy.subtree(t)
        else:
            subtree = [t]
        released = [s for s in subtree if per_synset.get(s, 0) > 0]
        rows.append(
            {
                "synset": t,
                "name": synsets[t].name,
                "depth": synsets[t].depth,
                "subtree_synsets": len(subtree),
                "project_synsets": sum(1 for s in subtree if s in synsets),
                "released_synsets": len(released),
                "images": sum(per_synset.get(s, 0) for s in released),
                "coverage": len(released) / len(subtree) if subtree else 0.0,
            }
        )
    return rows


def compute_stats(
    items: Sequence[Item],
    synsets: Mapping[str, SynsetFacts],
    hierarchy: Hierarchy | None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stats dictionary stored in `releases.stats` (JSON-ready)."""
    split_counts: dict[str, Counter[str]] = defaultdict(Counter)
    licenses: Counter[str] = Counter()
    sources: Counter[tuple[str, str]] = Counter()
    images: set[int] = set()
    longer: list[int] = []
    widths: list[int] = []
    heights: list[int] = []
    boxed_items = 0
    boxes = 0
    seen_size: set[int] = set()
    collected = [it.collected for it in items if it.collected]
    yes = no = 0
    for it in items:
        split_counts[it.synset][it.split] += 1
        licenses[it.license or "unknown"] += 1
        sources[(it.source, it.source_kind)] += 1
        images.add(it.image_id)
        if it.image_id not in seen_size and it.width and it.height:
            seen_size.add(it.image_id)
            widths.append(it.width)
            heights.append(it.height)
            longer.append(max(it.width, it.height))
        if it.boxes:
            boxed_items += 1
            boxes += len(it.boxes)
        yes += it.votes_yes
        no += it.votes_no
    per_synset_total = {s: sum(c.values()) for s, c in split_counts.items()}
    per_synset = [
        {
            "synset": s,
            "name": synsets[s].name if s in synsets else s,
            "depth": synsets[s].depth if s in synsets else None,
            **{k: split_counts[s][k] for k in SPLITS},
            "total": per_synset_total[s],
        }
        for s in sorted(split_counts)
    ]
    by_depth: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for s, total in per_synset_total.items():
        d = synsets[s].depth if s in synsets else -1
        by_depth[d][0] += 1
        by_depth[d][1] += total
    per_depth = [{"depth": d, "synsets": v[0], "images": v[1]} for d, v in sorted(by_depth.items())]
    totals = Counter[str]()
    for c in split_counts.values():
        totals.update(c)
    out: dict[str, Any] = {
        "images": len(items),
        "distinct_images": len(images),
        "synsets": len(split_counts),
        "splits": {k: totals[k] for k in SPLITS},
        "per_synset": per_synset,
        "per_depth": per_depth,
        "coverage": coverage(synsets, per_synset_total, hierarchy),
        "size_histogram": size_histogram(longer),
        "sizes": {"width": _summary(widths), "height": _summary(heights)},
        "licenses": [
            {"license": k, "images": v} for k, v in sorted(licenses.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "sources": [
            {"source": name, "kind": kind, "images": v}
            for (name, kind), v in sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "boxes": {"images_with_boxes": boxed_items, "boxes": boxes},
        "votes": {
            "yes": yes,
            "no": no,
            "per_image_mean": (yes + no) / len(items) if items else 0.0,
            "selection_frequency_mean": yes / (yes + no) if yes + no else None,
        },
        "dates": {
            "collected_first": min(collected) if collected else None,
            "collected_last": max(collected) if collected else None,
        },
    }
    if extra:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out
