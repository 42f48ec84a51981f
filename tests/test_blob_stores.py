"""Blob stores: one contract for the local folder store and fsspec stores (``memory://``, ``file://``), the
factory and its errors, and whole projects -- collect, release, export, serve -- whose blobs live under an
fsspec URL."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fsspec.registry import known_implementations
from sqlalchemy import select, update
from typer.testing import CliRunner

from synsetforge.candidates.collect import CollectOptions, collect
from synsetforge.candidates.process import ImagePolicy
from synsetforge.candidates.sources.synthetic import SyntheticSource
from synsetforge.cli import app
from synsetforge.errors import NotFoundError, StoreError
from synsetforge.releases import create_release, export_release
from synsetforge.releases.manifest import iter_items
from synsetforge.releases.splits import SplitSpec
from synsetforge.store import Project, schema
from synsetforge.store.blobs import BlobStorage, BlobStore, FsspecBlobStore, open_blob_store
from synsetforge.web.app import create_app

SQUARE = "n13878634"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def memory_url() -> str:
    return f"memory://sf-test-{uuid.uuid4().hex[:12]}"


def drop_memory(url: str) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(params=["local", "memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStorage]:
    if request.param == "local":
        yield BlobStore(tmp_path / "blobs")
    elif request.param == "memory":
        url = memory_url()
        yield FsspecBlobStore(url)
        drop_memory(url)
    else:
        yield FsspecBlobStore((tmp_path / "blobs").as_uri())


def raw_files(store: BlobStorage) -> list[str]:
    """Every file under the store's root, relative to it (temporary files included)."""
    if isinstance(store, BlobStore):
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, FsspecBlobStore)
    fs, root = fsspec.core.url_to_fs(store.url)
    root = root.rstrip("/")
    return sorted(str(p)[len(root) + 1 :] for p in fs.find(root))


def overwrite(store: BlobStorage, key: str, data: bytes) -> None:
    """Change a stored blob behind the store's back (disk corruption)."""
    if isinstance(store, BlobStore):
        store.path(key).write_bytes(data)
    else:
        assert isinstance(store, FsspecBlobStore)
        store.fs.pipe_file(store.fs_path(key), data)


# --- the contract ------------------------------------------------------------------------------------


def test_put_get_exists_keys(store: BlobStorage) -> None:
    store.prepare()
    datas = [b"first", b"second blob", bytes(range(256)) * 40]
    keys = [store.put(d) for d in datas]
    assert keys == [sha(d) for d in datas]
    for key, data in zip(keys, datas, strict=True):
        assert store.exists(key)
        assert store.get(key) == data
        assert store.size(key) == len(data)
        assert store.verify(key)
        with store.open(key) as f:
            assert f.read(3) == data[:3]
            assert f.seek(0, io.SEEK_END) == len(data)
            f.seek(0)
            assert f.read() == data
    assert sorted(store.keys()) == sorted(keys)
    # the content-addressed layout: ab/cd/<sha256> under the root, nothing else left behind
    assert raw_files(store) == sorted(f"{k[:2]}/{k[2:4]}/{k}" for k in keys)


def test_put_is_idempotent_and_write_once(store: BlobStorage) -> None:
    key = store.put(b"same bytes")
    assert store.put(b"same bytes") == key
    assert list(store.keys()) == [key]
    assert raw_files(store) == [f"{key[:2]}/{key[2:4]}/{key}"]
    # an existing blob is never rewritten: a rerun skips it (verify is what finds damage)
    overwrite(store, key, b"damaged")
    assert store.put(b"same bytes") == key
    assert store.get(key) == b"damaged"


def test_missing_blob_is_a_clear_not_found_error(store: BlobStorage) -> None:
    key = sha(b"never stored")
    assert not store.exists(key)
    for call in (store.get, store.open, store.size, store.verify):
        with pytest.raises(NotFoundError, match=f"blob {key} is not in"):
            call(key)
    store.delete(key)  # deleting what is not there is fine
    assert list(store.keys()) == []


def test_verify_detects_a_corrupted_blob(store: BlobStorage) -> None:
    good, bad = store.put(b"kept intact"), store.put(b"will be damaged")
    overwrite(store, bad, b"will be damagee")
    assert store.verify(good)
    assert not store.verify(bad)


