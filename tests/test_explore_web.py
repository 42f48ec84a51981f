"""The release explorer over HTTP (TestClient): tree counts, paging, provenance, search, escaping, and that
test-split items and images outside the release are never served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from _release_fixtures import WNIDS, Builder, Built, build_release_project
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app

XSS = '<script>alert("x")</script>'


@pytest.fixture
def explorer(tmp_path: Path) -> Iterator[tuple[Project, Built, TestClient]]:
    project, built = build_release_project(tmp_path / "p")
    with project:
        create_release(project, "v1", split=SplitSpec(val=2, test=3), seed=3)
        with TestClient(create_app(project)) as client:
            yield project, built, client


def items(project: Project, release: str = "v1") -> list[tuple[int, str, str]]:
    with project.session() as s:
        rows = s.execute(
            select(schema.ReleaseItem.image_id, schema.ReleaseItem.synset_id, schema.ReleaseItem.split)
            .join(schema.Release, schema.Release.id == schema.ReleaseItem.release_id)
            .where(schema.Release.name == release)
        ).all()
    return [(int(i), str(s), str(sp)) for i, s, sp in rows]


def linked_images(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'href="/explore/v1/image/(\d+)"', html)]


def test_tree_shows_public_counts_and_ancestors(explorer: Any) -> None:
    project, _, client = explorer
    rows = items(project)
    r = client.get("/explore")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert 'option value="v1" selected' in html
    for wnid in WNIDS:
        public = sum(1 for _, s, sp in rows if s == wnid and sp != "test")
        assert public < sum(1 for _, s, _ in rows if s == wnid)  # every synset has test items...
        link = f'href="/explore/v1/synset/{wnid}">'
        assert link in html
        after = html.split(link, 1)[1]
        assert re.search(r"\((\d+)\)", after).group(1) == str(public)  # type: ignore[union-attr]
    # the root of the hierarchy is listed with every public item below it
    total = sum(1 for _, _, sp in rows if sp != "test")
    assert f"({total})" in html and "entity" in html
    assert client.get("/explore/v1").text == html
    assert client.get("/explore", params={"release": "v1"}).text == html
    assert client.get("/explore/nope").status_code == 404


def test_synset_page_pages_through_the_public_items(explorer: Any) -> None:
    project, _, client = explorer
    wnid = WNIDS[0]
    public = {i for i, s, sp in items(project) if s == wnid and sp != "test"}
    seen: list[int] = []
    page = 1
    while True:
        r = client.get(f"/explore/v1/synset/{wnid}", params={"page": page, "per_page": 3})
        assert r.status_code == 200
        assert "tench" in r.text.lower()
        got = linked_images(r.text)
        assert 1 <= len(got) <= 3
        seen += got
        if 'rel="next"' not in r.text:
            break
        page += 1
    assert sorted(seen) == sorted(public) and len(seen) == len(set(seen))
    assert page == -(-len(public) // 3)
    val = client.get(f"/explore/v1/synset/{wnid}", params={"split": "val"})
    assert len(linked_images(val.text)) == 2
    # bad input: a page past the end, a hidden split, an unknown synset, nonsense numbers
    assert (
        client.get(f"/explore/v1/synset/{wnid}", params={"page": page + 1, "per_page": 3}).status_code == 404
    )
    assert client.get(f"/explore/v1/synset/{wnid}", params={"split": "test"}).status_code == 422
    assert client.get("/explore/v1/synset/n99999999").status_code == 404
    assert client.get(f"/explore/v1/synset/{wnid}", params={"page": 0}).status_code == 422
    assert client.get(f"/explore/v1/synset/{wnid}", params={"per_page": 10**6}).status_code == 422


def test_image_page_shows_provenance_and_the_bytes(explorer: Any) -> None:
    project, built, client = explorer
    splits = {(i, s): sp for i, s, sp in items(project)}
    shared = built.shared_image
    shared_split = splits[(shared, WNIDS[1])]
    chain_image, chain_root = built.chain_pair
    assert "test" not in (shared_split, splits[(chain_image, WNIDS[0])])  # seed 3 makes them public
    r = client.get(f"/explore/v1/image/{shared}")
    assert r.status_code == 200
    html = r.text
    assert "flickr-cc" in html and "CC0-1.0" in html and "Ann Example" in html
    assert f"query for {WNIDS[1]}" in html and f"query for {WNIDS[2]}" in html
    blob = client.get(f"/explore/v1/blob/{shared}")
    assert blob.status_code == 200 and blob.headers["content-type"] == "image/jpeg"
    assert blob.content.startswith(b"\xff\xd8")
    # a voted image shows its vote totals (3 workers voted on every fixture candidate)
    voted = next(i for i in built.images[WNIDS[0]][1:4] if splits[(i, WNIDS[0])] != "test")
    table = client.get(f"/explore/v1/image/{voted}").text.split('id="provenance"', 1)[1]
    assert re.search(r"[23] / [01]</td>", table)
    # duplicates: the chain's root shares the image's frozen cluster and is linked; its middle image (no
    # stored bytes) was never released
    dup = client.get(f"/explore/v1/image/{chain_image}").text.split('id="duplicates"', 1)[1]
    dup = dup.split("</td>", 1)[0]
    assert linked_images(dup) == [chain_root]


def test_rejected_candidates_test_items_and_outsiders_are_not_exposed(explorer: Any) -> None:
    project, built, client = explorer
    rows = items(project)
    test_images = {i for i, _, sp in rows if sp == "test"} - {i for i, _, sp in rows if sp != "test"}
    assert test_images
    for image in sorted(test_images):
        assert client.get(f"/explore/v1/image/{image}").status_code == 404
        assert client.get(f"/explore/v1/blob/{image}").status_code == 404
    with project.session() as s:
        outsiders = [
            s.scalar(select(schema.Candidate.image_id).where(schema.Candidate.id == c))
            for c in built.not_accepted
        ]
    for image in outsiders:
        assert client.get(f"/explore/v1/image/{image}").status_code == 404
        assert client.get(f"/explore/v1/blob/{image}").status_code == 404
    assert client.get("/explore/v1/image/999999").status_code == 404
    # a public image's rejected candidate, and its candidate for a synset it is not released under, stay out
    public = next(i for i, s, sp in rows if s == WNIDS[0] and sp != "test")
    b = Builder(project)
    src = b.source("late-source", "flickr")
    b.candidate(WNIDS[0], public, src, decision="rejected", author="Rejected Rita")
    b.candidate(WNIDS[3], public, src, decision="accepted", author="Later Larry")
    html = client.get(f"/explore/v1/image/{public}").text
    assert "Ann Example" in html and "Rejected Rita" not in html and "Later Larry" not in html
    assert "late-source" not in html
    assert client.get("/explore/v1/image/abc").status_code == 422
    # no page of the explorer links to a test image
    pages = [client.get("/explore").text] + [
        client.get(f"/explore/v1/synset/{w}", params={"per_page": 200}).text for w in WNIDS
    ]
    assert not test_images & {i for html in pages for i in linked_images(html)}
    assert all(" test ·" not in html for html in pages)


def test_search_finds_words_and_escapes_html(explorer: Any) -> None:
    project, _, client = explorer
    r = client.get("/explore/v1/search", params={"q": "springer"})
    assert r.status_code == 200 and f'href="/explore/v1/synset/{WNIDS[1]}"' in r.text
    assert 'id="no-hits"' in client.get("/explore/v1/search", params={"q": "zebra"}).text
    assert 'id="hits"' not in client.get("/explore/v1/search").text
    assert client.get("/explore/v1/search", params={"q": "x" * 500}).status_code == 422
    wnid = WNIDS[3]
    public = next(i for i, s, sp in items(project) if s == wnid and sp != "test")
    with project.session() as s:
        s.execute(update(schema.Synset).where(schema.Synset.id == wnid).values(gloss=f"a saw {XSS}"))
        s.execute(update(schema.Candidate).where(schema.Candidate.image_id == public).values(author=XSS))
    create_release(project, "v2", split=SplitSpec(val=2, test=3), seed=3)  # pages show what v2 froze
    for url, params in (
        (f"/explore/v2/synset/{wnid}", {}),
        ("/explore/v2/search", {"q": "alert"}),
        (f"/explore/v2/image/{public}", {}),
        ("/explore/v2/search", {"q": XSS}),
    ):
        html = client.get(url, params=params).text
        assert XSS not in html
        assert "&lt;script&gt;alert(" in html, url
