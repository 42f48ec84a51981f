"""Release statistics (JSON + HTML report), the explorer queries, and the `release` command line."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from _release_fixtures import Builder, build_release_project
from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.releases import create_release, get_release, list_releases, write_report
from synsetforge.releases.cli import app, parse_bytes
from synsetforge.releases.explore import image_provenance, search, synset_page, tree
from synsetforge.releases.exports import export_release
from synsetforge.releases.manifest import iter_items
from synsetforge.store import schema

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def proj(tmp_path: Path) -> Any:
    project, built = build_release_project(tmp_path / "p")
    with project:
        b = Builder(project)
        src = b.source('<img src=x onerror="alert(1)">', "folder")
        b.candidate(sorted(built.accepted)[0], b.image(), src, license=EVIL, author="Eve | *bold*")
        create_release(project, "v1")
        yield project, built


def test_stats_are_consistent(proj: Any) -> None:
    project, built = proj
    st = get_release(project, "v1").stats
    assert sum(r["images"] for r in st["per_depth"]) == st["images"]
    assert sum(r["synsets"] for r in st["per_depth"]) == st["synsets"] == len(built.accepted)
    assert sum(st["size_histogram"]["counts"]) == st["distinct_images"]
    assert sum(r["images"] for r in st["licenses"]) == st["images"]
    assert sum(r["images"] for r in st["sources"]) == st["images"]
    assert {r["synset"] for r in st["coverage"]} == set(built.accepted)
    h = project.hierarchy
    for row in st["per_synset"]:
        assert row["depth"] == h.depth(row["synset"])
        assert row["train"] + row["val"] + row["test"] == row["total"]
    for row in st["coverage"]:
        assert row["subtree_synsets"] == len(h.subtree(row["synset"]))
        assert row["coverage"] == pytest.approx(row["released_synsets"] / row["subtree_synsets"])


def test_report_json_and_self_contained_escaped_html(proj: Any, tmp_path: Path) -> None:
    project, _ = proj
    json_path, html_path = write_report(project, "v1", tmp_path / "r")
    report = json.loads(json_path.read_text())
    assert set(report) == {"release", "stats", "precision", "leaks"}
    assert report["stats"] == get_release(project, "v1").stats
    assert report["precision"]["audited"] == 0 and report["leaks"]["straddling"] == 0
    html = html_path.read_text()
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) >= 5
    for svg in svgs:  # each chart is well-formed XML
        ET.fromstring(svg)
    assert "<script" not in html and 'onerror="' not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert not re.search(r"<[^>]*\s(src|href)\s*=", html)  # no external assets, and the text stays text
    sheet = (export_release(project, "v1", "datasheet", tmp_path / "d").out / "DATASHEET.md").read_text()
    assert "<script" not in sheet and "&lt;script&gt;" in sheet and "<img" not in sheet


def test_explorer_tree_pages_provenance_and_search(proj: Any) -> None:
    project, built = proj
    rel = get_release(project, "v1")
    t = tree(project, "v1")
    assert t["roots"] == ["n00001740"]
    nodes = t["nodes"]
    assert nodes["n00001740"]["subtree_images"] == rel.stats["images"]
    assert nodes["n00001740"]["subtree_synsets"] == len(built.accepted)
    for row in rel.stats["per_synset"]:
        assert nodes[row["synset"]]["images"] == row["total"]
        for parent in nodes[row["synset"]]["parents"]:
            assert row["synset"] in nodes[parent]["children"]

    first = sorted(built.accepted)[0]
    page1 = synset_page(project, "v1", first, page=1, per_page=4)
    page_last = synset_page(project, "v1", first, page=page1["pages"], per_page=4)
    assert page1["total"] == rel.stats["per_synset"][0]["total"] and page1["pages"] == -(-page1["total"] // 4)
    assert len(page1["images"]) == 4 and 1 <= len(page_last["images"]) <= 4
    assert page1["lemmas"][0] == "tench" and page1["path"][0]["id"] == "n00001740"
    only_val = synset_page(project, "v1", first, split="val")
    assert {i["split"] for i in only_val["images"]} <= {"val"} and only_val["total"] == page1["counts"]["val"]
    with pytest.raises(NotFoundError):
        synset_page(project, "v1", "n02084071")
    with pytest.raises(InputError):
        synset_page(project, "v1", first, page=0)
    with pytest.raises(InputError):
        synset_page(project, "v1", first, split="holdout")

    prov = image_provenance(project, built.shared_image)
    assert sorted(c["synset"] for c in prov["candidates"]) == sorted(built.accepted)[1:3]
    assert {r["release"] for r in prov["releases"]} == {"v1"} and len(prov["releases"]) == 2
    assert all(c["license"] == "CC0-1.0" and c["source"] == "flickr-cc" for c in prov["candidates"])
    chain_image, chain_root = built.chain_pair
    dup = image_provenance(project, chain_image)
    assert dup["duplicate_of"][-1] == chain_root and len(dup["duplicate_of"]) == 2
    assert image_provenance(project, chain_root)["duplicates"]  # the middle image points at it
    voted = image_provenance(project, built.images[first][1])
    assert (
        len(voted["votes"]) == 3
        and voted["candidates"][0]["votes_yes"] + voted["candidates"][0]["votes_no"] == 3
    )
    with pytest.raises(NotFoundError):
        image_provenance(project, 10**9)

    assert [r["synset"] for r in search(project, "v1", "tench")] == ["n01440764"]
    assert [r["synset"] for r in search(project, "v1", "saw")] == ["n03000684"]
    assert search(project, "v1", "springer")[0]["images"] == rel.stats["per_synset"][1]["total"]
    assert search(project, "v1", "zebra") == []
    with pytest.raises(InputError):
        search(project, "v1", "  ")


def _run(project_root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--project", str(project_root)], catch_exceptions=True)


def test_cli_commands(proj: Any, tmp_path: Path) -> None:
    project, built = proj
    root = project.root
    two = ",".join(sorted(built.accepted)[:2])
    r = _run(root, "create", "v2", "--synsets", two, "--val", "2", "--test", "10%", "--seed", "3")
    assert r.exit_code == 0, r.output
    assert "Created release v2" in r.output and "manifest  sha256" in r.output
    assert get_release(project, "v2").synset_ids == sorted(built.accepted)[:2]
    r = _run(root, "list")
    assert r.exit_code == 0 and "v1" in r.output and "v2" in r.output and "2 releases" in r.output
    r = _run(root, "show", "v2")
    assert r.exit_code == 0 and "tench" in r.output and "not measured" in r.output
    shown = json.loads(_run(root, "show", "v2", "--json").output)
    assert shown["params"]["split"] == {"val": 2, "test": 0.1} and shown["params"]["seed"] == 3
    r = _run(root, "diff", "v1", "v2")
    assert r.exit_code == 0 and "-" in r.output
    diff = json.loads(_run(root, "diff", "v1", "v2", "--json").output)
    removed = {d["synset"] for d in diff if d["removed"]}
    assert removed == set(sorted(built.accepted)[2:])
    out = tmp_path / "wds"
    r = _run(root, "export", "v2", "--format", "webdataset", "--out", str(out), "--shard-size", "16KiB")
    assert r.exit_code == 0, r.output
    assert "Exported v2 as webdataset" in r.output and (out / "train-000000.tar").exists()
    r = _run(root, "report", "v2", "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0 and (tmp_path / "rep" / "report.html").exists()
    r = _run(root, "audit", "create", "v2", "--per-synset", "2", "--seed", "1")
    assert r.exit_code == 0 and "Created 2 audit tasks over 4 sampled images" in r.output
    with project.session() as s:
        tasks = list(s.scalars(select(schema.Task).where(schema.Task.kind == "audit")))
    assert {t.worker_id for t in tasks} == {built.expert}
    r = _run(root, "audit", "precision", "v2")
    assert r.exit_code == 0 and "not measured" in r.output


def test_cli_errors_are_synsetforge_errors(proj: Any, tmp_path: Path) -> None:
    project, _ = proj
    root = project.root
    cases = [
        ("create", "v1"),
        ("create", "v9", "--min-confidence", "1.5"),
        ("create", "v9", "--val", "lots"),
        ("show", "nope"),
        ("diff", "v1", "nope"),
        ("export", "v1", "--format", "png", "--out", str(tmp_path / "x")),
        ("export", "v1", "--format", "webdataset", "--out", str(tmp_path / "y"), "--shard-size", "big"),
        ("export", "v1", "--format", "ilsvrc", "--out", str(tmp_path / "z"), "--class-list", "missing"),
        ("audit", "create", "v1", "--per-synset", "0"),
    ]
    for args in cases:
        r = _run(root, *args)
        assert r.exit_code != 0, args
        assert isinstance(r.exception, SynsetforgeError), (args, r.exception)
    assert [x.name for x in list_releases(project)] == ["v1"]


def test_parse_bytes() -> None:
    assert parse_bytes("256MB") == 256_000_000
    assert parse_bytes("64MiB") == 64 * 1024**2
    assert parse_bytes("1.5k") == 1500
    assert parse_bytes("4096") == 4096
    for bad in ("", "MB", "12 parsecs", "-5"):
        with pytest.raises(InputError):
            parse_bytes(bad)


def test_items_of_the_fixture_release(proj: Any) -> None:
    project, _ = proj
    rel = get_release(project, "v1")
    items = list(iter_items(project.blobs, rel.manifest_sha256))
    evil = [it for it in items if it.license == EVIL]
    assert len(evil) == 1 and evil[0].author == "Eve | *bold*"
