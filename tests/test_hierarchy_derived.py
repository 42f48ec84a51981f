"""The precomputed hierarchy values shipped next to WordNet: current, used, and rebuilt when stale."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

from synsetforge.hierarchy import derived, wordnet

SHIPPED = wordnet.data_path()
DOG = "n02084071"


def test_shipped_derived_file_matches_the_data_file() -> None:
    """Recomputed from scratch, the derived values are exactly what the package ships."""
    blob = SHIPPED.read_bytes()
    from_scratch = wordnet.parse_wordnet(blob)
    shipped = SHIPPED.with_name(wordnet.DERIVED_FILE).read_bytes()
    assert derived.decode(shipped, blob) is not None
    assert gzip.decompress(derived.encode(from_scratch, blob)) == gzip.decompress(shipped)


def test_fast_load_answers_like_a_full_parse() -> None:
    blob = SHIPPED.read_bytes()
    full = wordnet.parse_wordnet(blob)
    fast = wordnet.parse_wordnet(
        blob, precomputed=derived.decode(SHIPPED.with_name(wordnet.DERIVED_FILE).read_bytes(), blob)
    )
    ids = full.ids
    assert fast.ids == ids
    sample = [*ids[::997], DOG, wordnet.ROOT_ID]
    for s in sample:
        assert fast.get(s) == full.get(s)
        assert fast.children(s) == full.children(s)
        assert (fast.depth(s), fast.max_depth(s), fast.height(s)) == (
            full.depth(s),
            full.max_depth(s),
            full.height(s),
        )
        assert fast.num_descendants(s) == full.num_descendants(s)
    pairs = list(zip(sample, reversed(sample), strict=True))
    assert [fast.lca(a, b) for a, b in pairs] == [full.lca(a, b) for a, b in pairs]


def test_taxonomy_show_values_need_no_derivation() -> None:
    """A fresh process answers depth, height, descendants and children without ordering the whole DAG."""
    code = (
        "from synsetforge.hierarchy import load_wordnet\n"
        f"h = load_wordnet(); s = {DOG!r}\n"
        "print(h.depth(s), h.max_depth(s), h.height(s), h.num_descendants(s), len(h.children(s)))\n"
        "print(h._topo is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    values, untouched = out.splitlines()
    full = wordnet.parse_wordnet(SHIPPED.read_bytes())
    assert values.split() == [
        str(v)
        for v in (
            full.depth(DOG),
            full.max_depth(DOG),
            full.height(DOG),
            full.num_descendants(DOG),
            len(full.children(DOG)),
        )
    ]
    assert untouched == "True"


def _copy_data(tmp_path: Path) -> Path:
    data = tmp_path / wordnet.DATA_FILE
    shutil.copyfile(SHIPPED, data)
    return data


def test_missing_derived_file_is_built(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    h = wordnet._load(data)
    assert h.height(wordnet.ROOT_ID) > 10
    written = (tmp_path / wordnet.DERIVED_FILE).read_bytes()
    assert derived.decode(written, data.read_bytes()) is not None


def test_stale_derived_file_is_rebuilt(tmp_path: Path) -> None:
    """A derived file made from other data (another checksum) is not trusted: it is recomputed and replaced."""
    data = _copy_data(tmp_path)
    cache = tmp_path / wordnet.DERIVED_FILE
    shipped_derived = SHIPPED.with_name(wordnet.DERIVED_FILE).read_bytes()
    # the same arrays under another data file's checksum: stale
    raw = gzip.decompress(shipped_derived)
    head = len(derived.MAGIC)
    stale = raw[:head] + derived.checksum(b"other data") + raw[head + 32 :]
    cache.write_bytes(gzip.compress(stale))
    assert derived.decode(cache.read_bytes(), data.read_bytes()) is None
    h = wordnet._load(data)
    assert h._topo is not None  # recomputed, not read
    assert derived.decode(cache.read_bytes(), data.read_bytes()) is not None
    assert gzip.decompress(cache.read_bytes()) == gzip.decompress(shipped_derived)


def test_damaged_derived_file_is_ignored(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    blob = data.read_bytes()
    shipped_derived = SHIPPED.with_name(wordnet.DERIVED_FILE).read_bytes()
    assert derived.decode(b"not gzip", blob) is None
    assert derived.decode(gzip.compress(gzip.decompress(shipped_derived)[:-4]), blob) is None  # truncated
    (tmp_path / wordnet.DERIVED_FILE).write_bytes(b"garbage")
    assert wordnet._load(data).depth(DOG) == wordnet.parse_wordnet(blob).depth(DOG)
