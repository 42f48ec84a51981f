"""Releases freeze boxes: crowd boxes voted good and imported boxes are in the manifest (scaled to the stored
image), gold boxes never; a box accepted after the release stays out of that release's exports, explorer
page and localization challenge. The explorer draws the frozen boxes over the image, scaled and escaped."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from _challenge_fixtures import build_world
from _release_fixtures import jpeg_bytes
from synsetforge.benchmark.challenge import ChallengeSettings, create_challenge, get_challenge, hidden
from synsetforge.boxes.importing import import_boxes, import_upload
from synsetforge.releases.exports import export_release
from synsetforge.releases.manifest import iter_items
from synsetforge.releases.release import create_release, get_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from test_boxes_io import DATA, SAW, SPRINGER, TENCH, _add, make_project

ALL_TRAIN = SplitSpec(val=0, test=0)


def frozen(project: Project, release: str) -> dict[tuple[str, str], set[tuple[int, int, int, int]]]:
    """(file key, synset) -> boxes of the release's manifest."""
    rel = get_release(project, release)
    with project.session() as s:
        keys = dict(s.execute(select(schema.Candidate.image_id, schema.Candidate.key)).all())
    return {
        (keys[it.image_id], it.synset): set(it.boxes) for it in iter_items(project.blobs, rel.manifest_sha256)
    }


def image_of(project: Project, key: str) -> int:
    with project.session() as s:
        found = s.scalar(select(schema.Candidate.image_id).where(schema.Candidate.key == key))
    assert found is not None
    return int(found)


def test_release_freezes_good_and_imported_boxes_never_gold(tmp_path: Path, db_url: str) -> None:
    with make_project(tmp_path / "p", db_url) as p:
        import_boxes(p, DATA / "instances_val.json", "coco")
        _add(p, "n01440764/tench_01.jpg", (2, 2, 41, 61), "crowd", "good")
        _add(p, "n01440764/tench_01.jpg", (100, 100, 199, 199), "crowd", "proposed")
        _add(p, "n01440764/tench_01.jpg", (50, 50, 99, 99), "import", "bad")
        _add(p, "n01440764/tench_01.jpg", (10, 10, 389, 289), "gold", "good")
        _add(p, "n03000684/saw_01.jpg", (0, 0, 99, 99), "gold", "good")
        rel = create_release(p, "v1", split=ALL_TRAIN)
        # original pixels halved to the stored copy: x1 floor, x2 ceil of the covered edge, minus one
        assert frozen(p, "v1") == {
            ("n02102040/springer_01.jpg", SPRINGER): {(50, 25, 149, 99)},
            ("n02102040/springer_02.jpg", SPRINGER): {(50, 25, 149, 100)},
            ("n03000684/saw_01.jpg", SAW): {(5, 10, 319, 239)},
            ("n01440764/tench_01.jpg", TENCH): {(1, 1, 20, 30)},
        }
        assert rel.stats["boxes"]["boxes"] == 4


def test_box_accepted_after_the_release_stays_out_of_it(tmp_path: Path) -> None:
    with make_project(tmp_path / "p") as p:
        import_boxes(p, DATA / "instances_val.json", "coco")
        create_release(p, "v1", split=ALL_TRAIN)
        _add(p, "n02102040/springer_02.jpg", (20, 20, 59, 59), "crowd", "good")  # accepted later
        export_release(p, "v1", "coco", tmp_path / "coco")
        doc = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
        assert sorted(a["bbox"] for a in doc["annotations"]) == sorted(
            [[50, 25, 100, 75], [50, 25, 100, 76], [5, 10, 315, 230]]
        )
        with TestClient(create_app(p)) as client:
            html = client.get(f"/explore/v1/image/{image_of(p, 'n02102040/springer_02.jpg')}").text
        assert re.findall(r"<rect x=\"(\d+)\" y=\"(\d+)\"", html) == [("50", "25")]  # not (10, 10)
        create_release(p, "v2", split=ALL_TRAIN)
        assert frozen(p, "v2")[("n02102040/springer_02.jpg", SPRINGER)] == {
            (50, 25, 149, 100),
            (10, 10, 29, 29),
        }


def test_challenge_takes_boxes_from_the_release(tmp_path: Path) -> None:
    world = build_world(tmp_path / "w", extras=False)
    p = world.project
    try:
        create_release(p, "real", split=SplitSpec(val=1, test=2), seed=1)
        rel = get_release(p, "real")
        test_items = [it for it in iter_items(p.blobs, rel.manifest_sha256) if it.split == "test"]
        with p.session() as s:
            cand = s.scalar(
                select(schema.Candidate.id).where(schema.Candidate.image_id == test_items[0].image_id)
            )
            s.add(schema.BoxRow(candidate_id=cand, x1=1, y1=2, x2=3, y2=4, origin="crowd", status="good"))
        create_challenge(p, "loc", "real", leaves=True, settings=ChallengeSettings(task="localization"))
        info = get_challenge(p, "loc")
        manifest = json.loads(gzip.decompress(p.blobs.get(hidden(p, info.id)["test_manifest"])))
        assert len(manifest["boxes"]) == len(test_items)  # one frozen box per test image, not the new one
        assert [1, 2, 3, 4] not in manifest["boxes"]
        assert sorted(map(tuple, manifest["boxes"])) == sorted(b for it in test_items for b in it.boxes)
    finally:
        world.close()


XSS = '<script>alert("x")</script>'


def test_explorer_draws_the_frozen_boxes_scaled_and_escaped(tmp_path: Path) -> None:
    tax = tmp_path / "taxonomy.yaml"
    tax.write_text(f"figure:\n  name: '{XSS}'\n  gloss: a figure\n", encoding="utf-8")
    with make_project(tmp_path / "p") as p:
        import_boxes(p, DATA / "instances_val.json", "coco")
        create_release(p, "v1", split=ALL_TRAIN)
        with TestClient(create_app(p)) as client:
            html = client.get(f"/explore/v1/image/{image_of(p, 'n02102040/springer_01.jpg')}").text
        # the stored copy is 320x240: the viewBox is its size, the rect the frozen (halved) box
        assert 'viewBox="0 0 320 240"' in html
        assert '<rect x="50" y="25" width="100" height="75"' in html
        assert "English springer (50, 25, 100 × 75 px)" in html
    root = tmp_path / "q"
    with Project.init(root, taxonomy=tax) as q:
        q.add_synsets(["figure"])
        raw = jpeg_bytes(99, (40, 30))
        blob = q.blobs.put(raw)
        with q.session() as s:
            src = schema.Source(kind="folder", name="f", config={})
            img = schema.Image(sha256=blob, blob=blob, width=40, height=30, orig_width=40, orig_height=30)
            s.add_all([src, img])
            s.flush()
            s.add(schema.Candidate(synset_id="figure", source_id=src.id, key="a.jpg", url="file:///a.jpg",
                                   image_id=img.id, status="stored", decision="accepted"))  # fmt: skip
        csv = b"ImageId,PredictionString\na,figure 1 2 10 20\n"
        assert import_upload(q, "loc.csv", csv, "ilsvrc-csv").imported == 1
        create_release(q, "v1", split=ALL_TRAIN)
        with TestClient(create_app(q)) as client:
            html = client.get(f"/explore/v1/image/{image_of(q, 'a.jpg')}").text
        assert XSS not in html
        assert "<title>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</title>" in html
        assert '<rect x="1" y="2" width="10" height="19"' in html
