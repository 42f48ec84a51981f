"""Feature vectors of every image of a release, from a trained network, stored beside the release.

`embed` runs the network's penultimate layer (`Classifier.embed`) on each distinct image of the release
(centre crop, as at evaluation) and stores float16 vectors, plus the network's class probabilities, in one
blob, recorded in `release_features`. The release itself is untouched: its manifest is frozen, and these are
derived data any number of networks can add. They serve the explorer's "similar images" strip now, and
later the audits that look for label errors (near neighbours that disagree, confident wrong predictions).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import select

from synsetforge.errors import InputError, NotFoundError
from synsetforge.releases.manifest import iter_items, verify_manifest
from synsetforge.releases.release import get_release
from synsetforge.store import schema
from synsetforge.store.blobs import BlobStorage
from synsetforge.store.project import Project

PUBLIC_SPLITS = ("train", "val")  # the explorer never shows test images or their neighbours


@dataclass(frozen=True)
class Features:
    """A release's stored vectors: one row per distinct image, in manifest order."""

    name: str
    arch: str
    sha256: np.ndarray  # str [n]
    image_ids: np.ndarray  # int64 [n]
    splits: np.ndarray  # str [n]
    vectors: np.ndarray  # float16 [n, dim]
    probs: np.ndarray  # float16 [n, classes] (empty when not stored)
    classes: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


def _pack(features: Features) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        sha256=features.sha256.astype("S64"),
        image_ids=features.image_ids.astype(np.int64),
        splits=features.splits.astype("S5"),
        vectors=features.vectors.astype(np.float16),
        probs=features.probs.astype(np.float16),
        classes=np.asarray(features.classes, dtype="S64") if features.classes else np.empty(0, "S64"),
    )
    return buf.getvalue()


def _unpack(data: bytes, name: str, arch: str) -> Features:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Features(
            name=name,
            arch=arch,
            sha256=z["sha256"].astype(str),
            image_ids=z["image_ids"],
            splits=z["splits"].astype(str),
            vectors=z["vectors"],
            probs=z["probs"],
            classes=[c.decode() for c in z["classes"]],
        )


@dataclass
class EmbedResult:
    release: str
    name: str
    images: int
    dim: int
    blob: str
    seconds: float
    skipped: int


def embed(
    project: Project,
    run: Path,
    release: str,
    *,
    name: str | None = None,
    replace: bool = False,
    device: str = "auto",
    workers: int | None = None,
    batch_size: int = 256,
    log: Callable[[str], None] | None = None,
) -> EmbedResult:
    """Compute and store the run's feature vectors for every image of `release`."""
    import torch

    from synsetforge.training.augment import decoded_size
    from synsetforge.training.engine import cpu_threads, pick_device, run_eval
    from synsetforge.training.loader import DecodedImages, cache_dir, decoding_pool
    from synsetforge.training.predict import load_run_model

    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    dev = pick_device(device)
    torch.set_num_threads(cpu_threads())
    meta, model = load_run_model(run, dev)
    name = name or run.resolve().name
    if not name or len(name) > 200:
        raise InputError("--name must be 1..200 characters")
    rel = get_release(project, release)
    with project.session() as s:
        taken = s.scalar(
            select(schema.ReleaseFeatures.id).where(
                schema.ReleaseFeatures.release_id == rel.id, schema.ReleaseFeatures.name == name
            )
        )
    if taken is not None and not replace:
        raise InputError(f"release {release!r} already has features named {name!r}; pass --replace or --name")
    verify_manifest(project.blobs, rel.manifest_sha256)
    seen: dict[str, tuple[str, int, str]] = {}
    for item in iter_items(project.blobs, rel.manifest_sha256):
        seen.setdefault(item.sha256, (item.blob, item.image_id, item.split))
    if not seen:
        raise InputError(f"release {release!r} holds no images")
    shas = list(seen)
    size = decoded_size(meta.image_size, meta.crop_ratio)
    with decoding_pool(workers) as pool:
        images = DecodedImages(
            project.blobs,
            [seen[h][0] for h in shas],
            size,
            meta.fit,
            cache_dir=cache_dir(project.root),
        )
        if not images.streaming:
            images.fill(pool)
        rows = np.arange(len(shas))
        common = {"batch_size": batch_size, "pool": pool, "normalize": meta.normalize}
        vectors, kept = run_eval(model, images, rows, meta.image_size, dev, features=True, **common)  # type: ignore[arg-type]
        logits, _ = run_eval(model, images, kept, meta.image_size, dev, **common)  # type: ignore[arg-type]
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    feats = Features(
        name=name,
        arch=meta.arch,
        sha256=np.asarray([shas[i] for i in kept]),
        image_ids=np.asarray([seen[shas[i]][1] for i in kept], dtype=np.int64),
        splits=np.asarray([seen[shas[i]][2] for i in kept]),
        vectors=vectors.astype(np.float16),
        probs=probs.astype(np.float16),
        classes=list(meta.classes),
    )
    blob = project.blobs.put(_pack(feats))
    model_sha = hashlib.sha256(
        b"".join(t.detach().cpu().numpy().tobytes() for t in model.state_dict().values())
    ).hexdigest()
    with project.session() as s:
        if taken is not None:
            row = s.get(schema.ReleaseFeatures, taken)
            assert row is not None
        else:
            row = schema.ReleaseFeatures(release_id=rel.id, name=name)
            s.add(row)
        row.arch = meta.arch
        row.dim = int(vectors.shape[1])
        row.count = len(kept)
        row.blob = blob
        row.model_sha256 = model_sha
        row.info = {"run": str(run.resolve()), "trained_on": meta.release, "image_size": meta.image_size}
    skipped = len(shas) - len(kept)
    result = EmbedResult(
        rel.name, name, len(kept), int(vectors.shape[1]), blob, time.perf_counter() - t0, skipped
    )
    say(
        f"embedded {result.images} images of {rel.name} with {meta.arch} ({result.dim}-d float16, blob "
        f"{blob[:12]}) in {result.seconds:.1f} s"
        + (f"; {skipped} images could not be decoded" if skipped else "")
    )
    return result


