"""What a release froze, indexed for pages: its manifest read once, its items found by image id.

Why: pages about a release must show the votes, confidence, provenance and synset facts the release froze,
never the live tables (which change with every vote, `crowd aggregate --write` or a later edit). A manifest
never changes under its SHA-256, so its index is cached by that hash (a few releases per process). The
index keeps five numbers per item (image id, line offset and length, duplicate cluster, split); an item's
line is read back from the blob store when a page asks for it, so a large release costs little memory.

Building the index checks the manifest against its hash: a missing or corrupted manifest is a StoreError
(one line from the CLI, 503 from the web app), never a page built from live tables instead.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from synsetforge.errors import StoreError
from synsetforge.releases.manifest import Item, open_manifest
from synsetforge.releases.release import Release
from synsetforge.releases.splits import SPLITS
from synsetforge.store.blobs import BlobStorage
from synsetforge.store.project import Project

CACHED_RELEASES = 4

_cache: OrderedDict[tuple[str, str], FrozenIndex] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class FrozenIndex:
    """One release's manifest: its header and where each item's line lies (sorted by image id)."""

    release: str
    sha256: str
    header: dict[str, Any]
    image_ids: np.ndarray  # int64, sorted
    offsets: np.ndarray  # int64: byte offset of the item's line
    lengths: np.ndarray  # int64: byte length of the line
    groups: np.ndarray  # int64: duplicate cluster of the image
    splits: np.ndarray  # int8: index into SPLITS

    def synset_facts(self, synset: str) -> dict[str, Any] | None:
        """Lemmas, gloss and depth of a synset as the release froze them (None if not in the release)."""
        facts = self.header.get("synsets", {}).get(synset)
        return dict(facts) if isinstance(facts, dict) else None

    @property
    def synsets(self) -> dict[str, dict[str, Any]]:
        return dict(self.header.get("synsets", {}))

    def _rows(self, image_id: int) -> range:
        lo = int(np.searchsorted(self.image_ids, image_id, side="left"))
        hi = int(np.searchsorted(self.image_ids, image_id, side="right"))
        return range(lo, hi)

    def items(self, blobs: BlobStorage, image_id: int) -> list[Item]:
        """The frozen items (one per synset) of an image, in synset order; [] when it is not released."""
        rows = self._rows(image_id)
        if not rows:
            return []
        out = []
        with open_manifest(blobs, self.sha256) as f:
            for k in rows:
                f.seek(int(self.offsets[k]))
                line = f.read(int(self.lengths[k]))
                try:
                    out.append(Item.from_json(line.decode("utf-8")))
                except (ValueError, TypeError, UnicodeDecodeError):
                    raise StoreError(
                        f"the manifest of release {self.release!r} is corrupted (its content changed)"
                    ) from None
        return sorted(out, key=lambda it: it.synset)

    def cluster(self, image_id: int, splits: tuple[str, ...] = SPLITS) -> list[int]:
        """Other images of the release in the image's duplicate cluster (as frozen), in the given splits."""
        rows = self._rows(image_id)
        if not rows:
            return []
        group = self.groups[rows[0]]
        wanted = np.isin(self.splits, [SPLITS.index(s) for s in splits])
        mates = self.image_ids[(self.groups == group) & wanted]
        return sorted({int(i) for i in mates.tolist()} - {image_id})


def _build(blobs: BlobStorage, release: Release) -> FrozenIndex:
    sha = release.manifest_sha256
    if not sha:
        raise StoreError(f"release {release.name!r} has no manifest; it cannot be shown")
    digest = hashlib.sha256()
    ids: list[int] = []
    offsets: list[int] = []
    lengths: list[int] = []
    groups: list[int] = []
    splits: list[int] = []
    header: dict[str, Any] = {}
    position = 0
    try:
        with open_manifest(blobs, sha) as f:
            for number, line in enumerate(f):
                digest.update(line)
                if number == 0:
                    header = json.loads(line)
                else:
                    data = json.loads(line)
                    ids.append(int(data["image_id"]))
                    offsets.append(position)
                    lengths.append(len(line))
                    groups.append(int(data.get("group", 0)))
                    splits.append(SPLITS.index(data["split"]))
                position += len(line)
    except (ValueError, KeyError, TypeError):
        raise StoreError(
            f"the manifest of release {release.name!r} is corrupted (its content no longer matches its hash)"
        ) from None
    if digest.hexdigest() != sha:
        raise StoreError(
            f"the manifest of release {release.name!r} is corrupted (its content no longer matches its hash)"
        )
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
    return FrozenIndex(
        release=release.name,
        sha256=sha,
        header=header,
        image_ids=np.asarray(ids, dtype=np.int64)[order],
        offsets=np.asarray(offsets, dtype=np.int64)[order],
        lengths=np.asarray(lengths, dtype=np.int64)[order],
        groups=np.asarray(groups, dtype=np.int64)[order],
        splits=np.asarray(splits, dtype=np.int8)[order],
    )


def frozen_index(project: Project, release: Release) -> FrozenIndex:
    """The release's manifest index, built on first use and cached by the manifest's hash."""
    key = (project.blobs.location, release.manifest_sha256)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    index = _build(project.blobs, release)
    with _lock:
        _cache[key] = index
        while len(_cache) > CACHED_RELEASES:
            _cache.popitem(last=False)
    return index
