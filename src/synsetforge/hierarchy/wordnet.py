"""WordNet 3.0's noun hierarchy, loaded from the compact file shipped in the package.

The file is produced by ``scripts/build_wordnet.py`` from Debian's ``wordnet-base``; its license text is in
``data/WORDNET-LICENSE.txt`` next to it.
"""

from __future__ import annotations

import gzip
import threading
from importlib import resources
from pathlib import Path

from synsetforge.errors import StoreError
from synsetforge.hierarchy.model import Hierarchy

DATA_FILE = "wordnet30-nouns.tsv.gz"
LICENSE_FILE = "WORDNET-LICENSE.txt"
ROOT_ID = "n00001740"
SOURCE = "WordNet 3.0"

_lock = threading.Lock()
_cached: Hierarchy | None = None


def data_path() -> Path:
    """Where the shipped WordNet file lives."""
    return Path(str(resources.files("synsetforge.hierarchy") / "data" / DATA_FILE))


def parse_wordnet(blob: bytes, source: str = SOURCE) -> Hierarchy:
    """Build a :class:`Hierarchy` from the gzip'd ``id<TAB>lemmas<TAB>parents<TAB>gloss`` file."""
    text = gzip.decompress(blob).decode("utf-8")
    rows = [line.split("\t") for line in text.split("\n") if line and not line.startswith("#")]
    ids, lemma_text, parent_text, glosses = zip(*rows, strict=True)
    index = dict(zip(ids, range(len(ids)), strict=True))
    to_index = index.__getitem__
    parents = [tuple(map(to_index, p.split())) for p in parent_text]
    lemmas = [tuple(t.split("|")) for t in lemma_text]
    return Hierarchy(ids, lemmas, glosses, parents, source=source, index=index)


def load_wordnet() -> Hierarchy:
    """WordNet 3.0 nouns (82,115 synsets), loaded once per process and shared."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                path = data_path()
                try:
                    blob = path.read_bytes()
                except OSError as exc:
                    raise StoreError(f"cannot read the shipped WordNet data {path}: {exc.strerror}") from None
                _cached = parse_wordnet(blob)
    return _cached
