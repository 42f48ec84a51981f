"""Collection into the store: provenance, exact and near duplicates, rejects, reruns, retries, engines."""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import func, select

from _servers import LoopbackServer
from synsetforge.candidates.collect import CollectOptions, collect, worker_fetch_policy
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.sources.folder import FolderSource
from synsetforge.candidates.sources.urls import UrlListSource
from synsetforge.candidates.stats import candidate_stats
from synsetforge.candidates.types import CandidateRef
from synsetforge.errors import InputError
from synsetforge.store import Project, schema
from synsetforge.store.hashes import phash_from_db

TRIANGLE, CIRCLE, SQUARE = "n13879320", "n13873502", "n13878634"


def jpeg(seed: int, size: tuple[int, int] = (160, 120), quality: int = 92) -> bytes:
    """A distinct image per seed: smooth random blobs, so perceptual hashes differ between seeds."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def reencode(data: bytes, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_tree(root: Path) -> dict[str, int]:
    """wnid folders with: 3 good images each, one image in two synsets, a same-synset copy, a near-duplicate,
    a truncated JPEG, a tiny image and a text file posing as a JPEG."""
    for sid in (TRIANGLE, CIRCLE, SQUARE):
        (root / sid).mkdir(parents=True)
    for i, sid in enumerate((TRIANGLE, CIRCLE, SQUARE)):
        for k in range(3):
            (root / sid / f"img{k}.jpg").write_bytes(jpeg(10 * i + k))
    shared = jpeg(999)
    (root / TRIANGLE / "shared.jpg").write_bytes(shared)
    (root / CIRCLE / "shared.jpg").write_bytes(shared)  # one image, two candidate rows
    (root / TRIANGLE / "copy.jpg").write_bytes(jpeg(0))  # exact copy of triangle/img0 -> duplicate
    (root / SQUARE / "near.jpg").write_bytes(reencode(jpeg(20), 60))  # near-duplicate of square/img0
    (root / SQUARE / "truncated.jpg").write_bytes(jpeg(77)[:400])
    (root / CIRCLE / "tiny.jpg").write_bytes(jpeg(78, size=(20, 20)))
    (root / CIRCLE / "page.jpg").write_bytes(b"<html><body>not an image</body></html>")
    return {"files": 9 + 2 + 1 + 1 + 1 + 1 + 1}


@pytest.fixture
def shapes_project(tmp_path: Path, db_url: str) -> Project:
    p = Project.init(tmp_path / "proj", db=db_url)
    p.add_synsets([TRIANGLE, CIRCLE, SQUARE])
    return p


def options(**kw: object) -> CollectOptions:
    base: dict[str, object] = {
        "engine": "thread",
        "workers": 2,
        "image_policy": ImagePolicy(resize="longer", size=128, min_side=32),
        "batch_size": 4,
    }
    base.update(kw)
    return CollectOptions(**base)  # type: ignore[arg-type]


def folder_options(root: Path, **kw: object) -> CollectOptions:
    return options(fetch_policy=FetchPolicy(allow_files=True, file_roots=(root.resolve(),)), **kw)


def statuses(p: Project) -> Counter[str]:
    with p.session() as s:
        return Counter(
            dict(
                s.execute(
                    select(schema.Candidate.status, func.count()).group_by(schema.Candidate.status)
                ).all()
            )
        )


def test_folder_collection_dedups_and_rejects_with_reasons(tmp_path: Path, shapes_project: Project) -> None:
    p = shapes_project
    root = tmp_path / "images"
    expected = make_tree(root)
    summary = collect(p, FolderSource(root), [TRIANGLE, CIRCLE, SQUARE], folder_options(root), kind="folder")
    assert summary.registered == expected["files"]
    st = statuses(p)
    # 9 distinct + shared under two synsets = 11 stored; copy and near -> 2 duplicates; 3 rejects
    assert st == {"stored": 11, "duplicate": 2, "rejected": 3}
    with p.session() as s:
        c, im = schema.Candidate, schema.Image
        reasons = dict(s.execute(select(c.key, c.reject_reason).where(c.status == "rejected")).all())
        assert sorted(reasons.values()) == sorted(["truncated", "too_small", "not_image"])
        # the shared image is stored once and linked from two synsets
        shared = s.execute(select(c.synset_id, c.image_id).where(c.key.like("%shared.jpg"))).all()
        assert {sid for sid, _ in shared} == {TRIANGLE, CIRCLE}
        assert len({iid for _, iid in shared}) == 1
        # of two identical files one is stored and the other is a duplicate pointing at the same image
        pair = s.scalars(select(c).where(c.key.like("%copy.jpg") | c.key.like(f"%{TRIANGLE}/img0.jpg"))).all()
        assert sorted(x.status for x in pair) == ["duplicate", "stored"]
        assert pair[0].image_id == pair[1].image_id
        # a near duplicate (re-encoded at quality 60) links to the original and keeps its own provenance row
        near_pair = s.scalars(
            select(c).where(c.key.like("%near.jpg") | c.key.like(f"%{SQUARE}/img0.jpg"))
        ).all()
        assert sorted(x.status for x in near_pair) == ["duplicate", "stored"]
        assert near_pair[0].image_id == near_pair[1].image_id
        near_row = s.scalars(select(im).where(im.duplicate_of == near_pair[0].image_id)).one()
        assert near_row.blob is None and 0 <= (near_row.duplicate_distance or 0) <= 4
        # every stored image has its blob, normalized to the policy, with provenance on the candidate
        for img in s.scalars(select(im).where(im.blob.is_not(None))):
            data = p.blobs.get(img.blob)  # type: ignore[arg-type]
            assert max(Image.open(io.BytesIO(data)).size) == 128 == max(img.width or 0, img.height or 0)
            assert phash_from_db(img.phash) is not None
        assert s.scalar(select(func.count()).select_from(im).where(im.blob.is_not(None))) == 10
        # workers file blobs before deduplication: the near duplicate's file must be gone again, so the
        # folder holds exactly the stored images' blobs (never a duplicate twice)
        assert sorted(p.blobs.keys()) == sorted(s.scalars(select(im.blob).where(im.blob.is_not(None))))
        assert all(r.domain == "file" for r in s.scalars(select(c)))
    counts = summary.totals()
    assert counts["stored"] == 11 and counts["duplicate"] == 2 and counts["rejected:truncated"] == 1


def test_rerun_is_a_no_op(tmp_path: Path, shapes_project: Project) -> None:
    p = shapes_project
    root = tmp_path / "images"
    make_tree(root)
    collect(p, FolderSource(root), [TRIANGLE, CIRCLE, SQUARE], folder_options(root), kind="folder")
    before = statuses(p)
    blobs_before = sorted(p.blobs.keys())
    again = collect(p, FolderSource(root), [TRIANGLE, CIRCLE, SQUARE], folder_options(root), kind="folder")
    assert again.processed == 0
    assert statuses(p) == before
    assert sorted(p.blobs.keys()) == blobs_before


def test_engines_agree(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_tree(root)
    results = []
    for engine in ("inline", "thread", "process"):
        p = Project.init(tmp_path / engine)
        p.add_synsets([TRIANGLE, CIRCLE, SQUARE])
        collect(
            p,
            FolderSource(root),
            [TRIANGLE, CIRCLE, SQUARE],
            folder_options(root, engine=engine),
            kind="folder",
        )
        with p.session() as s:
            rows = sorted(s.execute(select(schema.Candidate.key, schema.Candidate.status)).all())
            blobs = sorted(s.scalars(select(schema.Image.blob).where(schema.Image.blob.is_not(None))))
        assert sorted(p.blobs.keys()) == blobs  # workers' files: no near duplicate left behind
        results.append((rows, blobs))
        p.close()
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("in_workers", [False, True], ids=["fetch-in-main", "fetch-in-workers"])
def test_urls_transient_failures_are_retried_only_with_retry_failed(
    tmp_path: Path, db_url: str, in_workers: bool
) -> None:
    images = {f"/img/{i}.jpg": jpeg(100 + i) for i in range(6)}
    state = {"flaky_ok": False, "hits": Counter[str]()}

    async def handler(request: web.Request) -> web.Response:
        state["hits"][request.path] += 1  # type: ignore[index]
        if request.path == "/img/flaky.jpg":
            if not state["flaky_ok"]:
                return web.Response(status=503, headers={"Retry-After": "0"})
            return web.Response(body=jpeg(555), content_type="image/jpeg")
        if request.path == "/img/missing.jpg":
            return web.Response(status=404)
        return web.Response(body=images[request.path], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", handler)
    p = Project.init(tmp_path / "p", db=db_url)
    p.add_synsets([TRIANGLE])
    with LoopbackServer(app) as server:
        lst = tmp_path / "urls.csv"
        rows = [f"{server.url}{path},{TRIANGLE},CC-BY-4.0,alice" for path in images]
        rows += [f"{server.url}/img/flaky.jpg,{TRIANGLE},,", f"{server.url}/img/missing.jpg,{TRIANGLE},,"]
        lst.write_text("url,synset,license,author\n" + "\n".join(rows) + "\n")
        fetch = FetchPolicy(allow_private=True, max_retries=0, per_domain_rate=0)
        first = collect(
            p,
            UrlListSource(lst),
            [TRIANGLE],
            options(fetch_policy=fetch, fetch_in_workers=in_workers),
            kind="urls",
        )
        assert statuses(p) == {"stored": 6, "failed": 2}
        totals = first.totals()
        assert totals["fetched"] == 6 and totals["failed:http_503"] == 1 and totals["failed:http_404"] == 1
        with p.session() as s:
            c = schema.Candidate
            failed = dict(s.execute(select(c.url, c.transient).where(c.status == "failed")).all())
            assert failed == {f"{server.url}/img/flaky.jpg": True, f"{server.url}/img/missing.jpg": False}
            lic = s.scalars(select(c.license).where(c.status == "stored")).all()
            assert set(lic) == {"CC-BY-4.0"}
            assert set(s.scalars(select(c.domain))) == {"127.0.0.1"}
        hits_before = Counter(state["hits"])  # type: ignore[arg-type]
        state["flaky_ok"] = True
        summary = collect(
            p,
            UrlListSource(lst),
            [TRIANGLE],
            options(fetch_policy=fetch, retry_failed=True, fetch_in_workers=in_workers),
            kind="urls",
        )
        assert summary.registered == 0 and summary.processed == 1
        hits = Counter(state["hits"]) - hits_before  # type: ignore[arg-type]
        assert hits == {"/img/flaky.jpg": 1}  # nothing else was fetched again, not even the 404
        assert statuses(p) == {"stored": 7, "failed": 1}
    st = candidate_stats(p)
    assert st.by_domain["127.0.0.1"].statuses["stored"] == 7
    assert st.by_source["urls"].success_rate == pytest.approx(7 / 8)


def test_fetching_in_worker_processes_gives_the_same_store(tmp_path: Path) -> None:
    images = {f"/img/{i}.jpg": jpeg(300 + i) for i in range(40)}
    images["/img/again.jpg"] = images["/img/3.jpg"]  # an exact duplicate under another URL
    images["/img/near.jpg"] = reencode(images["/img/5.jpg"], 60)  # a near duplicate

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/img/gone.jpg":
            return web.Response(status=404)
        return web.Response(body=images[request.path], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", handler)
    stores = []
    with LoopbackServer(app) as server:
        lst = tmp_path / "urls.csv"
        lines = [f"{server.url}{path},{TRIANGLE}" for path in [*images, "/img/gone.jpg"]]
        lst.write_text("url,synset\n" + "\n".join(lines) + "\n")
        for in_workers in (False, True):
            p = Project.init(tmp_path / f"p{int(in_workers)}")
            p.add_synsets([TRIANGLE])
            opts = options(
                engine="process",
                fetch_policy=FetchPolicy(allow_private=True, per_domain_rate=0, max_retries=0),
                fetch_in_workers=in_workers,
            )
            summary = collect(p, UrlListSource(lst), [TRIANGLE], opts, kind="urls")
            assert summary.totals()["fetched"] == len(images)
            with p.session() as s:
                c = schema.Candidate
                rows = sorted(s.execute(select(c.url, c.status, c.reject_reason)).all())
                blobs = sorted(s.scalars(select(schema.Image.blob).where(schema.Image.blob.is_not(None))))
            assert sorted(p.blobs.keys()) == blobs  # the near duplicate's file was removed again
            stores.append((rows, blobs))
            p.close()
    assert stores[0] == stores[1]
    assert Counter(status for _, status, _ in stores[0][0]) == {"stored": 40, "duplicate": 2, "failed": 1}


def test_each_downloading_worker_gets_its_share_of_the_limits() -> None:
    policy = FetchPolicy(max_in_flight=64, per_domain_concurrency=8, per_domain_rate=10.0, per_domain_burst=5)
    share = worker_fetch_policy(policy, 4)
    assert (share.max_in_flight, share.per_domain_concurrency, share.per_domain_burst) == (16, 2, 1)
    assert share.per_domain_rate == pytest.approx(2.5)
    assert worker_fetch_policy(policy, 100).per_domain_concurrency == 1  # never zero


def test_unknown_synsets_are_refused(tmp_path: Path) -> None:
    p = Project.init(tmp_path / "p")
    root = tmp_path / "images"
    make_tree(root)
    with pytest.raises(InputError, match="not in the project"):
        collect(p, FolderSource(root), [TRIANGLE], folder_options(root), kind="folder")


def test_bad_options() -> None:
    with pytest.raises(InputError):
        CollectOptions(engine="gpu")
    with pytest.raises(InputError):
        CollectOptions(near_distance=40)


@pytest.mark.slow
def test_ray_engine_on_a_local_instance(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_tree(root)
    p = Project.init(tmp_path / "ray")
    p.add_synsets([TRIANGLE, CIRCLE, SQUARE])
    collect(
        p,
        FolderSource(root),
        [TRIANGLE, CIRCLE, SQUARE],
        folder_options(root, engine="ray", workers=1),
        kind="folder",
    )
    assert statuses(p) == {"stored": 11, "duplicate": 2, "rejected": 3}


class Shuffled:
    """A source that yields a fixed list of refs (in the order given)."""

    name = "folder"

    def __init__(self, refs: list[CandidateRef]) -> None:
        self._refs = refs

    def refs(self, *_a: object, **_k: object) -> Iterator[CandidateRef]:
        return iter(self._refs)


def test_random_order_of_results_gives_the_same_store(tmp_path: Path) -> None:
    """Dedup decisions do not depend on which worker finishes first: shuffled inputs, same outcome counts."""
    root = tmp_path / "images"
    make_tree(root)
    outcomes = []
    for seed in (1, 2):
        p = Project.init(tmp_path / f"r{seed}")
        p.add_synsets([TRIANGLE, CIRCLE, SQUARE])
        refs = list(FolderSource(root).refs([TRIANGLE, CIRCLE, SQUARE]))
        random.Random(seed).shuffle(refs)

        collect(p, Shuffled(refs), [TRIANGLE, CIRCLE, SQUARE], folder_options(root), kind="folder")
        outcomes.append(statuses(p))
        p.close()
    assert outcomes[0] == outcomes[1]