def latest_features(project: Project, release_id: int) -> tuple[str, str, str] | None:
    """(name, arch, blob) of the newest features stored for a release, or None."""
    with project.session() as s:
        row = s.execute(
            select(schema.ReleaseFeatures.name, schema.ReleaseFeatures.arch, schema.ReleaseFeatures.blob)
            .where(schema.ReleaseFeatures.release_id == release_id)
            .order_by(schema.ReleaseFeatures.created_at.desc(), schema.ReleaseFeatures.id.desc())
            .limit(1)
        ).first()
    return (str(row[0]), str(row[1]), str(row[2])) if row else None


def load_features(project: Project, release: str, name: str | None = None) -> Features:
    """Stored features of a release (the newest set, or the one called `name`)."""
    rel = get_release(project, release)
    with project.session() as s:
        stmt = select(schema.ReleaseFeatures).where(schema.ReleaseFeatures.release_id == rel.id)
        if name is not None:
            stmt = stmt.where(schema.ReleaseFeatures.name == name)
        row = s.scalars(
            stmt.order_by(schema.ReleaseFeatures.created_at.desc(), schema.ReleaseFeatures.id.desc())
        ).first()
        if row is None:
            raise NotFoundError(
                f"release {release!r} has no stored features{f' named {name!r}' if name else ''}"
            )
        return _unpack(project.blobs.get(row.blob), row.name, row.arch)


class Neighbours:
    """Nearest public images by cosine similarity, over one stored feature set (immutable: cached by blob)."""

    def __init__(self, features: Features) -> None:
        public = np.isin(features.splits, PUBLIC_SPLITS)
        self.image_ids = features.image_ids[public]
        v = features.vectors[public].astype(np.float32)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.unit = v
        self.row = {int(i): k for k, i in enumerate(self.image_ids)}

    def of(self, image_id: int, k: int = 8) -> list[tuple[int, float]]:
        """(image id, cosine similarity) of the `k` public images most like `image_id`, best first."""
        r = self.row.get(int(image_id))
        if r is None or len(self.image_ids) < 2:
            return []
        sims = self.unit @ self.unit[r]
        sims[r] = -np.inf
        k = min(k, len(sims) - 1)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(self.image_ids[j]), float(sims[j])) for j in top]


@lru_cache(maxsize=8)
def _neighbours(blobs: BlobStorage, blob: str, name: str, arch: str) -> Neighbours:
    return Neighbours(_unpack(blobs.get(blob), name, arch))


def similar_images(project: Project, release_id: int, image_id: int, k: int = 8) -> list[tuple[int, float]]:
    """The explorer's "similar images": neighbours among the release's train and val images ([] when the
    release has no stored features)."""
    found = latest_features(project, release_id)
    if found is None:
        return []
    name, arch, blob = found
    return _neighbours(project.blobs, blob, name, arch).of(image_id, k)
