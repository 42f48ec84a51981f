"""Box import and export: COCO, VOC and ILSVRC CSV files written like other tools write them
(tests/data/boxes), on SQLite and PostgreSQL; malformed files import nothing; reruns add no duplicates;
an export imports back into a fresh project as the same boxes; pycocotools reads the COCO export; the
admin HTTP endpoints and the CLI do the same."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from pycocotools.coco import COCO
from sqlalchemy import select
from typer.testing import CliRunner

from _release_fixtures import jpeg_bytes
from synsetforge.boxes import cli as boxes_cli
from synsetforge.boxes.exporting import export_boxes
from synsetforge.boxes.formats import parse_coco
from synsetforge.boxes.importing import import_boxes, import_upload, to_pixels
from synsetforge.errors import InputError
from synsetforge.store import Project, schema
from synsetforge.web import box_io_routes
from synsetforge.web.app import create_app

DATA = Path(__file__).parent / "data" / "boxes"
TENCH, SPRINGER, SAW = "n01440764", "n02102040", "n03000684"
# folder-source path -> (synset, original size); the stored copy is half the size
FILES = {
    "n02102040/springer_01.jpg": (SPRINGER, (640, 480)),
    "n02102040/springer_02.jpg": (SPRINGER, (500, 376)),
    "n03000684/saw_01.jpg": (SAW, (640, 480)),
    "n01440764/tench_01.jpg": (TENCH, (400, 300)),
}


def make_project(root: Path, db_url: str | None = None) -> Project:
    """Four folder-source images, accepted under their synsets (same bytes in every project made here)."""
    project = Project.init(root, db=db_url, name="boxes-io")
    project.add_synsets([TENCH, SPRINGER, SAW])
    with project.session() as s:
        src = schema.Source(kind="folder", name="pictures", config={})
        s.add(src)
        s.flush()
        for seed, (key, (synset, (ow, oh))) in enumerate(FILES.items(), start=1):
            data = jpeg_bytes(seed, (ow // 2, oh // 2))
            blob = project.blobs.put(data)
            img = schema.Image(
                sha256=blob,
                blob=blob,
                width=ow // 2,
                height=oh // 2,
                orig_width=ow,
                orig_height=oh,
                orig_bytes=len(data),
                orig_format="JPEG",
            )
            s.add(img)
            s.flush()
            s.add(
                schema.Candidate(
                    synset_id=synset,
                    source_id=src.id,
                    key=key,
                    url=f"file:///data/pictures/{key}",
                    image_id=img.id,
                    status="stored",
                    decision="accepted",
                    confidence=0.99,
                )
            )
    return project


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One SQLite project for tests that must leave it unchanged."""
    with make_project(tmp_path_factory.mktemp("shared") / "p") as p:
        yield p


def boxes(project: Project) -> set[tuple[str, str, tuple[int, int, int, int], str, str, str | None]]:
    """(file key, synset, box, origin, status, origin_ref) of every stored box."""
    B, C = schema.BoxRow, schema.Candidate
    with project.session() as s:
        rows = s.execute(
            select(C.key, C.synset_id, B.x1, B.y1, B.x2, B.y2, B.origin, B.status, B.origin_ref).join(
                C, C.id == B.candidate_id
            )
        ).all()
    return {(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8]) for r in rows}


def coords(project: Project) -> set[tuple[str, str, tuple[int, int, int, int]]]:
    return {(k, sy, b) for k, sy, b, *_ in boxes(project)}


