"""Benchmark the training loader: images/s of the same network and batch fed by synsetforge's loader and by a
plain PyTorch `DataLoader` over Pillow-decoded files, side by side, with each side's peak memory.

Builds a SQLite project of `--images` synthetic figures stored as the demo stores them (drawn by the
synthetic engine, longer side resized to 256, JPEG), in `--classes` classes, as one release with every image
in train. Then, alternating `--rounds` times, each in a fresh process:

- **synsetforge**: `synsetforge.training.train` for `--epochs` epochs from a cold cache: the first epoch
  includes decoding the release once (reduced-size JPEG decoding in `--workers` processes) into the
  project's uint8 cache; augmentation (random-resized crop, flip) runs batched on the tensor;
- **peer**: `torch.utils.data.DataLoader(num_workers=--workers)` over the same blob files, each item
  `PIL.Image.open().convert("RGB")`, a random-resized crop and flip done as torchvision's transforms do
  (re-implemented with Pillow: torchvision does not load beside this torch), to tensor, normalised;
  the same network, SGD settings, batch size and number of epochs.

    python bench/train.py                         # 3,000 images, 12 classes, 64 px, 3 epochs, 2 rounds
    python bench/train.py --images 1000 --epochs 2 --rounds 1

Prints per round: images/s of each (all epochs, wall clock, decoding included), their ratio, and each
process's peak RSS (main process and its largest worker).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = (
    "n13865904", "n13878634", "n13883133", "n13881512", "n13879947", "n13880551", "n13880415",
    "n13882385", "n13873502", "n13874251", "n13882008", "n13880811", "n13875027", "n13882201",
)  # fmt: skip


def _render(args: tuple[str, int]) -> bytes:
    from synsetforge.candidates.process import ImagePolicy, process_image
    from synsetforge.candidates.sources.synthetic import Settings, make_url, render_url

    synset, rank = args
    data = render_url(make_url(0, synset, rank, Settings(precision=1.0)))
    out = process_image(data, ImagePolicy(resize="longer", size=256))
    return out.data  # type: ignore[union-attr]


def build(root: Path, n: int, classes: int) -> None:
    """A project with `n` stored figures in `classes` classes and a release `bench` (all train)."""
    from multiprocessing import Pool

    from synsetforge.releases import create_release
    from synsetforge.releases.splits import SplitSpec
    from synsetforge.store import Project, schema
    from synsetforge.store.hashes import phash_to_db

    chosen = list(FIGURES[:classes])
    jobs = [(chosen[i % classes], i // classes + 1) for i in range(n)]
    with Pool(os.cpu_count() or 2) as pool:
        blobs = pool.map(_render, jobs, chunksize=32)
    bits = random.Random(0)
    with Project.init(root, name="bench-train") as project:
        project.add_synsets(chosen)
        with project.session() as s:
            src = schema.Source(kind="synthetic", name="bench", config={})
            s.add(src)
            s.flush()
            for (synset, rank), data in zip(jobs, blobs, strict=True):
                key = project.blobs.put(data)
                img = schema.Image(sha256=key, blob=key, width=256, height=192, orig_width=256, orig_height=192,
                                   orig_bytes=len(data), orig_format="JPEG", phash=phash_to_db(bits.getrandbits(64)))  # fmt: skip
                s.add(img)
                s.flush()
                s.add(schema.Candidate(synset_id=synset, source_id=src.id, key=f"{synset}/{rank}",
                                       url=f"synthetic://0/{synset}/{rank}", image_id=img.id, status="stored",
                                       decision="accepted", confidence=1.0))  # fmt: skip
        create_release(project, "bench", synsets=chosen, split=SplitSpec(val=0, test=0), phash_distance=-1)


# -- one side, in its own process -----------------------------------------------------------------------------
class DescendantPeak:
    """Largest resident set of any process below this one (DataLoader workers are children; the decoding
    pool's workers are children of a forkserver, so `RUSAGE_CHILDREN` alone would miss them), sampled."""

    def __init__(self) -> None:
        import threading

        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    parents[int(entry)] = int(fields[1])
                    rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
                except (OSError, IndexError, ValueError):
                    continue
            for pid in rss:
                up, hops = parents.get(pid), 0
                while up not in (None, 0, 1, me) and hops < 8:
                    up, hops = parents.get(up), hops + 1
                if up == me and pid != me:
                    self.peak_kib = max(self.peak_kib, rss[pid])

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


def peak_mib(workers: DescendantPeak) -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest finished child
    return {"main_mib": round(me, 1), "worker_mib": round(max(kids, workers.stop()), 1)}


def run_ours(root: Path, a: argparse.Namespace) -> dict[str, float]:
    from synsetforge.store import Project
    from synsetforge.training.config import TrainConfig
    from synsetforge.training.train import train

    shutil.rmtree(root / "cache", ignore_errors=True)  # cold: decoding is part of the figure
    out = Path(tempfile.mkdtemp(prefix="run-", dir=root.parent))
    cfg = TrainConfig.for_arch(
        a.arch, epochs=a.epochs, image_size=a.size, batch_size=a.batch, lr=0.1, schedule="cosine",
        crop_scale=(0.35, 1.0), fit="crop", rotate=0.0, normalize="imagenet", nesterov=False,
        warmup_epochs=0, label_smoothing=0.0, weight_decay=1e-4, decay_norm_and_bias=True,
    )  # fmt: skip
    sampler = DescendantPeak()
    with Project.open(root) as project:
        t0 = time.perf_counter()
        result = train(project, "bench", cfg, out=out, workers=a.workers, cache=not a.no_cache)
        seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    n = sum(h["images"] for h in result.history)
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, **peak_mib(sampler)}


