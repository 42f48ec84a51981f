"""What a network trains on: a release's frozen items, as (blob, class index) per split.

Read through the release manifest, the same frozen file every export reads, so training sees exactly what
the release holds, never the live tables. Class order is the exports' order (synsets sorted by folder name,
i.e. torchvision ImageFolder's indices), so a model's output k is class k of an exported copy too.

A release can hold an image under several synsets (a square is also a rectangle). Classification needs one
label per image, so the classes are the release's synsets minus any that is an ancestor of another (ILSVRC's
non-overlapping rule) unless the caller names them, and an image is used only when exactly one of the
classes holds it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synsetforge.errors import InputError
from synsetforge.releases.manifest import SPLIT_ORDER, iter_items, read_header, verify_manifest
from synsetforge.releases.names import safe_name
from synsetforge.releases.release import Release, get_release
from synsetforge.store.project import Project

SPLITS = tuple(SPLIT_ORDER)


@dataclass(frozen=True)
class Samples:
    """One split of a release for training or evaluation: parallel lists, in manifest (content hash) order."""

    split: str
    blobs: list[str]
    labels: np.ndarray  # int64 class index per image
    image_ids: list[int]
    sha256: list[str]

    def __len__(self) -> int:
        return len(self.blobs)

    def subset(self, rows: np.ndarray | Sequence[int]) -> Samples:
        idx = [int(r) for r in rows]
        return Samples(
            self.split,
            [self.blobs[i] for i in idx],
            self.labels[idx],
            [self.image_ids[i] for i in idx],
            [self.sha256[i] for i in idx],
        )

    def per_class(self, n_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=n_classes)


@dataclass(frozen=True)
class ReleaseData:
    """A release opened for training: its identity, classes in label order, and its splits."""

    release: str
    manifest_sha256: str
    classes: list[str]
    names: dict[str, str]  # class id -> first lemma, for messages and reports
    splits: dict[str, Samples]

    def split(self, name: str) -> Samples:
        return self.splits[name]


def manifest_synsets(project: Project, release: Release) -> dict[str, dict[str, Any]]:
    """synset -> the facts the release froze (lemmas, gloss, depth); from the items when the header has none."""
    facts: dict[str, dict[str, Any]] = dict(
        read_header(project.blobs, release.manifest_sha256).get("synsets", {})
    )
    if not facts:
        for item in iter_items(project.blobs, release.manifest_sha256):
            facts.setdefault(item.synset, {})
    return facts


def release_classes(project: Project, release: Release) -> list[str]:
    """The release's synsets minus ancestors of other ones, in export label order."""
    synsets = list(manifest_synsets(project, release))
    h = project.hierarchy
    known = [s for s in synsets if s in h]
    keep = set(h.non_overlapping(known)) | {s for s in synsets if s not in h}
    return sorted(keep, key=safe_name)


def check_class_list(classes: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(classes))
    if len(chosen) != len(classes):
        raise InputError("the class list names a class twice")
    if len(chosen) < 2:
        raise InputError(f"classification needs at least 2 classes, got {len(chosen)}")
    return chosen


def open_release(
    project: Project,
    release: str,
    *,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    require_train: bool = True,
) -> ReleaseData:
    """Read the release's manifest (checked against its hash) into per-split samples.

    `classes` None: the release's non-overlapping synsets in export order; else these, in this order (a
    model's class order). With `require_train`, a class without a train image is an InputError, as is a
    release with no images at all.
    """
    rel = get_release(project, release)
    verify_manifest(project.blobs, rel.manifest_sha256)
    header = read_header(project.blobs, rel.manifest_sha256)
    facts = manifest_synsets(project, rel)
    if header.get("items") == 0 or not facts:
        raise InputError(f"release {release!r} holds no images: nothing to train on")
    chosen = check_class_list(classes) if classes is not None else release_classes(project, rel)
    if len(chosen) < 2:
        raise InputError(
            f"classification needs at least 2 classes; release {release!r} has {len(chosen)} "
            "(synsets that are not ancestors of other synsets in it)"
        )
    unknown = [c for c in chosen if c not in facts]
    if unknown:
        raise InputError(f"{len(unknown)} classes are not in release {release!r}: {', '.join(unknown[:5])}")
    index = {c: i for i, c in enumerate(chosen)}
    by_split: dict[str, dict[str, tuple[str, int, set[int]]]] = {s: {} for s in splits}
    for item in iter_items(project.blobs, rel.manifest_sha256):
        if item.split not in by_split or item.synset not in index:
            continue
        entry = by_split[item.split].setdefault(item.sha256, (item.blob, item.image_id, set()))
        entry[2].add(index[item.synset])
    out: dict[str, Samples] = {}
    for split, entries in by_split.items():
        single = [
            (sha, blob, image_id, next(iter(c)))
            for sha, (blob, image_id, c) in entries.items()
            if len(c) == 1
        ]
        single.sort()
        out[split] = Samples(
            split=split,
            blobs=[b for _, b, _, _ in single],
            labels=np.asarray([c for _, _, _, c in single], dtype=np.int64),
            image_ids=[i for _, _, i, _ in single],
            sha256=[s for s, _, _, _ in single],
        )
    names = {c: (facts.get(c, {}).get("lemmas") or [c])[0] for c in chosen}
    if require_train and "train" in out:
        counts = out["train"].per_class(len(chosen))
        empty = [chosen[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            shown = ", ".join(f"{c} ({names[c]})" for c in empty[:5])
            more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
            raise InputError(
                f"{len(empty)} of {len(chosen)} classes have no train image in release {release!r}: {shown}{more}"
            )
    return ReleaseData(rel.name, rel.manifest_sha256, chosen, names, out)


def few_shot(samples: Samples, n_classes: int, shots: int, seed: int) -> Samples:
    """`shots` images per class drawn at random (seeded); every class must have that many."""
    if shots < 1:
        raise InputError(f"--shots must be at least 1, got {shots}")
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    by_class: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(samples.labels):
        by_class[int(label)].append(row)
    short = [c for c in range(n_classes) if len(by_class[c]) < shots]
    if short:
        raise InputError(
            f"{len(short)} classes have fewer than {shots} train images (e.g. class index {short[0]} has "
            f"{len(by_class[short[0]])}); use a smaller --shots"
        )
    for c in range(n_classes):
        rows += sorted(rng.choice(by_class[c], size=shots, replace=False).tolist())
    return samples.subset(sorted(rows))


__all__ = ["SPLITS", "ReleaseData", "Samples", "few_shot", "open_release", "release_classes"]