def test_import_coco_as_cvat_writes_it(tmp_path: Path, db_url: str) -> None:
    with make_project(tmp_path / "p", db_url) as p:
        report = import_boxes(p, DATA / "instances_val.json", "coco")
        assert (report.records, report.imported, report.duplicates, report.clipped) == (7, 3, 0, 1)
        reasons = {s.place: s.reason for s in report.skipped}
        assert set(reasons) == {"annotation 2", "annotation 4", "annotation 5", "annotation 7"}
        assert "iscrowd" in reasons["annotation 2"]
        assert (
            "no image of the project" in reasons["annotation 4"]
            and "not_in_project.jpg" in reasons["annotation 4"]
        )
        assert "'zebra' maps to no project synset" in reasons["annotation 5"]
        assert "not a candidate of synset 'n02102040'" in reasons["annotation 7"]
        assert boxes(p) == {
            # [100, 50, 200, 150] -> inclusive corners
            ("n02102040/springer_01.jpg", SPRINGER, (100, 50, 299, 199), "import", "good",
             "coco:instances_val.json#annotation 1"),
            # 470 high from y=20 runs past the 480-pixel image: clipped to the last row
            ("n03000684/saw_01.jpg", SAW, (10, 20, 639, 479), "import", "good",
             "coco:instances_val.json#annotation 3"),
            # given on a 1000x750 copy of a 500x376 image: scaled by 0.5 and 0.5013
            ("n02102040/springer_02.jpg", SPRINGER, (100, 50, 299, 200), "import", "good",
             "coco:instances_val.json#annotation 6"),
        }  # fmt: skip
        again = import_boxes(p, DATA / "instances_val.json", "coco")
        assert (again.imported, again.duplicates) == (0, 3)
        assert len(boxes(p)) == 3


def test_import_voc_folder_as_labelimg_and_cvat_write_it(tmp_path: Path, db_url: str) -> None:
    with make_project(tmp_path / "p", db_url) as p:
        report = import_boxes(p, DATA / "voc", "voc")
        assert (report.files, report.records, report.imported, report.skipped) == (2, 3, 3, [])
        assert boxes(p) == {
            # CVAT: decimal 1-based corners 51.2 40.8 250 300 on a 500x375 copy of the 500x376 image
            ("n02102040/springer_02.jpg", SPRINGER, (50, 40, 249, 300), "import", "good",
             "voc:voc/springer_02.xml#object 1"),
            # LabelImg: 1-based 11 21 110 120 -> 0-based 10 20 109 119
            ("n01440764/tench_01.jpg", TENCH, (10, 20, 109, 119), "import", "good",
             "voc:voc/tench_01.xml#object 1"),
            ("n01440764/tench_01.jpg", TENCH, (199, 149, 399, 299), "import", "good",
             "voc:voc/tench_01.xml#object 2 (difficult,truncated)"),
        }  # fmt: skip
        assert report.per_file() == {
            "springer_02.xml": {"new": 1, "duplicates": 0, "skipped": 0},
            "tench_01.xml": {"new": 2, "duplicates": 0, "skipped": 0},
        }
        again = import_boxes(p, DATA / "voc", "voc")
        assert again.duplicates == 3 and again.per_file()["tench_01.xml"] == {
            "new": 0,
            "duplicates": 2,
            "skipped": 0,
        }
        assert len(boxes(p)) == 3


def test_import_ilsvrc_csv(tmp_path: Path, db_url: str) -> None:
    with make_project(tmp_path / "p", db_url) as p:
        report = import_boxes(p, DATA / "LOC_val_solution.csv", "ilsvrc-csv")
        assert (report.records, report.imported, len(report.skipped)) == (4, 3, 1)
        assert report.skipped[0].place == "line 4 box 1"
        assert coords(p) == {
            ("n02102040/springer_01.jpg", SPRINGER, (5, 6, 105, 106)),
            ("n02102040/springer_01.jpg", SPRINGER, (300, 200, 400, 300)),
            ("n03000684/saw_01.jpg", SAW, (0, 0, 639, 479)),
        }
        refs = {ref for *_, ref in boxes(p)}
        assert "ilsvrc-csv:LOC_val_solution.csv#line 2 box 2" in refs


