"""GPU check: train and evaluate on a synthetic release of 100+ classes; print images/s and time to accuracy.

The classes are the synthetic engine's figures crossed with four ways of drawing them (filled, outlined,
hatched, dotted): 25 figures x 4 styles = 100 classes, each image a random rotation, scale, position and
colours on a plain background. Images are rendered in parallel, stored as a SQLite project with every
candidate accepted (rows inserted directly, as the benchmarks do: this checks training, not the crowd), and
frozen as release `check` (train / val). Then `synsetforge.training.train` runs on it and every epoch's val
accuracy is printed with the elapsed time.

    scripts/gpu_check.sh                  # full: 100 classes x 300 train + 30 val, ResNet-18 at 64 px, CUDA
    scripts/gpu_check.sh --small          # CPU-sized: 100 classes x 4 + 1, 1 epoch at 32 px (CI runs this)

Prints: the device, images/s of each epoch (and overall), and the wall time at which val top-1 accuracy
first reached each of the `--targets` (default 50%, 75%, 90%), or that it did not; exits 1 when the full
check misses its budget (`--budget`, 8 minutes) or the first target.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

STYLES = ("filled", "outlined", "hatched", "dotted")


def figures() -> list[str]:
    from synsetforge.candidates.sources.synthetic import SHAPES

    return sorted(SHAPES)[:25]


def render(args: tuple[str, str, int, int]) -> bytes:
    """A JPEG of `figure` drawn in `style` (see the module docstring)."""
    import io

    from synsetforge.candidates.sources.synthetic import SHAPES

    figure, style, seed, side = args
    rng = np.random.default_rng(seed)
    pts = SHAPES[figure](rng)
    theta = rng.uniform(0, 2 * np.pi)
    pts = pts @ np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]).T
    pts = pts - pts.min(axis=0)
    pts = pts / max(float(pts.max()), 1e-9) * rng.uniform(0.5, 0.9) * (side - 4)
    pts = pts + 2 + rng.uniform(0, 1, 2) * (side - 4 - pts.max(axis=0))
    poly = [(float(x), float(y)) for x, y in pts]
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int((b + rng.integers(96, 160)) % 256) for b in bg)
    image = Image.new("RGB", (side, side), bg)
    draw = ImageDraw.Draw(image)
    width = max(1, side // 24)
    if style == "filled":
        draw.polygon(poly, fill=fg)
    elif style == "outlined":
        draw.line([*poly, poly[0]], fill=fg, width=width)
    else:
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).polygon(poly, fill=255)
        texture = Image.new("L", (side, side), 0)
        tdraw = ImageDraw.Draw(texture)
        step = max(3, side // 12)
        if style == "hatched":
            for k in range(-side, 2 * side, step):
                tdraw.line([(k, 0), (k + side, side)], fill=255, width=width)
        else:
            for y in range(step // 2, side, step):
                for x in range(step // 2, side, step):
                    tdraw.ellipse([x - width, y - width, x + width, y + width], fill=255)
        from PIL import ImageChops

        image.paste(fg, mask=ImageChops.multiply(mask, texture))
        draw.line([*poly, poly[0]], fill=fg, width=1)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build(root: Path, per_class: int, val: int, side: int) -> list[str]:
    """The project and its release `check`; returns the class ids."""
    from synsetforge.releases import create_release
    from synsetforge.releases.splits import SplitSpec
    from synsetforge.store import Project, schema
    from synsetforge.store.hashes import phash_to_db

    classes = [(f, s) for f in figures() for s in STYLES]
    ids = [f"{f}-{s}" for f, s in classes]
    taxonomy = root.parent / "taxonomy.yaml"
    lines = ["figures: {lemmas: [figure styles]}"]
    lines += [
        f"{cid}: {{lemmas: ['{f} {s}'], parents: figures}}" for cid, (f, s) in zip(ids, classes, strict=True)
    ]
    taxonomy.write_text("\n".join(lines) + "\n")
    n = per_class + val
    jobs = [(f, s, 1000 * k + i, side) for k, (f, s) in enumerate(classes) for i in range(n)]
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        blobs = list(pool.map(render, jobs, chunksize=64))
    bits = random.Random(0)
    with Project.init(root, name="gpu-check", taxonomy=taxonomy) as project:
        project.add_synsets(ids)
        with project.session() as s:
            src = schema.Source(kind="synthetic", name="gpu-check", config={})
            s.add(src)
            s.flush()
            images = []
            for data in blobs:
                key = project.blobs.put(data)
                images.append(schema.Image(sha256=key, blob=key, width=side, height=side, orig_width=side,
                                           orig_height=side, orig_bytes=len(data), orig_format="JPEG",
                                           phash=phash_to_db(bits.getrandbits(64))))  # fmt: skip
            s.add_all(images)
            s.flush()
            s.add_all(
                schema.Candidate(synset_id=ids[j // n], source_id=src.id, key=f"c{j}", url=f"gpu-check://{j}",
                                 image_id=img.id, status="stored", decision="accepted", confidence=1.0)
                for j, img in enumerate(images)
            )  # fmt: skip
        create_release(project, "check", synsets=ids, split=SplitSpec(val=val, test=0), phash_distance=-1)
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="CPU-sized run (what CI exercises)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds the full check may take")
    ap.add_argument("--targets", default="0.5,0.75,0.9", help="val top-1 accuracies to time")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    small = a.small
    arch = a.arch or ("small" if small else "resnet18")
    epochs = a.epochs or (1 if small else 16)
    per_class = a.per_class or (4 if small else 300)
    val = 1 if small else 30
    side = 48 if small else 96
    size = 32 if small else 64
    batch = 64 if small else 512
    targets = sorted(float(t) for t in a.targets.split(","))

    import torch

    from synsetforge.store import Project
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.engine import pick_device
    from synsetforge.training.train import train

    device = pick_device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    with tempfile.TemporaryDirectory(prefix="gpu-check-", dir=a.workdir) as tmp:
        t0 = time.perf_counter()
        ids = build(Path(tmp) / "project", per_class, val, side)
        t_build = time.perf_counter() - t0
        print(
            f"release: {len(ids)} classes x {per_class} train + {val} val synthetic images ({t_build:.0f} s to build)"
        )
        print(
            f"device: {name}; torch {torch.__version__}; {arch} at {size} px, batch {batch}, {epochs} epochs"
        )
        reached: dict[float, float] = {}
        start = time.perf_counter()

        def log(message: str) -> None:
            elapsed = time.perf_counter() - start
            print(f"[{elapsed:6.1f} s] {message}", flush=True)

        config = TrainConfig.for_arch(
            arch, epochs=epochs, image_size=size, batch_size=batch, lr=0.2 * batch / 256 if small else 0.8,
            schedule="cosine", warmup_epochs=0 if small else 1, label_smoothing=0.1, crop_scale=(0.35, 1.0),
            fit="crop", crop_ratio=1.0,
        )  # fmt: skip
        with Project.open(Path(tmp) / "project") as project:
            result = train(project, "check", config, out=Path(tmp) / "run", device=a.device, log=log)
        total = time.perf_counter() - start
        seen = 0.0
        for h in result.history:
            seen += h["seconds"]
            accuracy = 1 - h["val"].get("top1_error", 1.0)
            for t in targets:
                if accuracy >= t and t not in reached:
                    reached[t] = seen
        images = sum(h["images"] for h in result.history)
        train_s = sum(h["seconds"] for h in result.history)
        print(f"training: {images:,} images in {train_s:.1f} s of epochs = {images / train_s:,.0f} images/s; "
              f"{total:.1f} s in all (decoding, evaluation and checkpoints included)")  # fmt: skip
        final = 1 - result.final["val"]["top1_error"]
        print(f"final val top-1 accuracy {final:.1%} (chance {1 / len(ids):.1%}), top-5 "
              f"{1 - result.final['val']['top5_error']:.1%}")  # fmt: skip
        for t in targets:
            when = f"after {reached[t]:.1f} s of training" if t in reached else "not reached"
            print(f"time to val top-1 accuracy {t:.0%}: {when}")
    if small:
        return 0
    ok = total + t_build <= a.budget and targets[0] in reached
    print("PASS" if ok else f"FAIL (budget {a.budget:.0f} s, first target {targets[0]:.0%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
