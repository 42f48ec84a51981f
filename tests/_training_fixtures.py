"""Small releases of drawn figures for training tests, built without collection or crowd (rows inserted
directly, as in `_release_fixtures`), so a network has something real but quick to learn.

Each image shows one figure of the synthetic engine (its outline generator, `SHAPES`), filled with a random
colour on a plain light background (a dark figure: one contrast polarity, so it learns
fast), rotated at random and covering 55-90% of a small square image, with
pixel noise and JPEG compression; no clutter, so a few epochs at 32 px learn it. Every candidate is
accepted: labels are the renderer's ground truth.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw

from synsetforge.candidates.sources.synthetic import SHAPES, encode
from synsetforge.releases import create_release
from synsetforge.releases.release import Release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.store.hashes import phash_to_db

CIRCLE, TRIANGLE, SQUARE, PENTACLE = "n13873502", "n13879947", "n13878634", "n13882008"
HEART, SEMICIRCLE, HEXAGRAM, RECTANGLE = "n13865904", "n13874251", "n13880811", "n13883346"
SHAPES_A = (CIRCLE, TRIANGLE, SQUARE, PENTACLE)
SHAPES_B = (HEART, SEMICIRCLE, HEXAGRAM, RECTANGLE)

_keys = itertools.count(1)


def render_figure(figure: str, rng: np.random.Generator, side: int) -> bytes:
    """A JPEG of one figure (see the module docstring)."""
    pts = SHAPES[figure](rng)
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = pts @ rot.T
    pts = pts - pts.min(axis=0)
    pts = pts / max(float(pts.max()), 1e-9) * rng.uniform(0.55, 0.9) * (side - 4)
    pts = pts + 2 + rng.uniform(0, 1, 2) * (side - 4 - pts.max(axis=0))
    background = tuple(int(v) for v in rng.integers(170, 256, 3))  # light, any tint
    fill = tuple(int(v) for v in rng.integers(0, 90, 3))  # dark, any tint
    image = Image.new("RGB", (side, side), background)
    ImageDraw.Draw(image).polygon([(float(x), float(y)) for x, y in pts], fill=fill)
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-10, 11, (side, side, 3))
    return encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), 90)


def add_figures(project: Project, counts: Mapping[str, int], *, side: int = 48, seed: int = 0) -> list[int]:
    """Render `counts[synset]` images of each figure into the project as accepted candidates; image ids."""
    project.add_synsets(list(counts))
    bits = random.Random(seed)
    ids: list[int] = []
    with project.session() as s:
        source = schema.Source(name=f"figures-{seed}-{next(_keys)}", kind="synthetic", config={})
        s.add(source)
        s.flush()
        for synset, n in counts.items():
            for rank in range(1, n + 1):
                data = render_figure(synset, np.random.default_rng([seed, rank, int(synset[1:])]), side)
                key = project.blobs.put(data)
                image = s.get(schema.Image, _image_id(s, key))
                if image is None:
                    image = schema.Image(
                        sha256=key,
                        blob=key,
                        width=side,
                        height=side,
                        orig_width=side,
                        orig_height=side,
                        orig_bytes=len(data),
                        orig_format="JPEG",
                        phash=phash_to_db(bits.getrandbits(64)),
                    )
                    s.add(image)
                    s.flush()
                k = next(_keys)
                s.add(
                    schema.Candidate(
                        synset_id=synset,
                        source_id=source.id,
                        key=f"fig{k}",
                        url=f"synthetic://{seed}/{synset}/{rank}",
                        image_id=image.id,
                        query=synset,
                        rank=rank,
                        license="CC0-1.0",
                        status="stored",
                        decision="accepted",
                        confidence=1.0,
                    )
                )
                ids.append(image.id)
    return ids


def _image_id(s: object, key: str) -> int:
    from sqlalchemy import select

    found = s.scalar(select(schema.Image.id).where(schema.Image.sha256 == key))  # type: ignore[attr-defined]
    return int(found) if found is not None else -1


def figure_release(
    project: Project,
    name: str,
    counts: Mapping[str, int],
    *,
    side: int = 48,
    seed: int = 0,
    val: float = 0.25,
    test: float = 0.0,
) -> Release:
    """A release of freshly rendered figures (train / val / test shares as given)."""
    add_figures(project, counts, side=side, seed=seed)
    return create_release(
        project, name, synsets=list(counts), split=SplitSpec(val=val, test=test), phash_distance=-1
    )