def test_a_name_that_matches_two_images_is_skipped_unless_the_path_tells(tmp_path: Path) -> None:
    with make_project(tmp_path / "p") as p:
        with p.session() as s:  # a second springer_01.jpg, in another folder
            src = s.scalar(select(schema.Source.id))
            data = jpeg_bytes(50, (64, 48))
            img = schema.Image(sha256=p.blobs.put(data), width=64, height=48, orig_width=640, orig_height=480)
            s.add(img)
            s.flush()
            s.add(
                schema.Candidate(
                    synset_id=SPRINGER,
                    source_id=src,
                    key="other/springer_01.jpg",
                    url="file:///x/other/springer_01.jpg",
                    image_id=img.id,
                    decision="accepted",
                )
            )
        report = import_boxes(p, DATA / "instances_val.json", "coco")
        skipped = {s.place: s.reason for s in report.skipped}
        assert skipped["annotation 1"].startswith("the file name matches 2 images of the project")
        voc = (DATA / "voc" / "tench_01.xml").read_text()
        voc = voc.replace("<folder>n01440764</folder>", "<folder>n02102040</folder>")
        voc = voc.replace("tench_01.jpg", "springer_01.jpg").replace(
            "<name>tench</name>", "<name>English_springer</name>"
        )
        report = import_upload(p, "springer.xml", voc.encode(), "voc")  # LabelImg's <folder> picks the image
        assert (report.imported, report.records) == (1, 2)
        assert [s.reason for s in report.skipped] == ["image 1 is not a candidate of synset 'n01440764'"]
        # the XML says 400x300 for a 640x480 original: 10 20 109 119 scaled by 1.6
        assert [(k, b) for k, _, b in coords(p) if "springer_01" in k] == [
            ("n02102040/springer_01.jpg", (16, 32, 175, 191))
        ]


@pytest.mark.parametrize(
    ("path", "fmt", "place"),
    [
        ("malformed_instances.json", "coco", "malformed_instances.json: annotations[1].bbox: expected"),
        ("truncated_instances.json", "coco", "truncated_instances.json line "),
        ("voc_malformed", "voc", "springer_02.xml: /annotation/object[2]/bndbox/xmax: missing"),
        ("broken_voc.xml", "voc", "broken_voc.xml line 6 column"),
        ("malformed_LOC.csv", "ilsvrc-csv", "malformed_LOC.csv line 3: PredictionString has 4 values"),
    ],
)
def test_malformed_file_imports_nothing(shared: Project, path: str, fmt: str, place: str) -> None:
    with pytest.raises(InputError) as err:
        import_boxes(shared, DATA / path, fmt)
    message = str(err.value)
    assert message.startswith(place) and "\n" not in message
    assert boxes(shared) == set()


