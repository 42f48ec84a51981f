"""Challenges (SPEC 5): a fixed, non-overlapping class set on a release, hidden test labels, and settings.

Creating a challenge freezes everything scoring needs, so a score can be recomputed years later from the
stored submission file alone:

* the classes, in ILSVRC2012_ID order (`challenge_classes`);
* the test set: the release's test images of those classes, renamed `test_00000001.JPEG`, ... in an order
  drawn from a secret seed, so neither names nor order say anything about the labels; the labels and the
  boxes (the release manifest's, coordinates as frozen, in the served image's pixels) go into a gzip'd
  JSON manifest in the blob store;
* the hierarchical cost matrix (LCA heights) as a `.npy` blob;
* the public/private split seed.

Those keys live under `settings["hidden"]`, which no page or API ever shows; `public_settings` is what
pages may print.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from synsetforge.benchmark.leaderboard import public_private_split
from synsetforge.errors import InputError, NotFoundError, StoreError
from synsetforge.hierarchy.classlist import validate_class_list
from synsetforge.releases.manifest import iter_items, verify_manifest
from synsetforge.store import schema
from synsetforge.store.project import Project

TASKS = ("classification", "localization")
METRICS = (
    "top5_error",
    "top1_error",
    "hierarchical_error_normalized",
    "hierarchical_error_raw",
    "localization_error",
)
"""Metric keys as `metrics.Scores.summary()` names them; every one is an error (lower is better)."""

METRIC_LABELS = {
    "top5_error": "top-5 error",
    "top1_error": "top-1 error",
    "hierarchical_error_normalized": "hierarchical error (2011, / max height)",
    "hierarchical_error_raw": "hierarchical error (2010, raw mean height)",
    "localization_error": "localization error",
}
BINARY_METRICS = frozenset({"top5_error", "top1_error", "localization_error"})
"""Metrics whose per-image loss is 0/1: paired tests use exact McNemar on them, a bootstrap otherwise."""

TEST_NAME = "test_{:08d}.JPEG"
VAL_NAME = "val_{:08d}.JPEG"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MANIFEST_VERSION = 1


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time here is UTC, so attach the zone."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class ChallengeSettings:
    """What an organiser chooses; stored in `challenges.settings` next to the hidden keys."""

    task: str = "classification"
    metrics: list[str] = field(default_factory=list)  # shown; default by task
    rank_by: str = ""  # default: top-5 error, or localization error for the localization task
    daily_limit: int = 5  # scored or queued submissions per TEAM in any 24 hours
    public_fraction: float = 0.5  # share of the test images behind the public leaderboard
    ladder: bool = False  # Blum & Hardt's Ladder on the public leaderboard
    ladder_margin: float | None = None  # fixed step; None = parameter-free Ladder
    max_upload_bytes: int = 32 * 1024 * 1024
    n_resamples: int = 10_000  # bootstrap resamples behind every 95% interval
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if not self.metrics:
            self.metrics = ["top5_error", "top1_error", "hierarchical_error_normalized"]
            if self.task == "localization":
                self.metrics = ["localization_error", *self.metrics]
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
        if "localization_error" in self.metrics and self.task != "localization":
            raise InputError("localization_error is only scored in a localization challenge")
        self.metrics = list(dict.fromkeys(self.metrics))
        if not self.rank_by:
            self.rank_by = "localization_error" if self.task == "localization" else "top5_error"
        if self.rank_by not in self.metrics:
            raise InputError(f"the ranking metric {self.rank_by!r} must be one of the shown metrics")
        if not isinstance(self.daily_limit, int) or self.daily_limit < 1:
            raise InputError(f"the daily submission limit must be a positive integer, not {self.daily_limit}")
        if not 0 < self.public_fraction < 1:
            raise InputError(f"public_fraction must lie strictly between 0 and 1, not {self.public_fraction}")
        if self.ladder_margin is not None and not self.ladder_margin > 0:
            raise InputError(f"the Ladder margin must be positive, not {self.ladder_margin}")
        if self.max_upload_bytes < 1:
            raise InputError("max_upload_bytes must be positive")
        if not 100 <= self.n_resamples <= 1_000_000:
            raise InputError("n_resamples must lie in 100..1,000,000")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChallengeSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ChallengeInfo:
    """A challenge as pages and commands show it: never the hidden keys."""

    id: int
    name: str
    release: str
    settings: ChallengeSettings
    classes: tuple[str, ...]
    n_test: int
    n_public: int
    n_val: int
    stats: dict[str, Any]
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime

    @property
    def n_private(self) -> int:
        return self.n_test - self.n_public

    def is_open(self, at: datetime | None = None) -> bool:
        at = at or now_utc()
        return (self.starts_at is None or at >= self.starts_at) and (
            self.ends_at is None or at < self.ends_at
        )

    def revealed(self, at: datetime | None = None) -> bool:
        """The private leaderboard is shown once the challenge has ended."""
        return self.ends_at is not None and (at or now_utc()) >= self.ends_at

    def status(self, at: datetime | None = None) -> str:
        at = at or now_utc()
        if self.starts_at is not None and at < self.starts_at:
            return "not started"
        return "ended" if self.revealed(at) else "open"


# -- creation ---------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(
            f"challenge name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _release(s: Session, release: str) -> schema.Release:
    row = s.scalar(select(schema.Release).where(schema.Release.name == release))
    if row is None:
        names = list(s.scalars(select(schema.Release.name).order_by(schema.Release.name).limit(10)))
        hint = f"; releases: {', '.join(names)}" if names else "; the project has no release yet"
        raise NotFoundError(f"no release named {release!r}{hint}")
    return row


def _split_counts(s: Session, release_id: int) -> dict[str, dict[str, int]]:
    """synset -> split -> number of images."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    rows = s.execute(
        select(schema.ReleaseItem.synset_id, schema.ReleaseItem.split, func.count())
        .where(schema.ReleaseItem.release_id == release_id)
        .group_by(schema.ReleaseItem.synset_id, schema.ReleaseItem.split)
    )
    for sid, split, n in rows:
        out[sid][split] = int(n)
    return out


