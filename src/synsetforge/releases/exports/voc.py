"""PASCAL VOC annotation XML (also the format of ILSVRC's bounding-box files) and the VOC export.

ILSVRC's own XML files keep the store's coordinates (ILSVRC ``xmin ymin xmax ymax``, inclusive). The PASCAL
VOC export follows the VOC devkit, whose pixel indices start at 1, so it writes ``x + 1``.

VOC layout (the contents of a ``VOCdevkit/VOC2012`` folder): ``Annotations/<id>.xml``,
``JPEGImages/<id>.jpg`` and ``ImageSets/Main/{train,val,trainval,test}.txt``; only images with boxes are
exported (VOC detection has no use for the others).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape

from PIL import Image

from synsetforge.releases.exports.common import BlobRef, Context
from synsetforge.releases.splits import SPLITS

_DEPTH = {"1": 1, "L": 1, "P": 1, "RGB": 3, "YCbCr": 3, "CMYK": 4, "RGBA": 4, "I;16": 1}


def image_depth(src: Path | BlobRef) -> int:
    """Channels of a stored image, read from its header only."""
    try:
        with open(src, "rb") if isinstance(src, Path) else src.open() as f, Image.open(f) as img:
            return _DEPTH.get(img.mode, 3)
    except OSError:
        return 3


def voc_xml(
    *,
    folder: str,
    filename: str,
    width: int,
    height: int,
    depth: int,
    objects: Sequence[tuple[str, tuple[int, int, int, int]]],
    database: str,
    offset: int = 0,
) -> bytes:
    """One annotation file; `offset` is added to every coordinate (1 for PASCAL VOC's 1-based pixels)."""
    lines = [
        "<annotation>",
        f"\t<folder>{escape(folder)}</folder>",
        f"\t<filename>{escape(filename)}</filename>",
        f"\t<source>\n\t\t<database>{escape(database)}</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>{depth}</depth>\n\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for name, (x1, y1, x2, y2) in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{escape(name)}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x1 + offset}</xmin>",
            f"\t\t\t<ymin>{y1 + offset}</ymin>",
            f"\t\t\t<xmax>{x2 + offset}</xmax>",
            f"\t\t\t<ymax>{y2 + offset}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def export_voc(ctx: Context) -> int:
    """Write the VOC layout for the images with boxes; returns how many images were written."""
    epoch = ctx.release.epoch
    for folder in ("ImageSets/Main", "Annotations", "JPEGImages"):
        (ctx.out / folder).mkdir(parents=True, exist_ok=True)
    lists: dict[str, TextIO] = {}
    count = 0
    try:
        for name in (*SPLITS, "trainval"):
            lists[name] = open(ctx.path(f"ImageSets/Main/{name}.txt"), "w", encoding="ascii")  # noqa: SIM115
        for item in ctx.items():
            if not item.boxes:
                continue
            wnid = ctx.wnid[item.synset]
            image_name = f"{wnid}_{item.image_id}"
            target = ctx.path(f"JPEGImages/{image_name}.jpg")
            ctx.blob(item.blob).copy_to(target)
            os.utime(target, (epoch, epoch))
            xml = voc_xml(
                folder="JPEGImages",
                filename=f"{image_name}.jpg",
                width=item.width or 0,
                height=item.height or 0,
                depth=image_depth(target),
                objects=[(wnid, box) for box in item.boxes],
                database=f"synsetforge release {ctx.release.name}",
                offset=1,
            )
            ctx.write_bytes(f"Annotations/{image_name}.xml", xml)
            lists[item.split].write(image_name + "\n")
            if item.split in ("train", "val"):
                lists["trainval"].write(image_name + "\n")
            count += 1
    finally:
        for f in lists.values():
            f.close()
    return count
