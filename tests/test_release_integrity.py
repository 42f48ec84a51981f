"""A release is what it froze (issue 12, items 1 and 2): explorer pages show the manifest's votes, confidence,
provenance, duplicate clusters and synset facts whatever the live tables say later, and a challenge's hidden
boxes are the manifest's boxes byte for byte. A damaged manifest is a one-line error, never live data."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from _release_fixtures import WNIDS, Builder, build_release_project
from synsetforge.benchmark.challenge import (
    ChallengeSettings,
    create_challenge,
    get_challenge,
    hidden,
    load_manifest,
)
from synsetforge.errors import StoreError
from synsetforge.releases.manifest import Item, iter_items
from synsetforge.releases.release import create_release, get_release
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.web.app import create_app


def _manifest(project: Project, name: str) -> list[Item]:
    return list(iter_items(project.blobs, get_release(project, name).manifest_sha256))


def _provenance_rows(page: str) -> list[list[str]]:
    table = page.split('id="provenance"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        rows.append([htmllib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def test_explorer_pages_show_what_the_release_froze(tmp_path: Path, db_url: str) -> None:
    project, _ = build_release_project(tmp_path / "p", db_url)
    with project:
        create_release(project, "v1", split=SplitSpec(val=2, test=3), seed=3)
        frozen = [it for it in _manifest(project, "v1") if it.split != "test"]
        groups = {it.image_id: it.group for it in frozen}
        # afterwards the live tables move on: decisions, confidences, provenance, votes, glosses, duplicates
        b = Builder(project)
        late = b.worker("invite", "late")
        with project.session() as s:
            cands = list(
                s.scalars(select(schema.Candidate.id).where(schema.Candidate.decision == "accepted"))
            )
            s.execute(
                update(schema.Candidate).values(
                    decision="rejected",
                    confidence=0.123,
                    author="Later Larry",
                    license="later-licence",
                    query="a later query",
                    page_url="https://later.example/page",
                )
            )
            s.execute(update(schema.Synset).where(schema.Synset.id == WNIDS[0]).values(gloss="a later gloss"))
            a, other = next(
                (x.image_id, y.image_id)
                for x in frozen
                for y in frozen
                if groups[x.image_id] != groups[y.image_id] and x.image_id < y.image_id
            )
            s.execute(update(schema.Image).where(schema.Image.id == other).values(duplicate_of=a))
        for cid in cands:
            b.vote(cid, late, False)
        with TestClient(create_app(project)) as client:
            for item in frozen:
                page = client.get(f"/explore/v1/image/{item.image_id}")
                assert page.status_code == 200, page.text
                rows = _provenance_rows(page.text)
                row = next(r for r in rows if r[0] == item.synset)
                assert row[1] == f"{item.source} ({item.source_kind})"
                assert row[2] == (item.query or "–")
                assert row[3] == (item.license or "unknown") and row[4] == (item.author or "unknown")
                assert row[5] == f"{item.votes_yes} / {item.votes_no}"
                conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
                assert row[6] == conf
                assert row[7] == (item.page_url or item.url or "–")
                assert len(rows) == sum(1 for it in frozen if it.image_id == item.image_id)
                assert "Later Larry" not in page.text and "0.123" not in page.text
                dups = page.text.split('id="duplicates"', 1)[1].split("</td>", 1)[0]
                shown = {int(x) for x in re.findall(r'href="/explore/v1/image/(\d+)"', dups)}
                assert shown == {
                    it.image_id
                    for it in frozen
                    if groups[it.image_id] == groups[item.image_id] and it.image_id != item.image_id
                }
            # the grid and the image page agree: both say what the release froze
            grid = client.get(f"/explore/v1/synset/{WNIDS[0]}", params={"per_page": 200}).text
            for item in (it for it in frozen if it.synset == WNIDS[0]):
                conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
                cell = grid.split(f'href="/explore/v1/image/{item.image_id}"', 1)[1].split("</li>", 1)[0]
                assert f"{item.split} · {conf}" in cell
            assert "a later gloss" not in grid and "freshwater dace-like game fish" in grid
            hits = client.get("/explore/v1/search", params={"q": "later gloss"}).text
            assert 'id="no-hits"' in hits


def _box_world(root: Path, db_url: str) -> Project:
    """Synsets whose stored images are resized copies (so boxes are rescaled), boxed by the crowd, by a
    synthetic source (kept by a release though not 'good'), or both."""
    project = Project.init(root, db=db_url, name="boxes")
    project.add_synsets(list(WNIDS))
    b = Builder(project)
    src = b.source("synthetic-boxes", "synthetic")
    for si, wnid in enumerate(WNIDS):
        for k in range(8):
            size = (41 + 3 * k, 31 + si)
            img = b.image(size=size, orig_size=(3 * size[0] + 1, 3 * size[1] + 2))
            cid = b.candidate(wnid, img, src)
            if k % 3 != 2:
                b.box(cid, (7 + k, 10 + si, 70 + 2 * k, 50 + si))
            if k % 3 != 0:
                b.box(cid, (5 + k, 4, 40 + k, 44), status="proposed", origin="synthetic")
    return project


def test_challenge_truth_is_the_release_boxes_byte_for_byte(tmp_path: Path, db_url: str) -> None:
    with _box_world(tmp_path / "p", db_url) as project:
        create_release(project, "v1", split=SplitSpec(val=1, test=3), seed=1, phash_distance=-1)
        released = {(it.image_id, it.synset): it for it in _manifest(project, "v1") if it.split == "test"}
        assert all(it.boxes for it in released.values())
        # boxes added after the release must not leak into a challenge made later
        with project.session() as s:
            cands = list(s.execute(select(schema.Candidate.id)).scalars())
        for cid in cands:
            Builder(project).box(cid, (0, 0, 5, 5))
        create_challenge(
            project,
            "loc",
            "v1",
            leaves=True,
            settings=ChallengeSettings(task="localization"),
            seed="fixed",
        )
        info = get_challenge(project, "loc")
        m = load_manifest(project, hidden(project, info.id)["test_manifest"])
        assert len(m["images"]) == len(released) == 12
        for k, image_id in enumerate(m["images"]):
            synset = m["classes"][m["labels"][k]]
            lo, hi = m["box_offsets"][k], m["box_offsets"][k + 1]
            got = [[m["box_labels"][j], *m["boxes"][j]] for j in range(lo, hi)]
            want = [[m["labels"][k], *box] for box in released[(image_id, synset)].boxes]
            assert got == want, (image_id, synset)


def test_a_damaged_manifest_is_a_clear_error(tmp_path: Path) -> None:
    project, _ = build_release_project(tmp_path / "p")
    with project:
        create_release(project, "v1", split=SplitSpec(val=2, test=3), seed=3)
        rel = get_release(project, "v1")
        public = next(it for it in _manifest(project, "v1") if it.split != "test")
        path = project.blobs.local_path(rel.manifest_sha256)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(path.read_bytes().replace(b'"votes_yes":', b'"votes_yes": ', 1))
        with TestClient(create_app(project)) as client:
            page = client.get(f"/explore/v1/image/{public.image_id}")
            assert page.status_code == 503 and "corrupted" in page.text
            assert "Ann Example" not in page.text
        with pytest.raises(StoreError, match="corrupted"):
            create_challenge(project, "c", "v1", leaves=True, seed="x")
        path.unlink()
        with pytest.raises(StoreError, match="missing"):
            create_challenge(project, "c", "v1", leaves=True, seed="x")
