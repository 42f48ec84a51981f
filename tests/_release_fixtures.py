"""Projects for release and export tests, built by inserting rows directly (no collection or crowd code).

`build_release_project` makes a small but complete project: four ILSVRC-2012 classes (Imagenette's tench,
English springer, cassette player, chain saw), real little JPEGs in the blob store, accepted / rejected /
undecided candidates from two sources with licences, votes from three workers, boxes in three states, an
exact-chain and a pHash near-duplicate pair, one image accepted under two synsets, and ground truth.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

from synsetforge.store import Project, schema
from synsetforge.store.hashes import phash_to_db

_SEEDS: dict[tuple[str, str], Iterator[int]] = {}
WNIDS = ("n01440764", "n02102040", "n02979186", "n03000684")
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def jpeg_bytes(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small real JPEG, different for every seed (its comment carries the seed)."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(img)
    x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
    draw.rectangle(
        [x0, y0, x0 + size[0] // 3, y0 + size[1] // 3], fill=(rng.randrange(256), 0, 255 - seed % 256)
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, comment=f"seed {seed}".encode())
    return buf.getvalue()


class Builder:
    """Inserts pipeline rows the way the collection and crowd stages would, in one session."""

    def __init__(self, project: Project):
        self.project = project
        self._key = 0
        self._phash = random.Random(7)
        # every image of a project is distinct (builders of one project share a counter), and the same
        # fixture makes the same bytes, so the same content-hashed splits, whichever tests ran before it
        self._seeds = _SEEDS.setdefault((str(project.root), str(project.engine.url)), itertools.count(1000))

    def image(
        self,
        *,
        size: tuple[int, int] = (40, 30),
        orig_size: tuple[int, int] | None = None,
        phash: int | None = None,
        duplicate_of: int | None = None,
        stored: bool = True,
    ) -> int:
        data = jpeg_bytes(next(self._seeds), size)
        key = self.project.blobs.put(data)
        h = phash if phash is not None else self._phash.getrandbits(64)
        ow, oh = orig_size or size
        with self.project.session() as s:
            row = schema.Image(
                sha256=key,
                blob=key if stored else None,
                width=size[0],
                height=size[1],
                orig_width=ow,
                orig_height=oh,
                orig_bytes=len(data),
                orig_format="JPEG",
                phash=phash_to_db(h),
                duplicate_of=duplicate_of,
                duplicate_distance=0 if duplicate_of else None,
            )
            s.add(row)
            s.flush()
            return row.id

    def source(self, name: str, kind: str) -> int:
        with self.project.session() as s:
            row = schema.Source(name=name, kind=kind, config={})
            s.add(row)
            s.flush()
            return row.id

    def candidate(
        self,
        synset: str,
        image_id: int | None,
        source_id: int,
        *,
        decision: str | None = "accepted",
        confidence: float | None = 0.95,
        license: str | None = "CC-BY-4.0",
        author: str | None = "Ann Example",
        created: datetime = T0,
    ) -> int:
        self._key += 1
        with self.project.session() as s:
            row = schema.Candidate(
                synset_id=synset,
                source_id=source_id,
                key=f"k{self._key}",
                url=f"https://img.example/{self._key}.jpg",
                page_url=f"https://img.example/page/{self._key}",
                image_id=image_id,
                query=f"query for {synset}",
                rank=self._key,
                license=license,
                author=author,
                status="stored",
                decision=decision,
                confidence=confidence,
                created_at=created,
            )
            s.add(row)
            s.flush()
            return row.id

    def box(
        self, candidate_id: int, box: Sequence[int], *, status: str = "good", origin: str = "crowd"
    ) -> int:
        with self.project.session() as s:
            row = schema.BoxRow(
                candidate_id=candidate_id,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
                status=status,
                origin=origin,
            )
            s.add(row)
            s.flush()
            return row.id

    def worker(self, kind: str = "invite", name: str | None = None) -> int:
        with self.project.session() as s:
            row = schema.Worker(kind=kind, name=name, external_id=name)
            s.add(row)
            s.flush()
            return row.id

    def vote(
        self,
        candidate_id: int,
        worker_id: int,
        label: bool,
        *,
        when: datetime | None = None,
        task_id: int | None = None,
    ) -> None:
        with self.project.session() as s:
            s.add(
                schema.Vote(
                    candidate_id=candidate_id,
                    worker_id=worker_id,
                    label=label,
                    task_id=task_id,
                    created_at=when or T0 + timedelta(days=1),
                )
            )

    def truth(self, candidate_id: int, positive: bool) -> None:
        with self.project.session() as s:
            s.add(schema.GroundTruth(candidate_id=candidate_id, positive=positive, boxes=[]))

    def gold(self, candidate_id: int, answer: bool) -> None:
        with self.project.session() as s:
            s.add(schema.Gold(candidate_id=candidate_id, answer=answer))


@dataclass
class Built:
    """What `build_release_project` made, for assertions."""

    accepted: dict[str, list[int]] = field(default_factory=dict)  # synset -> accepted candidate ids
    images: dict[str, list[int]] = field(default_factory=dict)  # synset -> image ids of accepted items
    not_accepted: list[int] = field(default_factory=list)  # candidate ids (rejected / undecided / no blob)
    chain_pair: tuple[int, int] = (0, 0)  # (image, its duplicate_of)
    phash_pair: tuple[int, int] = (0, 0)
    shared_image: int = 0  # accepted under WNIDS[1] and WNIDS[2]
    boxed: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)  # candidate -> good boxes
    workers: list[int] = field(default_factory=list)
    expert: int = 0
    low_confidence: list[int] = field(default_factory=list)  # accepted candidates with confidence 0.6


def build_release_project(
    root: Path, db_url: str | None = None, *, per_synset: int = 10, wnids: Sequence[str] = WNIDS
) -> tuple[Project, Built]:
    """A project with accepted images in every synset of `wnids` (see the module docstring)."""
    project = Project.init(root, db=db_url, name="release-test")
    project.add_synsets(list(wnids))
    b = Builder(project)
    built = Built()
    synthetic = b.source("synthetic-1", "synthetic")
    flickr = b.source("flickr-cc", "flickr")
    built.workers = [b.worker("invite", f"w{i}") for i in range(3)]
    built.expert = b.worker("expert", "expert-1")
    licenses = ["CC-BY-4.0", "CC0-1.0", None]
    for si, wnid in enumerate(wnids):
        built.accepted[wnid] = []
        built.images[wnid] = []
        for k in range(per_synset):
            img = b.image(size=(40 + k, 30 + si), orig_size=(80 + 2 * k, 60 + 2 * si) if k == 1 else None)
            conf = 0.6 if k == 0 else 0.9 + k / 1000
            cid = b.candidate(
                wnid,
                img,
                synthetic if k % 2 else flickr,
                confidence=conf,
                license=licenses[k % 3],
                created=T0 + timedelta(hours=si * 24 + k),
            )
            if k == 0:
                built.low_confidence.append(cid)
            built.accepted[wnid].append(cid)
            built.images[wnid].append(img)
            for w, worker in enumerate(built.workers):
                b.vote(cid, worker, label=not (w == 2 and k % 4 == 0), when=T0 + timedelta(days=2, minutes=k))
            b.truth(cid, positive=k != per_synset - 1)
            if k < 6:
                boxes = [(2, 3, 20, 25)] if k != 1 else [(4, 6, 41, 51), (0, 0, 9, 9)]
                for box in boxes:
                    b.box(cid, box)
                built.boxed[cid] = boxes
                b.box(cid, (1, 1, 5, 5), status="bad")
                b.box(cid, (3, 3, 7, 7), status="proposed")
        # not accepted: rejected, undecided, and an accepted one without stored bytes
        for decision in ("rejected", "undecided"):
            built.not_accepted.append(
                b.candidate(wnid, b.image(), synthetic, decision=decision, confidence=0.3)
            )
        built.not_accepted.append(b.candidate(wnid, b.image(stored=False), synthetic))
    first = wnids[0]
    # a duplicate_of chain (c -> b -> a, b outside the release) and a pHash neighbour pair
    a = b.image(phash=0x0F0F_0000_1234_5678)
    mid = b.image(duplicate_of=a, stored=False)
    c = b.image(duplicate_of=mid)
    built.chain_pair = (c, a)
    p1 = b.image(phash=0xFFFF_0000_AAAA_5555)
    p2 = b.image(phash=0xFFFF_0000_AAAA_5555 ^ 0b1011)  # 3 bits apart
    built.phash_pair = (p1, p2)
    for img in (a, c, p1, p2):
        cid = b.candidate(first, img, synthetic)
        built.accepted[first].append(cid)
        built.images[first].append(img)
    if len(wnids) > 2:
        shared = b.image()
        built.shared_image = shared
        for wnid in wnids[1:3]:
            built.accepted[wnid].append(b.candidate(wnid, shared, flickr, license="CC0-1.0"))
            built.images[wnid].append(shared)
    return project, built
