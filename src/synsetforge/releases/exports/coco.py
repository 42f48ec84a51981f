"""COCO detection JSON for the release's boxes: ``annotations/instances_<split>.json`` + ``<split>/<file>``.

Only images with boxes are exported. A box with inclusive pixel corners ``x1..x2`` covers the continuous
interval ``[x1, x2 + 1)``, so its COCO ``bbox`` is ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]`` and ``area`` is
its pixel count. Category ids are the class index + 1 (sorted-wnid order); the category ``name`` is the wnid
(unique), with the words alongside. The JSON is streamed: images are written as they come, annotations go
to a temporary file and are appended, so memory does not grow with the release.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from synsetforge.releases.exports.common import Context
from synsetforge.releases.splits import SPLITS


def _j(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def export_coco(ctx: Context) -> dict[str, Any]:
    epoch = ctx.release.epoch
    (ctx.out / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [
        {
            "id": ctx.label[s] + 1,
            "name": ctx.wnid[s],
            "supercategory": "",
            "synset": s,
            "words": ctx.words(s),
        }
        for s in ctx.classes
    ]
    summary: dict[str, Any] = {}
    for split in SPLITS:
        images = annotations = 0
        licenses: dict[str, int] = {}
        target = ctx.path(f"annotations/instances_{split}.json")
        fd, tmp_name = tempfile.mkstemp(dir=ctx.out, prefix=".tmp-", suffix=".json")
        tmp = Path(tmp_name)
        try:
            with open(target, "w", encoding="utf-8") as out, os.fdopen(fd, "w", encoding="utf-8") as anns:
                r = ctx.release
                info = {
                    "description": f"synsetforge release {r.name} ({split})",
                    "version": r.manifest_sha256,
                    "year": r.created_at.year,
                    "date_created": r.created_at.isoformat(timespec="seconds"),
                }
                out.write('{"info": ' + _j(info) + ', "images": [')
                for item in ctx.items(split):
                    if not item.boxes:
                        continue
                    wnid = ctx.wnid[item.synset]
                    stem = f"{wnid}_{item.image_id}"
                    if images == 0:
                        (ctx.out / split).mkdir(parents=True, exist_ok=True)
                    dest, ext = ctx.copy_image(item.blob, f"{split}/{stem}")
                    file_name = f"{stem}.{ext}"
                    os.utime(dest, (epoch, epoch))
                    images += 1
                    lic = item.license or "unknown"
                    license_id = licenses.setdefault(lic, len(licenses) + 1)
                    entry = {
                        "id": images,
                        "file_name": file_name,
                        "width": item.width,
                        "height": item.height,
                        "license": license_id,
                        "flickr_url": item.url or "",
                        "coco_url": "",
                        "date_captured": item.collected or "",
                        "synsetforge_image_id": item.image_id,
                        "sha256": item.sha256,
                    }
                    out.write(("" if images == 1 else ", ") + _j(entry))
                    for x1, y1, x2, y2 in item.boxes:
                        w, h = x2 - x1 + 1, y2 - y1 + 1
                        annotations += 1
                        ann = {
                            "id": annotations,
                            "image_id": images,
                            "category_id": ctx.label[item.synset] + 1,
                            "bbox": [x1, y1, w, h],
                            "area": w * h,
                            "iscrowd": 0,
                            "segmentation": [],
                        }
                        anns.write(("" if annotations == 1 else ", ") + _j(ann))
                out.write('], "annotations": [')
                anns.flush()
                with open(tmp, encoding="utf-8") as src_anns:
                    shutil.copyfileobj(src_anns, out)
                lic_list = [{"id": i, "name": name, "url": ""} for name, i in licenses.items()]
                out.write('], "licenses": ' + _j(lic_list) + ', "categories": ' + _j(categories) + "}\n")
        finally:
            tmp.unlink(missing_ok=True)
        summary[split] = {"images": images, "annotations": annotations}
    return summary