def run_peer(root: Path, a: argparse.Namespace) -> dict[str, float]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from synsetforge.store import Project
    from synsetforge.training.data import open_release
    from synsetforge.training.engine import cpu_threads
    from synsetforge.training.models import build_model

    torch.set_num_threads(cpu_threads())
    sampler = DescendantPeak()
    with Project.open(root) as project:
        data = open_release(project, "bench", splits=("train",))
        samples = data.split("train")
        paths = [str(project.blobs.local_path(b)) for b in samples.blobs]
    labels = samples.labels.tolist()
    size = a.size
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    class Files(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
        """torchvision's ImageFolder + RandomResizedCrop(scale=(0.35, 1)) + RandomHorizontalFlip + Normalize."""

        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            with Image.open(paths[i]) as im:
                img = im.convert("RGB")
            w, h = img.size
            area = w * h
            for _ in range(10):  # torchvision's RandomResizedCrop.get_params
                target = area * random.uniform(0.35, 1.0)
                ratio = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
                cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
                if 0 < cw <= w and 0 < ch <= h:
                    x, y = random.randint(0, w - cw), random.randint(0, h - ch)
                    break
            else:
                cw = ch = min(w, h)
                x, y = (w - cw) // 2, (h - ch) // 2
            img = img.resize((size, size), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
            if random.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255)
            return (t - mean) / std, labels[i]

    loader = torch.utils.data.DataLoader(
        Files(), batch_size=a.batch, shuffle=True, drop_last=True, num_workers=a.workers,
        persistent_workers=a.workers > 0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(a.arch, len(data.classes)).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.train()
    n = 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for x, y in loader:
            x = x.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
    seconds = time.perf_counter() - t0
    del loader
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, **peak_mib(sampler)}


# -- driver ---------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--arch", default="small")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true", help="synsetforge decodes every epoch (streaming)")
    ap.add_argument("--side", choices=("ours", "peer"), help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        result = run_ours(a.root, a) if a.side == "ours" else run_peer(a.root, a)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp) / "project"
        t0 = time.perf_counter()
        build(root, a.images, a.classes)
        print(
            f"project: {a.images} stored figures in {a.classes} classes ({time.perf_counter() - t0:.0f} s to build)"
        )
        print(f"network {a.arch}, {a.size} px, batch {a.batch}, {a.epochs} epochs, {a.workers} decoding workers, "
              f"{os.cpu_count()} cores; synsetforge {'streaming' if a.no_cache else 'from a cold cache'}")  # fmt: skip
        ratios = []
        passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items() if k in
                       ("images", "classes", "size", "epochs", "batch", "arch", "workers")]  # fmt: skip
        if a.no_cache:
            passthrough.append("--no-cache")
        for r in range(1, a.rounds + 1):
            got = {}
            for side in ("ours", "peer") if r % 2 else ("peer", "ours"):
                proc = subprocess.run(
                    [sys.executable, __file__, "--side", side, "--root", str(root), *passthrough],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                got[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            ratio = got["ours"]["images_per_s"] / got["peer"]["images_per_s"]
            ratios.append(ratio)
            for side, name in (("ours", "synsetforge"), ("peer", "DataLoader+Pillow")):
                g = got[side]
                print(f"round {r} {name:18s} {g['images_per_s']:8.0f} images/s ({g['images']} images in "
                      f"{g['seconds']:.1f} s); peak RSS main {g['main_mib']:.0f} MiB, largest worker "
                      f"{g['worker_mib']:.0f} MiB")  # fmt: skip
            print(f"round {r} ratio synsetforge / DataLoader: {ratio:.2f}x")
        print(
            f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.2f}x (load {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