@pytest.mark.postgres
def test_malformed_file_imports_nothing_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The valid VOC file is read before the malformed one: still nothing is stored."""
    with make_project(tmp_path / "p", pg_url) as p:
        with pytest.raises(InputError, match="object\\[2\\]/bndbox/xmax"):
            import_boxes(p, DATA / "voc_malformed", "voc")
        assert boxes(p) == set()


def test_dangerous_input_is_refused_or_kept_as_text(tmp_path: Path) -> None:
    with make_project(tmp_path / "p") as p:
        doc = json.loads((DATA / "instances_val.json").read_text())
        doc["images"][0]["file_name"] = "../../../etc/<script>alert(1)</script>.jpg"
        doc["categories"][0]["name"] = "<img src=x onerror=alert(1)>"
        data = json.dumps(doc).encode()
        report = import_upload(
            p,
            "..\\..\\up/<script>evil.json",
            data,
            "coco",
            mapping={"<img src=x onerror=alert(1)>": SPRINGER},
        )
        assert report.source == "<script>evil.json"  # the base name only: no folders of the uploader
        skipped = {s.place: s.reason for s in report.skipped}
        assert "no image of the project" in skipped["annotation 1"]
        refs = {ref for *_, ref in boxes(p)}
        assert "coco:<script>evil.json#annotation 6" in refs  # stored as text; pages escape it
        with pytest.raises(InputError, match="DTDs and entity"):
            import_upload(
                p, "bomb.xml", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><annotation/>', "voc"
            )
        with pytest.raises(InputError, match="NaN is not a number"):
            import_upload(p, "nan.json", data.replace(b"200.0, 150.0", b"NaN, 150.0"), "coco")
        with pytest.raises(InputError, match="over the import limit"):
            import_upload(p, "big.json", data, "coco", max_bytes=100)
        with pytest.raises(InputError, match="unknown box format"):
            import_upload(p, "x.json", data, "yolo")


def _add(project: Project, key: str, box: tuple[int, int, int, int], origin: str, status: str) -> None:
    with project.session() as s:
        cid = s.scalar(select(schema.Candidate.id).where(schema.Candidate.key == key))
        s.add(
            schema.BoxRow(
                candidate_id=cid, x1=box[0], y1=box[1], x2=box[2], y2=box[3], origin=origin, status=status
            )
        )


@pytest.mark.parametrize("fmt", ["coco", "voc", "ilsvrc-csv"])
def test_export_imports_back_as_the_same_boxes(tmp_path: Path, fmt: str) -> None:
    with make_project(tmp_path / "a") as a:
        import_boxes(a, DATA / "instances_val.json", "coco")
        import_boxes(a, DATA / "voc", "voc")
        _add(a, "n01440764/tench_01.jpg", (1, 2, 30, 40), "crowd", "good")
        _add(a, "n01440764/tench_01.jpg", (5, 5, 60, 60), "crowd", "proposed")  # not accepted yet
        _add(a, "n01440764/tench_01.jpg", (7, 7, 70, 70), "import", "bad")  # voted bad
        _add(a, "n03000684/saw_01.jpg", (3, 3, 33, 33), "gold", "good")  # a known answer: never exported
        accepted = {
            (k, sy, b) for k, sy, b, origin, status, _ in boxes(a) if origin != "gold" and status == "good"
        }
        out = tmp_path / ("export" if fmt == "voc" else f"export.{fmt}")
        result = export_boxes(a, fmt, out)
        assert (result.images, result.boxes) == (4, len(accepted)) and len(accepted) == 7
    with make_project(tmp_path / "b") as b:
        report = import_boxes(b, out, fmt)
        assert report.skipped == [] and report.imported == len(accepted)
        assert coords(b) == accepted
        assert {origin for _, _, _, origin, _, _ in boxes(b)} == {"import"}


def test_pycocotools_reads_the_fixture_and_the_coco_export(tmp_path: Path) -> None:
    fixture = COCO(str(DATA / "instances_val.json"))  # the fixture is a file pycocotools accepts
    crowd = fixture.loadAnns([2])[0]
    assert crowd["iscrowd"] == 1 and int(fixture.annToMask(crowd).sum()) == 900
    with make_project(tmp_path / "p") as p:
        import_boxes(p, DATA / "instances_val.json", "coco")
        export_boxes(p, "coco", tmp_path / "instances.json")
    coco = COCO(str(tmp_path / "instances.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 3
    by_file = {coco.imgs[a["image_id"]]["file_name"]: a for a in anns}
    assert by_file["n02102040/springer_01.jpg"]["bbox"] == [100, 50, 200, 150]  # the file's box, unchanged
    assert coco.cats[by_file["n03000684/saw_01.jpg"]["category_id"]]["synset"] == SAW


def test_cli_import_and_export(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_project(root).close()
    app = typer.Typer()
    app.add_typer(boxes_cli.app, name="boxes")
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    r = runner.invoke(
        app, ["boxes", "import", str(DATA / "instances_val.json"), "-f", "coco", "-p", str(root)], env=env
    )
    assert r.exit_code == 0, r.output
    assert (
        "imported 3 boxes from instances_val.json (coco, 1 file): 7 records, 3 new, 0 already there, 4 skipped"
        in r.output
    )
    assert (
        "skipped annotation 5: category 'zebra' maps to no project synset (use --map zebra=SYNSET)"
        in r.output
    )
    r = runner.invoke(
        app,
        [
            "boxes",
            "import",
            str(DATA / "instances_val.json"),
            "-f",
            "coco",
            "--map",
            f"zebra={SPRINGER}",
            "-p",
            str(root),
        ],
        env=env,
    )
    assert "1 new, 3 already there" in r.output  # the zebra box, on a springer image, mapped to springer
    r = runner.invoke(
        app,
        ["boxes", "import", str(DATA / "malformed_LOC.csv"), "-f", "ilsvrc-csv", "-p", str(root)],
        env=env,
    )
    assert r.exit_code == 1 and isinstance(r.exception, InputError)
    r = runner.invoke(
        app,
        ["boxes", "export", "-f", "ilsvrc-csv", "-o", str(tmp_path / "loc.csv"), "-p", str(root)],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "live export" in r.output
    assert (
        (tmp_path / "loc.csv")
        .read_text()
        .startswith("ImageId,PredictionString\nspringer_01,n02102040 100 50 299 199")
    )


def test_voc_zip_upload_round_trip_and_bad_zips(tmp_path: Path) -> None:
    """Over HTTP a folder of VOC files travels as a zip: the export's zip imports back as the same boxes."""
    with make_project(tmp_path / "a") as a:
        import_boxes(a, DATA / "voc", "voc")
        app = create_app(a)
        headers = {"authorization": f"Bearer {app.state.service.create_token('admin')}"}
        with TestClient(app) as client:
            exported = client.get(
                "/api/v1/admin/boxes/export", params={"format": "voc"}, headers=headers
            ).content
        expected = coords(a)
    with make_project(tmp_path / "b") as b:
        app = create_app(b)
        headers = {"authorization": f"Bearer {app.state.service.create_token('admin')}"}
        with TestClient(app) as client:
            r = client.post(
                "/api/v1/admin/boxes/import",
                params={"format": "voc", "name": "boxes-voc.zip", "dry_run": True},
                content=exported,
                headers=headers,
            )
        assert r.status_code == 200 and r.json()["per_file"]["Annotations/n01440764/tench_01.xml"]["new"] == 2
        assert boxes(b) == set()  # a dry run stores nothing
        report = import_upload(b, "boxes-voc.zip", exported, "voc")
        assert (report.files, report.imported, report.skipped) == (2, 3, [])
        assert coords(b) == expected
        assert "voc:boxes-voc.zip/Annotations/n01440764/tench_01.xml#object 1" in {r for *_, r in boxes(b)}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("ok.xml", (DATA / "voc" / "tench_01.xml").read_bytes())
            zf.writestr("sub/broken.xml", (DATA / "broken_voc.xml").read_bytes())
        with pytest.raises(InputError, match=r"^x\.zip/sub/broken\.xml line 6 column"):
            import_upload(b, "x.zip", buf.getvalue(), "voc")
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("big.xml", b"<annotation>" + b" " * 500_000 + b"</annotation>")
        assert len(bomb.getvalue()) < 10_000
        with pytest.raises(InputError, match="unpack to more than the import limit of 100,000 bytes"):
            import_upload(b, "bomb.zip", bomb.getvalue(), "voc", max_bytes=100_000)
        assert len(boxes(b)) == 3  # nothing more stored