def choose_classes(
    project: Project,
    counts: dict[str, dict[str, int]],
    *,
    classes: Sequence[str] | Path | None,
    leaves: bool,
    min_images: int,
) -> list[str]:
    """The class set, validated: known, distinct, non-overlapping, each with test images in the release."""
    h = project.hierarchy
    if (classes is None) == (not leaves):
        raise InputError("give either a class list (--classes FILE) or --leaves, not both and not neither")
    if classes is not None:
        report = validate_class_list(h, classes if isinstance(classes, Path) else list(classes))
        if report.overlapping:
            pairs = "; ".join(
                f"{a} ({h.name(a)}) is an ancestor of {d} ({h.name(d)})" for a, d in report.overlapping
            )
            raise InputError(
                f"the classes overlap ({len(report.overlapping)} ancestor/descendant pairs): {pairs}; "
                "no class may be an ancestor of another"
            )
        if not report.ok:
            raise InputError("; ".join(report.problems()))
        chosen = list(report.ids)
    else:
        if min_images < 1:
            raise InputError(f"--min-images must be at least 1, not {min_images}")
        chosen = sorted(
            sid
            for sid, by_split in counts.items()
            if sid in h and h.is_leaf(sid) and sum(by_split.values()) >= min_images and by_split.get("test")
        )
        overlapping = h.overlapping_pairs(chosen)  # leaves never overlap; a custom DAG is checked anyway
        if overlapping:
            raise InputError(f"the leaves overlap: {overlapping[:5]}")
    missing = [sid for sid in chosen if not counts.get(sid, {}).get("test")]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"{len(missing)} classes have no test image in the release: {shown}")
    if len(chosen) < 2:
        what = "leaf synsets with test images" if leaves else "classes"
        extra = f" and at least {min_images} images" if leaves else ""
        raise InputError(f"a challenge needs at least 2 classes; the release has {len(chosen)} {what}{extra}")
    return chosen