@pytest.mark.parametrize(
    "key",
    ["", "abc", "../../etc/passwd", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "ab/cd/" + "a" * 58],
)
def test_bad_keys_are_rejected(store: BlobStorage, key: str) -> None:
    for call in (store.get, store.exists, store.open, store.size, store.verify, store.local_path):
        with pytest.raises(NotFoundError, match="not a blob key"):
            call(key)


def test_delete(store: BlobStorage) -> None:
    keep, gone = store.put(b"keep"), store.put(b"gone")
    store.delete(gone)
    assert not store.exists(gone) and store.exists(keep)
    assert list(store.keys()) == [keep]


def test_writer_streams_a_blob_and_stores_nothing_on_error(store: BlobStorage) -> None:
    parts = [b"header\n", b"x" * 300_000, b"tail\n"]
    with store.writer() as w:
        for part in parts:
            w.write(part)
    assert w.key == sha(b"".join(parts)) and w.size == sum(map(len, parts))
    assert store.get(w.key) == b"".join(parts)
    with store.writer() as again:  # the same bytes again: same key, still one blob
        again.write(b"".join(parts))
    assert again.key == w.key
    with pytest.raises(RuntimeError), store.writer() as broken:
        broken.write(b"half a manifest")
        raise RuntimeError("crash")
    assert not store.exists(sha(b"half a manifest"))
    assert list(store.keys()) == [w.key]
    assert raw_files(store) == [f"{w.key[:2]}/{w.key[2:4]}/{w.key}"]  # no temporary file left


def test_local_path_only_for_local_stores(store: BlobStorage) -> None:
    key = store.put(b"on disk?")
    path = store.local_path(key)
    if isinstance(store, FsspecBlobStore) and store.url.startswith("memory://"):
        assert path is None
    else:
        assert path is not None and path.read_bytes() == b"on disk?"


def test_a_store_pickles_to_the_same_blobs(store: BlobStorage) -> None:
    key = store.put(b"to a worker")
    copy = pickle.loads(pickle.dumps(store))
    assert type(copy) is type(store) and copy.location == store.location
    assert copy.get(key) == b"to a worker"
    other = copy.put(b"from a worker")
    assert store.get(other) == b"from a worker"


# --- the factory and its errors ----------------------------------------------------------------------


