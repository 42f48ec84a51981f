"""ImageFolder and WebDataset exports.

ImageFolder: ``<split>/<wnid>/<wnid>_<image id>.<ext>`` (torchvision's ``datasets.ImageFolder(root/split)``).

WebDataset: ``<split>-000000.tar`` ... shards of about `shard_size` bytes each (a shard is closed before a
sample would push it past the target, so only a single oversized sample makes a shard bigger). A sample is
``<key>.<ext>`` (the image), ``<key>.cls`` (the class index as ASCII digits) and ``<key>.json`` (synset, wnid,
hashes, size, licence, provenance, boxes), with ``key = <wnid>_<image id>`` (no dots: WebDataset splits the
key at the first dot). ``index.json`` lists each split's shards and sample counts.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from synsetforge.releases.exports.common import Context, dumps, ext_of
from synsetforge.releases.exports.tarout import TarOut, member_size
from synsetforge.releases.manifest import Item
from synsetforge.releases.splits import SPLITS

DEFAULT_SHARD_SIZE = 256 * 1024 * 1024


def export_imagefolder(ctx: Context) -> dict[str, int]:
    epoch = ctx.release.epoch
    made: set[str] = set()
    counts = dict.fromkeys(SPLITS, 0)
    for item in ctx.items():
        wnid = ctx.wnid[item.synset]
        folder = f"{item.split}/{wnid}"
        if folder not in made:
            (ctx.out / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        stem = f"{folder}/{wnid}_{item.image_id}"
        target, _ = ctx.copy_image(item.blob, stem)
        os.utime(target, (epoch, epoch))
        counts[item.split] += 1
    return counts


def sample_metadata(ctx: Context, item: Item) -> dict[str, Any]:
    """The per-image metadata shared by the WebDataset JSON and the Parquet columns."""
    return {
        "synset": item.synset,
        "wnid": ctx.wnid[item.synset],
        "label": ctx.label[item.synset],
        "words": ctx.words(item.synset),
        "split": item.split,
        "image_id": item.image_id,
        "sha256": item.sha256,
        "blob_sha256": item.blob,
        "width": item.width,
        "height": item.height,
        "confidence": item.confidence,
        "votes_yes": item.votes_yes,
        "votes_no": item.votes_no,
        "license": item.license,
        "author": item.author,
        "source": item.source,
        "source_kind": item.source_kind,
        "url": item.url,
        "page_url": item.page_url,
        "boxes": [list(b) for b in item.boxes],
        "duplicate_cluster": item.group,
    }


def export_webdataset(ctx: Context, shard_size: int = DEFAULT_SHARD_SIZE) -> dict[str, Any]:
    epoch = ctx.release.epoch
    index: dict[str, Any] = {}
    for split in SPLITS:
        shards: list[dict[str, Any]] = []
        tar: TarOut | None = None
        size = 0
        for item in ctx.items(split):
            key = f"{ctx.wnid[item.synset]}_{item.image_id}"
            meta = json.dumps(sample_metadata(ctx, item), sort_keys=True, ensure_ascii=False).encode("utf-8")
            cls = str(ctx.label[item.synset]).encode("ascii")
            with ctx.blob(item.blob).open() as f:
                data_size = f.seek(0, io.SEEK_END)
                f.seek(0)
                ext = ext_of(f.read(16))
                f.seek(0)
                need = member_size(data_size) + member_size(len(meta)) + member_size(len(cls))
                if tar is not None and size + need > shard_size:
                    tar.close()
                    tar = None
                if tar is None:
                    name = f"{split}-{len(shards):06d}.tar"
                    tar = TarOut(ctx.path(name), mtime=epoch)
                    shards.append({"name": name, "samples": 0})
                    size = 0
                tar.add_stream(f"{key}.{ext}", f, data_size)
            tar.add_bytes(f"{key}.cls", cls)
            tar.add_bytes(f"{key}.json", meta)
            shards[-1]["samples"] += 1
            size += need
        if tar is not None:
            tar.close()
        if shards:
            last = len(shards) - 1
            index[split] = {
                "shards": shards,
                "samples": sum(s["samples"] for s in shards),
                "pattern": f"{split}-{{{0:06d}..{last:06d}}}.tar",
            }
    ctx.write_bytes("index.json", dumps({"shard_size": shard_size, "splits": index}))
    return index