def _order_key(seed: str, sha: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{sha}".encode(), digest_size=16).digest()


def _test_images(
    s: Session, release_id: int, classes: list[str]
) -> tuple[list[tuple[int, str, int]], dict[str, int]]:
    """(image id, sha256, class index) of single-class test images, and counts of images left out."""
    index = {sid: i for i, sid in enumerate(classes)}
    by_image: dict[int, list[tuple[str, str]]] = defaultdict(list)
    other_splits: set[int] = set()
    rows = s.execute(
        select(
            schema.ReleaseItem.image_id,
            schema.ReleaseItem.synset_id,
            schema.ReleaseItem.split,
            schema.ReleaseItem.sha256,
        ).where(schema.ReleaseItem.release_id == release_id)
    )
    for image_id, sid, split, sha in rows:
        if split == "test":
            if sid in index:
                by_image[image_id].append((sid, sha))
        else:
            other_splits.add(image_id)
    out: list[tuple[int, str, int]] = []
    dropped = {"ambiguous": 0, "also_in_train_or_val": 0}
    for image_id, labels in by_image.items():
        if len({sid for sid, _ in labels}) > 1:
            dropped["ambiguous"] += 1
        elif image_id in other_splits:
            dropped["also_in_train_or_val"] += 1
        else:
            out.append((image_id, labels[0][1], index[labels[0][0]]))
    return out, dropped


def _release_boxes(
    project: Project, rel: schema.Release, split: str, classes: list[str]
) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """image id -> [(class index, x1, y1, x2, y2)]: the boxes the release froze for its `split` items of
    these classes, exactly as its manifest has them (stored-image pixels, inclusive corners).

    Never the live `boxes` table: a challenge's truth is the release's, so boxes added, re-rounded or
    re-judged later cannot leak in, and every box origin the release kept counts. The manifest is checked
    against its hash first; a missing or corrupted one is a StoreError.
    """
    if not rel.manifest_sha256:
        raise StoreError(f"release {rel.name!r} has no manifest; a challenge needs the release's boxes")
    verify_manifest(project.blobs, rel.manifest_sha256)
    index = {sid: i for i, sid in enumerate(classes)}
    out: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
    for item in iter_items(project.blobs, rel.manifest_sha256, split):
        if item.synset in index:
            out[item.image_id].extend((index[item.synset], *box) for box in item.boxes)
    return out


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def create_challenge(
    project: Project,
    name: str,
    release: str,
    *,
    classes: Sequence[str] | Path | None = None,
    leaves: bool = False,
    min_images: int = 1,
    settings: ChallengeSettings | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    seed: str | None = None,
    boxed_only: bool = False,
) -> ChallengeInfo:
    """Create a challenge on `release`: classes from a list (file or ids) or the release's leaf synsets.

    The release's test split (images of the chosen classes with exactly one of them) becomes the hidden
    test set; its val split stays public. `seed` (default: random) fixes the test-image order and the
    public/private split; it is kept hidden. A localization challenge needs a box on every test image;
    with `boxed_only` test images without one are left out instead (ILSVRC's localization test images all
    had boxes), counted in ``stats["dropped_test_images"]["without_boxes"]``.
    """
    check_name(name)
    settings = settings or ChallengeSettings()
    starts_at, ends_at = utc(starts_at), utc(ends_at)
    if starts_at and ends_at and ends_at <= starts_at:
        raise InputError("the end date must come after the start date")
    seed = seed or secrets.token_hex(16)
    with project.session() as s:
        if s.scalar(select(schema.Challenge.id).where(schema.Challenge.name == name)) is not None:
            raise InputError(f"a challenge named {name!r} already exists")
        rel = _release(s, release)
        counts = _split_counts(s, rel.id)
        class_ids = choose_classes(project, counts, classes=classes, leaves=leaves, min_images=min_images)
        images, dropped = _test_images(s, rel.id, class_ids)
        boxes = _release_boxes(project, rel, "test", class_ids)
        if boxed_only and settings.task == "localization":
            kept = [im for im in images if boxes.get(im[0])]
            dropped["without_boxes"] = len(images) - len(kept)
            images = kept
        if len(images) < 2:
            raise InputError(f"the release has only {len(images)} usable test images for these classes")
        images.sort(key=lambda t: (_order_key(seed, t[1]), t[0]))
        anon = [TEST_NAME.format(k) for k in range(1, len(images) + 1)]
        if settings.task == "localization":
            without = [anon[k] for k, (image_id, _, _) in enumerate(images) if not boxes.get(image_id)]
            if without:
                raise InputError(
                    f"a localization challenge needs a box on every test image; {len(without)} of "
                    f"{len(images)} test images have none in release {release!r} (--boxed-only leaves "
                    "them out)"
                )
        offsets = [0]
        flat: list[list[int]] = []
        box_labels: list[int] = []
        for image_id, _, _ in images:
            for label, *xyxy in boxes.get(image_id, []):
                flat.append(xyxy)
                box_labels.append(label)
            offsets.append(len(flat))
        manifest = {
            "version": MANIFEST_VERSION,
            "challenge": name,
            "release": release,
            "nonce": secrets.token_hex(16),  # keeps the blob key unguessable
            "classes": class_ids,
            "image_ids": anon,
            "images": [image_id for image_id, _, _ in images],
            "sha256": [sha for _, sha, _ in images],
            "labels": [label for _, _, label in images],
            "box_offsets": offsets,
            "boxes": flat,
            "box_labels": box_labels,
        }
        manifest_key = project.blobs.put(
            gzip.compress(json.dumps(manifest, separators=(",", ":")).encode(), mtime=0)
        )
        h = project.hierarchy
        cost = h.hierarchical_cost_matrix(class_ids).astype(np.int64)
        max_height = max(int(h.max_height), int(cost.max()), 1)
        cost_key = project.blobs.put(_npy(cost))
        public = public_private_split(anon, public_fraction=settings.public_fraction, seed=seed)
        n_public = int(public.sum())
        if n_public == 0 or n_public == len(anon):
            raise InputError(
                f"public_fraction {settings.public_fraction} leaves one side of the {len(anon)} test images empty"
            )
        n_val = len(val_items_for(s, rel.id, class_ids))
        stats = {
            "n_test": len(anon),
            "n_public": n_public,
            "n_val": n_val,
            "dropped_test_images": dropped,
            "test_images_with_boxes": sum(1 for image_id, _, _ in images if boxes.get(image_id)),
            "max_height": max_height,
        }
        stored = asdict(settings) | {
            "stats": stats,
            "hidden": {"seed": seed, "test_manifest": manifest_key, "cost_matrix": cost_key},
        }
        row = schema.Challenge(
            name=name, release_id=rel.id, settings=stored, starts_at=starts_at, ends_at=ends_at
        )
        s.add(row)
        s.flush()
        s.add_all(
            schema.ChallengeClass(challenge_id=row.id, position=i, synset_id=sid)
            for i, sid in enumerate(class_ids, start=1)
        )
        challenge_id = row.id
    return get_challenge(project, challenge_id)


# -- reading --------------------------------------------------------------------------------------


def _info(s: Session, row: schema.Challenge) -> ChallengeInfo:
    release = s.get(schema.Release, row.release_id)
    classes = tuple(
        s.scalars(
            select(schema.ChallengeClass.synset_id)
            .where(schema.ChallengeClass.challenge_id == row.id)
            .order_by(schema.ChallengeClass.position)
        )
    )
    data = dict(row.settings or {})
    stats = dict(data.get("stats", {}))
    return ChallengeInfo(
        id=row.id,
        name=row.name,
        release=release.name if release else "?",
        settings=ChallengeSettings.from_json(data),
        classes=classes,
        n_test=int(stats.get("n_test", 0)),
        n_public=int(stats.get("n_public", 0)),
        n_val=int(stats.get("n_val", 0)),
        stats=stats,
        starts_at=utc(row.starts_at),
        ends_at=utc(row.ends_at),
        created_at=utc(row.created_at) or now_utc(),
    )


def get_challenge(project: Project, challenge: str | int) -> ChallengeInfo:
    """A challenge by name or id (NotFoundError otherwise)."""
    with project.session() as s:
        return _info(s, challenge_row(s, challenge))


def challenge_row(s: Session, challenge: str | int) -> schema.Challenge:
    if isinstance(challenge, int):
        row = s.get(schema.Challenge, challenge)
    else:
        row = s.scalar(select(schema.Challenge).where(schema.Challenge.name == challenge))
    if row is None:
        raise NotFoundError(f"no challenge named {challenge!r}")
    return row


def list_challenges(project: Project) -> list[ChallengeInfo]:
    with project.session() as s:
        return [_info(s, row) for row in s.scalars(select(schema.Challenge).order_by(schema.Challenge.id))]


def hidden(project: Project, challenge_id: int) -> dict[str, str]:
    """The hidden keys (seed, manifest and cost-matrix blobs): for scoring code only."""
    with project.session() as s:
        row = s.get(schema.Challenge, challenge_id)
        if row is None:
            raise NotFoundError(f"no challenge with id {challenge_id}")
        return dict((row.settings or {}).get("hidden", {}))


_manifests: dict[tuple[str, str], dict[str, Any]] = {}


def load_manifest(project: Project, key: str) -> dict[str, Any]:
    """The frozen test manifest (cached: blobs never change under their key). Do not modify the result."""
    cache_key = (project.blobs.location, key)
    data = _manifests.get(cache_key)
    if data is None:
        data = json.loads(gzip.decompress(project.blobs.get(key)))
        if data.get("version") != MANIFEST_VERSION:
            raise InputError(f"test manifest {key[:12]}... has unknown version {data.get('version')!r}")
        if len(_manifests) >= 8:
            _manifests.clear()
        _manifests[cache_key] = data
    return data


def load_cost_matrix(project: Project, key: str) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(project.blobs.get(key)), allow_pickle=False))