def test_admin_http_import_has_its_own_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A box file is larger than a vote: the crowd app's 64 KiB body limit does not apply, the route's does."""
    doc = json.loads((DATA / "instances_val.json").read_text())
    doc["images"] += [
        {"id": 1000 + k, "file_name": f"unused_{k:05d}.jpg", "width": 9, "height": 9} for k in range(3000)
    ]
    data = json.dumps(doc).encode()
    assert len(data) > 64 * 1024
    with make_project(tmp_path / "p") as p:
        app = create_app(p)
        headers = {"authorization": f"Bearer {app.state.service.create_token('admin')}"}
        with TestClient(app) as client:
            url = "/api/v1/admin/boxes/import"
            r = client.post(url, params={"format": "coco", "name": "big.json"}, content=data, headers=headers)
            assert r.status_code == 200 and r.json()["imported"] == 3, r.text
            monkeypatch.setattr(box_io_routes, "IMPORT_LIMIT", len(data) - 1)
            r = client.post(
                url, params={"format": "coco"}, files={"file": ("big.json", data)}, headers=headers
            )
            assert r.status_code == 413
            # other /api/v1 routes keep the crowd limit
            assert client.post("/api/v1/admin/aggregate", content=data, headers=headers).status_code == 413
        assert len(boxes(p)) == 3


def test_admin_http_import_and_export(tmp_path: Path) -> None:
    with make_project(tmp_path / "p") as p:
        app = create_app(p)
        admin = app.state.service.create_token("admin")
        worker = app.state.service.invite("w").token
        headers = {"authorization": f"Bearer {admin}"}
        with TestClient(app) as client:
            url = "/api/v1/admin/boxes/import"
            voc = (DATA / "voc" / "tench_01.xml").read_bytes()
            assert (
                client.post(
                    url, params={"format": "voc"}, content=voc, headers={"authorization": f"Bearer {worker}"}
                ).status_code
                == 403
            )
            assert client.post(url, params={"format": "voc"}, content=voc).status_code == 401
            r = client.post(
                url,
                params={"format": "voc"},
                files={"file": ("../x/tench_01.xml", voc, "text/xml")},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            assert (r.json()["imported"], r.json()["source"]) == (2, "tench_01.xml")
            bad = (DATA / "broken_voc.xml").read_bytes()
            r = client.post(url, params={"format": "voc", "name": "broken.xml"}, content=bad, headers=headers)
            assert r.status_code == 422 and r.json()["detail"].startswith("broken.xml line 6 column")
            assert (
                client.post(url, params={"format": "yolo"}, content=voc, headers=headers).status_code == 422
            )
            assert len(boxes(p)) == 2
            r = client.get("/api/v1/admin/boxes/export", params={"format": "voc"}, headers=headers)
            assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
            names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
            assert names == ["Annotations/n01440764/tench_01.xml"]  # named like the image it describes
            r = client.get("/api/v1/admin/boxes/export", params={"format": "coco"}, headers=headers)
            assert r.status_code == 200 and len(r.json()["annotations"]) == 2
            assert "live" in r.headers["x-synsetforge-export"]


@pytest.mark.parametrize(
    ("edges", "file_size", "expected"),
    [
        ((10.0, 20.0, 30.0, 40.0), None, ((10, 20, 29, 39), False)),  # edges -> inclusive corners
        ((-5.0, -5.0, 5.0, 5.0), None, ((0, 0, 4, 4), True)),  # clipped at the top-left
        ((90.0, 0.0, 120.0, 10.0), None, ((90, 0, 99, 9), True)),  # clipped at the right
        ((100.0, 0.0, 120.0, 10.0), None, (None, False)),  # wholly outside
        ((10.0, 10.0, 10.4, 20.0), None, (None, False)),  # under half a pixel wide
        ((10.0, 5.0, 30.0, 20.0), (50, 25), ((20, 10, 59, 39), False)),  # a half-size copy: doubled
    ],
)
def test_to_pixels(
    edges: tuple[float, float, float, float],
    file_size: tuple[int, int] | None,
    expected: tuple[tuple[int, int, int, int] | None, bool],
) -> None:
    assert to_pixels(edges, file_size, (100, 50)) == expected


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("[]", "x.json: $: expected a JSON object"),
        ('{"images": [], "annotations": []}', "x.json: categories: expected a list"),
        ('{"images": [{"id": "1", "file_name": "a.jpg"}], "annotations": [], "categories": []}',
         'x.json: images[0].id: expected an integer, got "1"'),
        ('{"images": [{"id": 1, "file_name": ""}], "annotations": [], "categories": []}',
         "x.json: images[0].file_name: expected a non-empty string"),
        ('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "a"}], '
         '"annotations": [{"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}',
         "x.json: annotations[0].image_id: no image with id 2 in the file"),
        ('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "a"}], '
         '"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, true, 1]}]}',
         "x.json: annotations[0].bbox: expected [x, y, width, height], four finite numbers"),
        ('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "a"}], '
         '"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e999, 1]}]}',
         "x.json: annotations[0].bbox: expected [x, y, width, height], four finite numbers"),
    ],
)  # fmt: skip
def test_coco_errors_name_the_json_path(doc: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_coco("x.json", doc.encode())
    assert str(err.value).startswith(message)


def test_dry_run_reports_boxes_outside_the_image_and_stores_nothing(shared: Project) -> None:
    csv = (
        b"ImageId,PredictionString\nsaw_01,n03000684 700 10 720 20 n03000684 10 10 20 20 n03000684 5 5 4 9\n"
    )
    report = import_upload(shared, "loc.csv", csv, "ilsvrc-csv", dry_run=True)
    assert (report.imported, report.dry_run) == (1, True)
    assert sorted((s.place, s.reason) for s in report.skipped) == [
        ("line 2 box 1", "the box lies outside the image (or is under a pixel)"),  # x from 700 on a 640 image
        ("line 2 box 3", "zero or negative size"),
    ]
    assert boxes(shared) == set()
