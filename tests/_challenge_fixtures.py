"""A small project with a release of drawn shapes, for the challenge, queue, web and baseline tests.

Rows are inserted directly (no dependency on the release builder): a six-node custom taxonomy
(shape > polygon > triangle|square, shape > round shape > circle|ellipse), one coloured shape per JPEG with
its true box, candidates + good boxes, and a release with train/val/test splits and its manifest (which
freezes those boxes). A few extra rows exercise
edge cases: images of the inner node `polygon`, and one test image labelled with two classes.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from synsetforge.benchmark.challenge import (
    ChallengeSettings,
    create_challenge,
    get_challenge,
    hidden,
    load_manifest,
)
from synsetforge.benchmark.participants import Account, create_account, create_team
from synsetforge.releases.manifest import Item, write_manifest
from synsetforge.store import Project, schema
from synsetforge.store.blobs import sha256_hex

TAXONOMY = """\
shape:
  gloss: a two-dimensional figure
polygon:
  parents: shape
round_shape:
  name: round shape
  parents: shape
triangle:
  parents: polygon
square:
  parents: polygon
circle:
  parents: round_shape
ellipse:
  parents: round_shape
"""
LEAVES = ("circle", "ellipse", "square", "triangle")
COLOURS = {
    "triangle": (220, 40, 40),
    "square": (40, 180, 60),
    "circle": (40, 70, 220),
    "ellipse": (230, 200, 30),
    "polygon": (150, 60, 160),
}


def draw_shape(kind: str, rng: random.Random, size: int = 48) -> tuple[bytes, tuple[int, int, int, int]]:
    """A JPEG of one shape on a grey, noisy background and its inclusive box (xmin, ymin, xmax, ymax)."""
    bg = rng.randint(90, 160)
    img = Image.new("RGB", (size, size), (bg, bg, bg))
    d = ImageDraw.Draw(img)
    w = rng.randint(size // 3, size * 3 // 4)
    h = w if kind in ("square", "circle", "triangle", "polygon") else max(6, w // 2)
    x0 = rng.randint(0, size - w - 1)
    y0 = rng.randint(0, size - h - 1)
    x1, y1 = x0 + w, y0 + h
    colour = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[kind])
    if kind == "triangle":
        d.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
    elif kind in ("circle", "ellipse"):
        d.ellipse([x0, y0, x1, y1], fill=colour)
    elif kind == "polygon":
        d.polygon(
            [(x0, y0 + h // 2), ((x0 + x1) // 2, y0), (x1, y0 + h // 2), ((x0 + x1) // 2, y1)], fill=colour
        )
    else:
        d.rectangle([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int16)
    noise = np.random.default_rng(rng.randint(0, 2**31)).integers(-12, 13, arr.shape)
    img = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue(), (x0, y0, x1, y1)


@dataclass
class World:
    """The project and what the tests know about its release."""

    project: Project
    release: str = "shapes-v1"
    labels: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # image id -> [(synset, split)]

    def close(self) -> None:
        self.project.close()


def build_world(
    root: Path,
    db_url: str | None = None,
    *,
    n_train: int = 6,
    n_val: int = 2,
    n_test: int = 5,
    classes: tuple[str, ...] = LEAVES,
    seed: int = 7,
    image_size: int = 48,
    extras: bool = True,
) -> World:
    """Create the project under `root` and insert a release `shapes-v1`."""
    root.mkdir(parents=True, exist_ok=True)
    tax = root.parent / f"{root.name}-taxonomy.yaml"
    tax.write_text(TAXONOMY, encoding="utf-8")
    project = Project.init(root, db=db_url, taxonomy=tax)
    project.add_synsets(["shape", "polygon", "round_shape", *LEAVES])
    world = World(project)
    rng = random.Random(seed)
    plan: list[tuple[str, str]] = []
    for sid in classes:
        plan += [(sid, "train")] * n_train + [(sid, "val")] * n_val + [(sid, "test")] * n_test
    if extras:
        plan += [("polygon", "train")] * 2 + [("polygon", "test")] * 2
    with project.session() as s:
        source = schema.Source(kind="synthetic", name="fixture")
        rel = schema.Release(name=world.release, method="fixture", params={"seed": seed})
        s.add_all([source, rel])
        s.flush()
        items: list[tuple[int, str, str, str]] = []
        frozen: dict[tuple[int, str], tuple[str, int, tuple[int, int, int, int]]] = {}
        for k, (sid, split) in enumerate(plan):
            data, box = draw_shape(sid, rng, image_size)
            key = project.blobs.put(data)
            image = schema.Image(
                sha256=sha256_hex(data),
                blob=key,
                width=image_size,
                height=image_size,
                orig_width=image_size,
                orig_height=image_size,
                orig_bytes=len(data),
                orig_format="JPEG",
            )
            s.add(image)
            s.flush()
            cand = schema.Candidate(
                synset_id=sid,
                source_id=source.id,
                key=f"k{k}",
                url=f"synthetic://{k}",
                image_id=image.id,
                status="stored",
                decision="accepted",
            )
            s.add(cand)
            s.flush()
            s.add(
                schema.BoxRow(
                    candidate_id=cand.id,
                    x1=box[0],
                    y1=box[1],
                    x2=box[2],
                    y2=box[3],
                    status="good",
                    origin="synthetic",
                )
            )
            items.append((image.id, sid, split, image.sha256))
            frozen[(image.id, sid)] = (key, cand.id, box)
        if extras:
            # one test image that shows two classes: ambiguous, it must stay out of the test set
            ambiguous = next(i for i in items if i[2] == "test" and i[1] == classes[0])
            items.append((ambiguous[0], classes[1], "test", ambiguous[3]))
        for image_id, sid, split, sha in items:
            s.add(
                schema.ReleaseItem(
                    release_id=rel.id, image_id=image_id, synset_id=sid, split=split, sha256=sha
                )
            )
            world.labels.setdefault(image_id, []).append((sid, split))
        # the release's manifest, as `create_release` writes it: a challenge reads its boxes from here
        manifest = []
        for image_id, sid, split, sha in items:
            key, cand_id, box = frozen.get((image_id, sid)) or (*frozen[(image_id, classes[0])][:2], None)
            manifest.append(
                Item(split=split, sha256=sha, synset=sid, image_id=image_id, blob=key, width=image_size,
                     height=image_size, confidence=None, candidate_id=cand_id, source="fixture",
                     source_kind="synthetic", boxes=(box,) if box else (), group=image_id)
            )  # fmt: skip
        manifest.sort(key=Item.sort_key)
        rel.manifest_sha256, _ = write_manifest(project.blobs, {"release": world.release}, manifest)
    return world


def make_challenge(world: World, name: str = "shapes", **settings: object) -> str:
    """A challenge on the four leaves; keyword arguments go into ChallengeSettings."""
    starts = settings.pop("starts_at", None)
    ends = settings.pop("ends_at", None)
    create_challenge(
        world.project,
        name,
        world.release,
        leaves=True,
        settings=ChallengeSettings(**settings),  # type: ignore[arg-type]
        starts_at=starts,  # type: ignore[arg-type]
        ends_at=ends,  # type: ignore[arg-type]
        seed="fixture-seed",
    )
    return name


def team_with_accounts(
    world: World, team: str, n: int = 1, *, outside_data: bool = False
) -> list[tuple[Account, str]]:
    create_team(world.project, team, outside_data=outside_data)
    return [create_account(world.project, team, f"{team}-user{k}") for k in range(n)]


def truth(world: World, challenge: str) -> tuple[list[str], list[int], list[str]]:
    """(test names, 0-based labels, class ids) straight from the hidden manifest: test-only."""
    info = get_challenge(world.project, challenge)
    m = load_manifest(world.project, hidden(world.project, info.id)["test_manifest"])
    return list(m["image_ids"]), list(m["labels"]), list(m["classes"])


def classic_file(labels: list[list[int]]) -> bytes:
    """ILSVRC classic text from 0-based guesses per image (file-name order)."""
    return ("\n".join(" ".join(str(c + 1) for c in row) for row in labels) + "\n").encode()


def oracle_file(world: World, challenge: str, *, wrong: int = 0, seed: int = 0) -> bytes:
    """A classic file that is right on all but `wrong` test images (top-1 and top-5 both wrong there)."""
    _, labels, classes = truth(world, challenge)
    rng = random.Random(seed)
    bad = set(rng.sample(range(len(labels)), wrong))
    rows = []
    for i, y in enumerate(labels):
        if i in bad:
            rows.append([(y + 1) % len(classes)])
        else:
            rows.append([y])
    return classic_file(rows)


def kaggle_file(world: World, challenge: str, *, boxes: bool = False) -> bytes:
    """A perfect Kaggle CSV (with each image's first true box when `boxes`)."""
    names, labels, classes = truth(world, challenge)
    m = load_manifest(
        world.project, hidden(world.project, get_challenge(world.project, challenge).id)["test_manifest"]
    )
    lines = ["ImageId,PredictionString"]
    for i, (name, y) in enumerate(zip(names, labels, strict=True)):
        pred = classes[y]
        if boxes:
            b = m["boxes"][m["box_offsets"][i]]
            pred += " " + " ".join(str(v) for v in b)
        lines.append(f"{name},{pred}")
    return ("\n".join(lines) + "\n").encode()


class UvicornThread:
    """uvicorn serving `app` on 127.0.0.1 (a free port) from a thread; a context manager."""

    def __init__(self, app: object) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def web_app(world: World) -> object:
    """The project's app (create_app) with the challenge routes, or a bare one before create_app exists."""
    from fastapi import FastAPI

    from synsetforge.web.challenge_routes import router

    try:
        from synsetforge.web.app import create_app
    except ImportError:  # pragma: no cover
        app = FastAPI()
        app.state.project = world.project
    else:
        app = create_app(world.project)
    app.include_router(router)
    return app