def public_settings(info: ChallengeInfo) -> dict[str, Any]:
    """Settings a page or API may show (everything but the hidden keys)."""
    out = asdict(info.settings)
    out.update(
        starts_at=info.starts_at.isoformat() if info.starts_at else None,
        ends_at=info.ends_at.isoformat() if info.ends_at else None,
        n_classes=len(info.classes),
        n_test=info.n_test,
        n_public=info.n_public,
        n_private=info.n_private,
        n_val=info.n_val,
    )
    return out


# -- what participants may download -----------------------------------------------------------------


def anonymous_test_ids(project: Project, challenge: str | int) -> list[str]:
    """The anonymous test image names, in file-name order (the classic submission's line order)."""
    info = get_challenge(project, challenge)
    return [TEST_NAME.format(k) for k in range(1, info.n_test + 1)]


def anonymous_test_images(project: Project, challenge: str | int) -> list[tuple[str, int]]:
    """(anonymous name, image id) of every test image in file-name order: the images, never their labels."""
    info = get_challenge(project, challenge)
    manifest = load_manifest(project, hidden(project, info.id)["test_manifest"])
    return list(zip(manifest["image_ids"], (int(i) for i in manifest["images"]), strict=True))


def image_blobs(project: Project, image_ids: Sequence[int]) -> dict[int, str]:
    """image id -> blob key of its stored bytes."""
    out: dict[int, str] = {}
    ids = list(image_ids)
    with project.session() as s:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for image_id, blob in s.execute(
                select(schema.Image.id, schema.Image.blob).where(schema.Image.id.in_(chunk))
            ):
                if blob:
                    out[int(image_id)] = str(blob)
    return out


