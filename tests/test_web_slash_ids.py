"""Synset ids with `/` (custom taxonomies allow them) have working explorer and admin pages, and the public
explorer shows a folder source's files by their path below the source root, never as server paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from _release_fixtures import jpeg_bytes
from synsetforge.candidates.collect import CollectOptions, collect
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.sources.folder import FolderSource
from synsetforge.crowd.tokens import csrf_token
from synsetforge.releases.provenance import public_candidate, public_location, public_source
from synsetforge.releases.release import create_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app
from synsetforge.web.auth import ADMIN_COOKIE

HAMMER = "tools/hammer"
SAW = "tools/saws/hand_saw"  # two slashes
TAXONOMY = f"""\
- id: tools
- id: {HAMMER}
  name: hammer
  parents: tools
  gloss: a hand tool with a heavy head
- id: {SAW}
  name: hand saw
  parents: tools
"""


@pytest.fixture
def slashed(tmp_path: Path, db_url: str) -> Iterator[tuple[Project, Path, TestClient, str]]:
    """A project on a taxonomy whose ids contain `/`, filled by a real folder collection, released."""
    tax = tmp_path / "tools.yaml"
    tax.write_text(TAXONOMY, encoding="utf-8")
    images = tmp_path / "srv" / "photos"
    for folder in ("hammers", "saws"):
        (images / folder).mkdir(parents=True)
        for k in range(4):
            (images / folder / f"{folder}-{k}.jpg").write_bytes(jpeg_bytes(100 * len(folder) + k, (64, 48)))
    with Project.init(tmp_path / "p", db=db_url, taxonomy=tax) as project:
        project.add_synsets(["tools", HAMMER, SAW])
        root = images.resolve()
        source = FolderSource(root, mapping={"hammers": HAMMER, "saws": SAW}, name=f"folder:{root}")
        options = CollectOptions(
            engine="inline",
            image_policy=ImagePolicy(resize="keep", min_side=16),
            fetch_policy=FetchPolicy(allow_files=True, file_roots=(root,)),
        )
        summary = collect(project, source, [HAMMER, SAW], options, kind="folder")
        assert summary.totals()["stored"] == 8
        with project.session() as s:
            s.execute(update(schema.Candidate).values(decision="accepted", confidence=0.97))
        create_release(project, "v1", split=SplitSpec(val=1, test=0), seed=1)
        app = create_app(project)
        admin = app.state.service.create_token("admin")
        with TestClient(app) as client:
            yield project, root, client, admin


def test_explorer_links_encode_slashes_and_the_pages_answer(
    slashed: tuple[Project, Path, TestClient, str],
) -> None:
    _, _, client, _ = slashed
    tree = client.get("/explore/v1")
    assert tree.status_code == 200
    for sid in (HAMMER, SAW):
        encoded = sid.replace("/", "%2F")
        assert f'href="/explore/v1/synset/{encoded}"' in tree.text
        page = client.get(f"/explore/v1/synset/{encoded}")
        assert page.status_code == 200, page.text
        assert f"<code>{sid}</code>" in page.text
        images = [int(i) for i in re.findall(r'href="/explore/v1/image/(\d+)"', page.text)]
        assert len(images) == 4
        # the pager and split links stay on the encoded id
        assert f'href="/explore/v1/synset/{encoded}?split=val"' in page.text
        assert client.get(f"/explore/v1/synset/{encoded}", params={"split": "val"}).status_code == 200
        # the image page links back to its synset, encoded
        image = client.get(f"/explore/v1/image/{images[0]}")
        assert image.status_code == 200 and f'href="/explore/v1/synset/{encoded}"' in image.text
    hits = client.get("/explore/v1/search", params={"q": "hammer"})
    assert f'href="/explore/v1/synset/{HAMMER.replace("/", "%2F")}"' in hits.text
    assert client.get("/explore/v1/synset/tools%2Fnothing").status_code == 404


def test_admin_pages_and_api_take_ids_with_slashes(slashed: tuple[Project, Path, TestClient, str]) -> None:
    _, _, client, admin = slashed
    client.cookies.set(ADMIN_COOKIE, admin)
    home = client.get("/admin")
    assert home.status_code == 200
    for sid in (HAMMER, SAW):
        encoded = sid.replace("/", "%2F")
        assert f'href="/admin/synsets/{encoded}"' in home.text
        page = client.get(f"/admin/synsets/{encoded}")
        assert page.status_code == 200 and sid in page.text
        assert len(re.findall(r'src="/img/\d+"', page.text)) == 4
        rows = client.get(
            f"/api/v1/admin/synsets/{encoded}/images", headers={"Authorization": f"Bearer {admin}"}
        )
        assert rows.status_code == 200 and len(rows.json()) == 4
    assert csrf_token(admin, "admin") in home.text


def test_explorer_shows_folder_files_relative_to_the_source_root(
    slashed: tuple[Project, Path, TestClient, str],
) -> None:
    project, root, client, _ = slashed
    with project.session() as s:
        public = s.scalars(
            select(schema.ReleaseItem.image_id).where(
                schema.ReleaseItem.synset_id == HAMMER, schema.ReleaseItem.split.in_(["train", "val"])
            )
        ).all()
    assert len(public) == 4
    shown: list[str] = []
    for image_id in public:
        html = client.get(f"/explore/v1/image/{image_id}").text
        provenance = html.split('id="provenance"', 1)[1]
        assert "file:" not in provenance and str(root) not in provenance
        assert str(root.parent) not in html  # no server path anywhere on the page
        assert "folder:photos" in provenance  # the source, by the root folder's name only
        shown += re.findall(r'<span class="url">([^<]*)</span>', provenance)
    assert sorted(shown) == [f"hammers/hammers-{k}.jpg" for k in range(4)]


def test_public_location_and_source() -> None:
    url = "file:///srv/data/photos/n01440764/a%20b.jpg"
    assert public_location(url, "folder:/srv/data/photos") == "n01440764/a b.jpg"
    assert public_location(url, "folder") == "a b.jpg"  # root unknown: the file name, never the path
    assert public_location(url, "folder:/elsewhere") == "a b.jpg"
    assert public_location("https://img.example/a.jpg", "folder:/srv") == "https://img.example/a.jpg"
    assert public_location(None, "x") is None
    assert public_source("folder:/srv/data/photos", url) == "folder:photos"
    assert public_source("flickr-cc", "https://img.example/a.jpg") == "flickr-cc"
    item = {"source": "folder:/srv/data/photos", "url": url, "page_url": None, "license": "CC0-1.0"}
    assert public_candidate(item) == {
        "source": "folder:photos",
        "url": "n01440764/a b.jpg",
        "page_url": None,
        "license": "CC0-1.0",
    }
