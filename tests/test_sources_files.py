"""URL-list and folder sources: every format, malformed rows with line numbers, symlinks escaping the root."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synsetforge.candidates.download import fetch_all
from synsetforge.candidates.netpolicy import FetchPolicy
from synsetforge.candidates.sources.folder import FolderSource
from synsetforge.candidates.sources.urls import UrlListSource, read_url_list
from synsetforge.errors import InputError, NotFoundError

DOG, CAT, BIRD = "n02084071", "n02121620", "n01503061"


def where(src: UrlListSource | FolderSource) -> dict[str, str]:
    """problem location -> reason."""
    return {p.where: p.reason for p in src.report.problems}


# --- URL lists ----------------------------------------------------------------------------------------
def test_csv_with_malformed_rows(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    lines = [
        b"url,synset,caption,license,author",
        b"https://a.example/1.jpg,n02084071,a dog,CC BY 2.0,Ann",  # line 2
        b",n02084071,no url,,",  # 3
        b"https://a.example/2.jpg,n123,bad synset,,",  # 4
        b"https://a.example/3.jpg,n02121620,caf\xe9 latin-1,,",  # 5: not UTF-8
        b"not a url,n02121620,,,",  # 6
        b"",  # 7: blank, ignored
        b'https://a.example/4.jpg,n02121620,"two-line\ncaption",by-sa 4.0,Bo',  # 8-9
        b"https://a.example/5.jpg,,no synset and no default,,",  # 10
        b"ftp://a.example/6.jpg,n02084071,,,",  # 11
        b"https://a.example/7.jpg,n02084071,,,",  # 12
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    src = UrlListSource(path)
    refs = list(src.refs())
    assert [r.url for r in refs] == [
        "https://a.example/1.jpg",
        "https://a.example/4.jpg",
        "https://a.example/7.jpg",
    ]
    assert refs[0].synset_id == DOG and refs[0].caption == "a dog" and refs[0].author == "Ann"
    assert refs[0].license == "CC-BY-2.0" and refs[0].extra["license_raw"] == "CC BY 2.0"
    assert refs[1].caption == "two-line\ncaption" and refs[1].license == "CC-BY-SA-4.0"
    assert refs[0].extra["line"] == 2 and refs[2].extra["line"] == 12
    assert where(src) == {
        "list.csv:3": "missing_url",
        "list.csv:4": "bad_synset",
        "list.csv:5": "not_utf8",
        "list.csv:6": "bad_url",
        "list.csv:10": "missing_synset",
        "list.csv:11": "bad_url",
    }
    assert src.report.yielded == 3 and src.report.total_skipped == 6
    # keys are stable across reads and depend on synset and URL
    again = list(UrlListSource(path).refs())
    assert [r.key for r in again] == [r.key for r in refs]
    assert len({r.key for r in refs}) == 3 and refs[0].key.startswith(f"{DOG}/")


def test_tsv_img2dataset_columns_and_default_synset(tmp_path: Path) -> None:
    path = tmp_path / "laion.tsv"
    path.write_text(
        "URL\tTEXT\tNSFW\nhttps://x.example/a.jpg\ta dog\tUNLIKELY\nhttps://x.example/b.jpg\t\tNSFW\n"
    )
    auto = UrlListSource(path, default_synset=DOG, extra_cols=["NSFW"])
    refs = list(auto.refs())
    assert [(r.url, r.caption, r.synset_id) for r in refs] == [
        ("https://x.example/a.jpg", "a dog", DOG),
        ("https://x.example/b.jpg", None, DOG),
    ]
    assert refs[0].extra["NSFW"] == "UNLIKELY"
    given = UrlListSource(path, url_col="URL", caption_col="TEXT", default_synset=DOG)
    assert [r.caption for r in given.refs()] == ["a dog", None]
    with pytest.raises(InputError, match="no url column 'image'"):
        UrlListSource(path, url_col="image", default_synset=DOG)
    with pytest.raises(InputError, match="not a valid synset id"):
        UrlListSource(path, default_synset="n0208")


def test_parquet_in_batches_with_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "list.parquet"
    n = 20_000
    urls = [f"https://p.example/{i}.jpg" for i in range(n)]
    urls[5] = None  # type: ignore[call-overload]
    synsets = [DOG if i % 2 else CAT for i in range(n)]
    synsets[7] = "dog food"
    table = pa.table(
        {"url": urls, "synset": synsets, "caption": [f"c{i}" for i in range(n)], "other": list(range(n))}
    )
    pq.write_table(table, path, row_group_size=5000)
    src = UrlListSource(path)
    refs = list(src.refs())
    assert len(refs) == n - 2
    assert where(src) == {"list.parquet:6": "missing_url", "list.parquet:8": "bad_synset"}
    assert refs[-1].url == f"https://p.example/{n - 1}.jpg" and refs[-1].extra["line"] == n
    # a cap per synset with a synset filter stops reading once every wanted synset is full
    capped = UrlListSource(path)
    got = list(capped.refs([DOG], per_synset=3))
    assert [r.url for r in got] == [f"https://p.example/{i}.jpg" for i in (1, 3, 9)]


def test_jsonl_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    lines = [
        json.dumps({"image_url": "https://j.example/1.jpg", "TEXT": "one", "wnid": DOG}).encode(),
        b'{"image_url": "https://j.example/2.jpg", "TEXT": ',  # 2: broken JSON
        b"[1, 2, 3]",  # 3: not an object
        b'{"image_url": "https://j.example/3.jpg", "TEXT": "caf\xe9", "wnid": "n02084071"}',  # 4: latin-1
        b"",  # 5
        json.dumps({"TEXT": "no url", "wnid": DOG}).encode(),  # 6
        json.dumps({"image_url": "https://j.example/4.jpg", "wnid": CAT, "license": "cc0"}).encode(),  # 7
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    src = UrlListSource(path)
    refs = list(src.refs())
    assert [(r.url, r.synset_id) for r in refs] == [
        ("https://j.example/1.jpg", DOG),
        ("https://j.example/4.jpg", CAT),
    ]
    assert refs[0].caption == "one" and refs[1].license == "CC0-1.0"
    assert where(src) == {
        "list.jsonl:2": "bad_json",
        "list.jsonl:3": "bad_json",
        "list.jsonl:4": "not_utf8",
        "list.jsonl:6": "missing_url",
    }


def test_txt_and_gzip_and_synset_filters(tmp_path: Path) -> None:
    txt = tmp_path / "urls.txt"
    txt.write_text("# comment\nhttps://t.example/1.jpg\n\nhttps://t.example/2.jpg\nbogus\n")
    refs, report = read_url_list(txt, default_synset=BIRD)
    assert [r.url for r in refs] == ["https://t.example/1.jpg", "https://t.example/2.jpg"]
    assert report.skipped == {"bad_url": 1}

    gz = tmp_path / "list.csv.gz"
    rows = "url,synset\n" + "".join(f"https://g.example/{i}.jpg,{DOG if i % 3 else CAT}\n" for i in range(30))
    gz.write_bytes(gzip.compress(rows.encode()))
    src = UrlListSource(gz)
    assert len(list(src.refs())) == 30
    cats = list(UrlListSource(gz).refs([CAT]))
    assert len(cats) == 10 and {r.synset_id for r in cats} == {CAT}
    capped = list(UrlListSource(gz).refs(per_synset=4))
    assert sum(r.synset_id == DOG for r in capped) == 4 and sum(r.synset_id == CAT for r in capped) == 4

    class Known:
        def __contains__(self, sid: object) -> bool:
            return sid == DOG

    only_known = UrlListSource(gz)
    assert {r.synset_id for r in only_known.refs(hierarchy=Known())} == {DOG}
    assert only_known.report.skipped["unknown_synset"] == 10


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    rows = "url,synset\n" + "".join(f"https://g.example/{i}.jpg,{DOG}\n" for i in range(5000))
    blob = gzip.compress(rows.encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(blob[: len(blob) * 2 // 3])
    src = UrlListSource(cut)
    refs = list(src.refs())
    assert 0 < len(refs) < 5000
    assert src.report.skipped == {"unreadable_rest": 1}
    head_only = tmp_path / "head.csv.gz"
    head_only.write_bytes(blob[:15])
    with pytest.raises(InputError, match=r"head\.csv\.gz"):
        UrlListSource(head_only)


def test_unreadable_lists_raise_input_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        UrlListSource(tmp_path / "missing.csv")
    no_url = tmp_path / "nourl.csv"
    no_url.write_text("caption,synset\nhello,n02084071\n")
    with pytest.raises(InputError, match=r"nourl\.csv: no URL column \(columns: caption, synset\)"):
        UrlListSource(no_url)
    fake = tmp_path / "fake.parquet"
    fake.write_text("this is not parquet")
    with pytest.raises(InputError, match=r"fake\.parquet: cannot read as parquet"):
        UrlListSource(fake)
    weird = tmp_path / "list.xlsx"
    weird.write_text("x")
    with pytest.raises(InputError, match="input_format"):
        UrlListSource(weird)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty file"):
        UrlListSource(empty)
    arr = tmp_path / "arr.json"
    arr.write_text('[{"url": "https://a/1.jpg"}]')
    with pytest.raises(InputError, match="JSON array"):
        list(UrlListSource(arr, default_synset=DOG).refs())


def test_csv_reading_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    n = 25_000
    with path.open("w") as fh:
        fh.write("url,synset,caption\n")
        for i in range(n):
            fh.write(f"https://big.example/images/{i:08d}.jpg,{DOG},caption number {i} " + "x" * 40 + "\n")
    size = path.stat().st_size
    src = UrlListSource(path)
    first = list(itertools.islice(src.refs(), 3))  # lazy: nothing else is read
    assert [r.extra["line"] for r in first] == [2, 3, 4]

    tracemalloc.start()
    count = sum(1 for _ in UrlListSource(path).refs())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    assert peak < size / 4, (peak, size)  # a few rows at a time, never the file


# --- folders ------------------------------------------------------------------------------------------
def jpeg_bytes(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for rel in [
        "n02084071/a.jpg",
        "n02084071/b.JPEG",
        "train/n02121620/c.png",
        "misc/d.jpg",
        "misc/deep/e.webp",
    ]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(jpeg_bytes())
    (root / "n02084071" / "notes.txt").write_text("not an image")
    (root / "n02084071" / "a.jpg.json").write_text(json.dumps({"license": "CC BY-SA 4.0", "author": "Ann"}))
    (root / "misc" / "d.json").write_text("{broken")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg_bytes("blue"))
    os.symlink(outside / "secret.jpg", root / "n02084071" / "escape.jpg")
    os.symlink(outside, root / "linked_dir")
    os.symlink(root / "n02084071" / "a.jpg", root / "n02084071" / "alias.jpg")  # inside: fine
    os.symlink(tmp_path / "nowhere.jpg", root / "n02084071" / "dangling.jpg")
    return root


def test_folder_imagefolder_layout_and_symlinks(tree: Path) -> None:
    src = FolderSource(tree, license="CC0", author="Lab")
    refs = {r.key: r for r in src.refs()}
    assert set(refs) == {
        "n02084071/a.jpg",
        "n02084071/alias.jpg",
        "n02084071/b.JPEG",
        "train/n02121620/c.png",
    }
    a = refs["n02084071/a.jpg"]
    assert a.synset_id == DOG and a.source == "folder"
    assert a.url == (tree / "n02084071" / "a.jpg").as_uri()
    assert (a.license, a.author) == ("CC-BY-SA-4.0", "Ann")  # from the sidecar
    assert (refs["n02084071/b.JPEG"].license, refs["n02084071/b.JPEG"].author) == ("CC0-1.0", "Lab")
    assert refs["train/n02121620/c.png"].synset_id == CAT
    assert where(src) == {
        "linked_dir": "outside_root",
        "n02084071/escape.jpg": "outside_root",
        "n02084071/dangling.jpg": "broken_link",
        "misc/d.jpg": "no_synset",
        "misc/deep/e.webp": "no_synset",
    }
    assert src.report.skipped["not_image_extension"] == 1

    # the downloader reads the refs from disk when told the root, and refuses the escape on its own
    pol = FetchPolicy(allow_files=True, file_roots=(tree,))
    got = {f.ref.key: f for f in fetch_all(refs.values(), pol)}
    assert all(f.data is not None and f.data[:2] == b"\xff\xd8" for f in got.values())


def test_folder_mapping_file_and_dict(tree: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text(
        "path,synset,license\n"
        "misc,n01503061,CC BY 4.0\n"  # a folder: everything below it
        "misc/deep/e.webp,n02121620,\n"  # a file: overrides its folder
        "train/n02121620/c.png,not a synset,\n"
        "n02084071/b.JPEG,n02121620,\n"
    )
    src = FolderSource(tree, mapping=mapping)
    refs = {r.key: r for r in src.refs()}
    assert refs["misc/d.jpg"].synset_id == BIRD and refs["misc/d.jpg"].license == "CC-BY-4.0"
    assert refs["misc/deep/e.webp"].synset_id == CAT and refs["misc/deep/e.webp"].license == "CC-BY-4.0"
    assert refs["n02084071/b.JPEG"].synset_id == CAT  # the mapping beats the folder name
    assert refs["train/n02121620/c.png"].synset_id == CAT  # bad mapping row skipped; folder name used
    assert src.report.skipped["bad_synset"] == 1
    assert src.report.warnings["bad_sidecar"] == 1  # misc/d.json is broken, d.jpg still yielded

    bare = tmp_path / "bare.csv"
    bare.write_text("misc/d.jpg,n01503061\n")
    assert {r.key for r in FolderSource(tree, mapping=bare).refs([BIRD])} == {"misc/d.jpg"}

    by_dict = FolderSource(tree, mapping={"./misc/": BIRD}, default_synset=DOG)
    got = {r.key: r.synset_id for r in by_dict.refs(per_synset=2)}
    assert got == {
        "misc/d.jpg": BIRD,
        "misc/deep/e.webp": BIRD,
        "n02084071/a.jpg": DOG,
        "n02084071/alias.jpg": DOG,
        "train/n02121620/c.png": CAT,
    }


def test_folder_bad_inputs(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        FolderSource(tmp_path / "nope")
    with pytest.raises(NotFoundError):
        FolderSource(tree, mapping=tmp_path / "nomap.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name,label\nx.jpg,dog\n")
    with pytest.raises(InputError, match="needs 'path' and 'synset' columns"):
        FolderSource(tree, mapping=bad)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"path,synset\ncaf\xe9.jpg,n02084071\n")
    with pytest.raises(InputError, match="not UTF-8"):
        FolderSource(tree, mapping=latin)
    with pytest.raises(InputError, match="not a valid synset id"):
        FolderSource(tree, default_synset="n1")