def anonymous_test_blob(project: Project, challenge: str | int, image_name: str) -> tuple[str, int]:
    """(blob key, image id) of one test image by its anonymous name (NotFoundError for any other name)."""
    m = re.fullmatch(r"test_(\d{8})\.JPEG", image_name)
    info = get_challenge(project, challenge)
    if m is None or not 1 <= int(m.group(1)) <= info.n_test:
        raise NotFoundError(f"no test image {image_name!r} in challenge {info.name!r}")
    manifest = load_manifest(project, hidden(project, info.id)["test_manifest"])
    image_id = int(manifest["images"][int(m.group(1)) - 1])
    with project.session() as s:
        image = s.get(schema.Image, image_id)
        if image is None or image.blob is None:
            raise NotFoundError(f"test image {image_name!r} has no stored bytes")
        return image.blob, image_id


def val_items_for(s: Session, release_id: int, classes: Sequence[str]) -> list[tuple[str, int, str]]:
    """(val name, image id, class id) of the release's single-class val images of these classes.

    Val labels are public (as in ILSVRC); names follow the images' content hashes, so they are stable.
    """
    wanted = set(classes)
    by_image: dict[int, set[str]] = defaultdict(set)
    sha: dict[int, str] = {}
    rows = s.execute(
        select(schema.ReleaseItem.image_id, schema.ReleaseItem.synset_id, schema.ReleaseItem.sha256).where(
            schema.ReleaseItem.release_id == release_id, schema.ReleaseItem.split == "val"
        )
    )
    for image_id, sid, digest in rows:
        if sid in wanted:
            by_image[image_id].add(sid)
            sha[image_id] = digest
    single = sorted((sha[i], i, next(iter(sids))) for i, sids in by_image.items() if len(sids) == 1)
    return [(VAL_NAME.format(k), image_id, sid) for k, (_, image_id, sid) in enumerate(single, start=1)]