def test_folder_and_file_url_are_the_same_store(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    local = BlobStore(folder)
    url = FsspecBlobStore(folder.as_uri())
    a, b = local.put(b"written locally"), url.put(b"written through fsspec")
    assert url.get(a) == b"written locally" and local.get(b) == b"written through fsspec"
    assert sorted(local.keys()) == sorted(url.keys()) == sorted([a, b])
    assert url.local_path(a) == local.path(a)


def test_open_blob_store_picks_the_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = open_blob_store("blobs", tmp_path)
    assert isinstance(rel, BlobStore) and rel.root == tmp_path / "blobs" and rel.location == str(rel.root)
    absolute = open_blob_store(str(tmp_path / "elsewhere"), Path("/nonexistent"))
    assert isinstance(absolute, BlobStore) and absolute.root == tmp_path / "elsewhere"
    monkeypatch.setenv("HOME", str(tmp_path))
    home = open_blob_store("~/b", Path("/nonexistent"))
    assert isinstance(home, BlobStore) and home.root == tmp_path / "b"
    url = memory_url()
    mem = open_blob_store(url, tmp_path)
    assert isinstance(mem, FsspecBlobStore) and mem.location == url
    f = open_blob_store((tmp_path / "f").as_uri(), tmp_path)
    assert isinstance(f, FsspecBlobStore)
    key = f.put(b"x")
    assert f.local_path(key) == tmp_path / "f" / key[:2] / key[2:4] / key


def test_unknown_protocol_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown blob store protocol 'nosuchproto'"):
        open_blob_store("nosuchproto://bucket/prefix", tmp_path)
    with pytest.raises(StoreError, match="empty"):
        open_blob_store("  ", tmp_path)


def test_missing_driver_names_the_package(tmp_path: Path) -> None:
    known_implementations["sfmissing"] = {
        "class": "sf_missing_driver_pkg.MissingFileSystem",
        "err": "Install sf_missing_driver_pkg to access sfmissing",
    }
    try:
        with pytest.raises(StoreError, match=r"needs the sf_missing_driver_pkg package.*pip install"):
            open_blob_store("sfmissing://bucket/prefix", tmp_path)
    finally:
        del known_implementations["sfmissing"]


def test_passwords_stay_out_of_the_location() -> None:
    store = FsspecBlobStore("memory://host/x")
    assert store.location == "memory://host/x"
    from synsetforge.store.blobs import _redact_url

    assert _redact_url("ftp://ann:secret@host:21/blobs") == "ftp://ann:***@host:21/blobs"


# --- projects on fsspec stores ------------------------------------------------------------------------


def accept_stored(project: Project, *, boxes: bool = False) -> int:
    """Stand in for the crowd: accept every stored candidate (and draw a good box on each)."""
    c = schema.Candidate
    with project.session() as s:
        n = s.execute(
            update(c).where(c.status == "stored").values(decision="accepted", confidence=0.9)
        ).rowcount
        if boxes:
            for cid in s.scalars(select(c.id).where(c.status == "stored")):
                s.add(
                    schema.BoxRow(candidate_id=cid, x1=2, y1=3, x2=20, y2=25, status="good", origin="crowd")
                )
    return int(n)


def blob_of(project: Project, image_id: int) -> str:
    with project.session() as s:
        key = s.scalar(select(schema.Image.blob).where(schema.Image.id == image_id))
    assert key is not None
    return str(key)


def test_project_init_stores_the_url_and_refuses_a_bad_one(tmp_path: Path) -> None:
    url = memory_url()
    try:
        with Project.init(tmp_path / "p", blobs=url) as p:
            assert isinstance(p.blobs, FsspecBlobStore) and p.blobs.location == url
            key = p.blobs.put(b"kept in memory")
        assert not (tmp_path / "p" / "blobs").exists()
        assert f'blobs = "{url}"' in (tmp_path / "p" / "synsetforge.toml").read_text()
        with Project.open(tmp_path / "p") as p:
            assert p.config.blobs == url and p.blobs.get(key) == b"kept in memory"
    finally:
        drop_memory(url)
    with pytest.raises(StoreError, match="unknown blob store protocol"):
        Project.init(tmp_path / "q", blobs="nosuchproto://x")
    assert not (tmp_path / "q").exists()  # refused before anything was written
    with Project.init(tmp_path / "r", blobs="../shared-blobs") as p:
        assert isinstance(p.blobs, BlobStore)  # relative to the project folder, not to the cwd
        assert p.blobs.root.resolve() == (tmp_path / "shared-blobs").resolve() and p.blobs.root.is_dir()


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_pipeline_on_a_memory_store(tmp_path: Path) -> None:
    """init --blobs memory://, collect (threads: memory:// is per process), release, export, serve."""
    url = memory_url()
    root = tmp_path / "proj"
    try:
        out = cli("init", str(root), "--blobs", url)
        assert f"blobs     {url}" in out
        assert f"blobs {url}" in cli("info", "-p", str(root))
        cli("synsets", "add", SQUARE, "-p", str(root))
        cli(
            "collect", "--source", "synthetic", "--synsets", SQUARE, "--per-synset", "20",
            "--engine", "thread", "-p", str(root),
        )  # fmt: skip
        assert not (root / "blobs").exists()  # nothing was written to a local folder
        with Project.open(root) as p:
            stored = set(p.blobs.keys())
            assert accept_stored(p, boxes=True) == len(stored) > 10
        cli("release", "create", "v1", "--val", "3", "--test", "3", "-p", str(root))
        for fmt in ("imagefolder", "webdataset", "ilsvrc", "parquet", "coco", "voc"):
            cli("release", "export", "v1", "--format", fmt, "--out", str(tmp_path / fmt), "-p", str(root))
        with Project.open(root) as p:
            rel = p.blobs
            assert isinstance(rel, FsspecBlobStore)
            release = create_release(p, "v2", split=SplitSpec(val=3, test=3))  # same content, new name
            items = list(iter_items(p.blobs, release.manifest_sha256))
            assert {it.blob for it in items} == stored and len(items) == len(stored)
            assert release.manifest_sha256 in set(p.blobs.keys())  # the manifest is a blob too
            # ImageFolder: every item's bytes, byte for byte
            for it in items:
                path = tmp_path / "imagefolder" / it.split / it.synset / f"{it.synset}_{it.image_id}.jpg"
                assert sha(path.read_bytes()) == it.blob
            # WebDataset: the shards hold the same images
            shards = sorted((tmp_path / "webdataset").glob("*.tar"))
            in_tars = set()
            for shard in shards:
                with tarfile.open(shard) as tar:
                    for m in tar.getmembers():
                        if m.name.endswith(".jpg"):
                            f = tar.extractfile(m)
                            assert f is not None
                            in_tars.add(sha(f.read()))
            assert in_tars == stored
            # ILSVRC: the train archive's class tar holds the train images
            with tarfile.open(tmp_path / "ilsvrc" / "ILSVRC2012_img_train.tar") as outer:
                inner_file = outer.extractfile(f"{SQUARE}.tar")
                assert inner_file is not None
                with tarfile.open(fileobj=io.BytesIO(inner_file.read())) as inner:
                    train = {sha(inner.extractfile(m).read()) for m in inner.getmembers()}  # type: ignore[union-attr]
            assert train == {it.blob for it in items if it.split == "train"}
            # Parquet, COCO and VOC: the images they carry
            table = pq.read_table(tmp_path / "parquet" / "train.parquet", columns=["image", "blob_sha256"])
            for data, key in zip(table["image"].to_pylist(), table["blob_sha256"].to_pylist(), strict=True):
                assert sha(data) == key
            assert table.num_rows == sum(1 for it in items if it.split == "train")
            coco = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
            for entry in coco["images"]:
                assert sha((tmp_path / "coco" / "train" / entry["file_name"]).read_bytes()) in stored
            assert len(coco["images"]) == table.num_rows
            voc = sorted((tmp_path / "voc" / "JPEGImages").glob("*.jpg"))
            assert {sha(f.read_bytes()) for f in voc} == stored
            assert "<depth>3</depth>" in (tmp_path / "voc" / "Annotations" / f"{voc[0].stem}.xml").read_text()
            # the explorer serves an image from the fsspec store
            public = next(it for it in items if it.split != "test")
            with TestClient(create_app(p)) as client:
                r = client.get(f"/explore/v2/blob/{public.image_id}")
            assert r.status_code == 200 and sha(r.content) == blob_of(p, public.image_id)
            # a blob gone from the store: the export names the image and the store
            p.blobs.delete(public.blob)
            with pytest.raises(StoreError, match=f"missing from the blob store {url}"):
                export_release(p, "v2", "imagefolder", tmp_path / "broken")
    finally:
        drop_memory(url)


def test_process_engine_pipeline_on_a_file_url(tmp_path: Path) -> None:
    """A file:// store with the process engine and the Python API: collect, release, export."""
    blobs = tmp_path / "remote-blobs"
    url = blobs.as_uri()
    with Project.init(tmp_path / "proj", blobs=url) as p:
        assert isinstance(p.blobs, FsspecBlobStore)
        p.add_synsets([SQUARE])
        options = CollectOptions(
            per_synset=20, engine="process", workers=2, image_policy=ImagePolicy(resize="longer", size=96)
        )
        summary = collect(p, SyntheticSource(seed=3, precision=0.5), [SQUARE], options, kind="synthetic")
        assert summary.processed == 20
        stored = set(p.blobs.keys())
        assert stored and all(p.blobs.verify(k) for k in stored)
        assert {f.name for f in blobs.rglob("*") if f.is_file()} == stored
        assert not (tmp_path / "proj" / "blobs").exists()
        assert accept_stored(p) == len(stored)
        release = create_release(p, "v1", split=SplitSpec(val=2, test=2))
        assert (blobs / release.manifest_sha256[:2] / release.manifest_sha256[2:4]).is_dir()
        export_release(p, "v1", "imagefolder", tmp_path / "folder")
        exported = {sha(f.read_bytes()) for f in (tmp_path / "folder").rglob("*.jpg")}
        assert exported == stored
        # a rerun continues where the first run stopped: nothing new, nothing rewritten
        again = collect(p, SyntheticSource(seed=3, precision=0.5), [SQUARE], options, kind="synthetic")
        assert again.processed == 0 and set(p.blobs.keys()) == stored | {release.manifest_sha256}
