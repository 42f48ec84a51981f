"""WordNet 3.0's noun hierarchy, loaded from the compact file shipped in the package.

The file is produced by ``scripts/build_wordnet.py`` from Debian's ``wordnet-base``; its license text is in
``data/WORDNET-LICENSE.txt`` next to it, and what the hierarchy derives from it (children, depths, heights,
LCA ranks, descendant counts) in ``data/wordnet30-nouns.derived.gz`` (see :mod:`synsetforge.hierarchy.derived`).
"""

from __future__ import annotations

import gzip
import threading
from importlib import resources
from pathlib import Path

from synsetforge.errors import StoreError
from synsetforge.hierarchy import derived
from synsetforge.hierarchy.model import Hierarchy

DATA_FILE = "wordnet30-nouns.tsv.gz"
DERIVED_FILE = "wordnet30-nouns.derived.gz"
LICENSE_FILE = "WORDNET-LICENSE.txt"
ROOT_ID = "n00001740"
SOURCE = "WordNet 3.0"

_lock = threading.Lock()
_cached: Hierarchy | None = None


def data_path() -> Path:
    """Where the shipped WordNet file lives."""
    return Path(str(resources.files("synsetforge.hierarchy") / "data" / DATA_FILE))


def parse_wordnet(blob: bytes, source: str = SOURCE, precomputed: derived.Derived | None = None) -> Hierarchy:
    """Build a :class:`Hierarchy` from the gzip'd ``id<TAB>lemmas<TAB>parents<TAB>gloss`` file.

    ``precomputed`` (from the derived file of exactly this blob) supplies the parent links and the derived
    values, so only ids, lemmas and glosses are parsed.
    """
    text = gzip.decompress(blob).decode("utf-8")
    if precomputed is not None:
        return _parse_columns(text, source, precomputed)
    rows = [line.split("\t") for line in text.split("\n") if line and not line.startswith("#")]
    ids, lemma_text, parent_text, glosses = zip(*rows, strict=True)
    index = dict(zip(ids, range(len(ids)), strict=True))
    to_index = index.__getitem__
    parents = [tuple(map(to_index, p.split())) for p in parent_text]
    lemmas = [tuple(t.split("|")) for t in lemma_text]
    return Hierarchy(ids, lemmas, glosses, parents, source=source, index=index)


def _parse_columns(text: str, source: str, precomputed: derived.Derived) -> Hierarchy:
    """The fast path: every field split in one pass; the parents column is not parsed at all."""
    while text.startswith("#"):
        text = text[text.index("\n") + 1 :]
    fields = text.rstrip("\n").replace("\n", "\t").split("\t")
    if len(fields) % 4:
        raise StoreError("the shipped WordNet data is damaged: a line does not have 4 fields")
    ids = fields[0::4]
    lemmas = [tuple(t.split("|")) for t in fields[1::4]]
    index = dict(zip(ids, range(len(ids)), strict=True))
    parents = precomputed.parents
    return Hierarchy(ids, lemmas, fields[3::4], parents, source=source, index=index, derived=precomputed)


def _load(path: Path) -> Hierarchy:
    """Read the data file and its derived file; rebuild (and try to rewrite) a missing or stale one."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read the shipped WordNet data {path}: {exc.strerror}") from None
    cache = path.with_name(DERIVED_FILE)
    try:
        precomputed = derived.decode(cache.read_bytes(), blob)
    except OSError:
        precomputed = None
    if precomputed is not None:
        return parse_wordnet(blob, precomputed=precomputed)
    h = parse_wordnet(blob)
    derived.write_atomically(cache, derived.encode(h, blob))  # computes what it stores, so h has it too
    return h


def load_wordnet() -> Hierarchy:
    """WordNet 3.0 nouns (82,115 synsets), loaded once per process and shared."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = _load(data_path())
    return _cached