_val_cache: dict[tuple[str, int], list[tuple[str, int, str]]] = {}


def val_items(project: Project, challenge: str | int) -> list[tuple[str, int, str]]:
    """The challenge's public val images (cached: a release and a challenge's classes never change)."""
    with project.session() as s:
        row = challenge_row(s, challenge)
        key = (str(project.root), row.id)
        if key not in _val_cache:
            if len(_val_cache) >= 16:
                _val_cache.clear()
            _val_cache[key] = val_items_for(s, row.release_id, _info(s, row).classes)
        return _val_cache[key]


def train_items(
    project: Project, challenge: str | int, *, per_class: int | None = None
) -> list[tuple[int, str]]:
    """(image id, class id) of the release's train images of the challenge's classes, per class in sha order."""
    with project.session() as s:
        row = challenge_row(s, challenge)
        wanted = set(_info(s, row).classes)
        rows = s.execute(
            select(schema.ReleaseItem.image_id, schema.ReleaseItem.synset_id)
            .where(schema.ReleaseItem.release_id == row.release_id, schema.ReleaseItem.split == "train")
            .order_by(schema.ReleaseItem.synset_id, schema.ReleaseItem.sha256)
        )
        out: list[tuple[int, str]] = []
        taken: dict[str, int] = defaultdict(int)
        for image_id, sid in rows:
            if sid in wanted and (per_class is None or taken[sid] < per_class):
                taken[sid] += 1
                out.append((image_id, sid))
        return out


def synset_mapping(project: Project, challenge: str | int) -> str:
    """`LOC_synset_mapping.txt` for the challenge: `wnid name` per line, in ILSVRC2012_ID order."""
    info = get_challenge(project, challenge)
    h = project.hierarchy
    lines = []
    for sid in info.classes:
        names = ", ".join(h.get(sid).lemmas) if sid in h else sid
        lines.append(f"{sid} {names}")
    return "\n".join(lines) + "\n"
