"""Build synsetforge's compact WordNet 3.0 noun file from Debian's ``wordnet-base``.

The package ships the result (``src/synsetforge/hierarchy/data/wordnet30-nouns.tsv.gz``) so it works without
WordNet installed, without NLTK and without network. Rerun this script only to regenerate it; the output is
byte-for-byte reproducible (gzip with a fixed mtime and no file name) and a test checks that.

Output format, one synset per line after a ``#`` header line, UTF-8, tab-separated::

    id <TAB> lemmas <TAB> parents <TAB> gloss

``id`` is ``n`` + the 8-digit offset in WordNet 3.0's ``data.noun`` (ImageNet's wnid); ``lemmas`` are joined
with ``|`` (underscores turned into spaces, adjective markers such as ``(a)`` removed); ``parents`` are the
hypernym ids, including instance hypernyms (``@`` and ``@i``), joined with a space, in ``data.noun`` order.

It also writes ``wordnet30-nouns.derived.gz``: the children, depths, heights, LCA ranks and descendant counts
the hierarchy derives from that file, tied to it by checksum (see ``synsetforge.hierarchy.derived``), so that a
fresh process need not compute them.

Usage: ``python scripts/build_wordnet.py [--data-noun PATH] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import sys
from pathlib import Path

DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "synsetforge" / "hierarchy" / "data"
DATA_FILE = "wordnet30-nouns.tsv.gz"
DERIVED_FILE = "wordnet30-nouns.derived.gz"
LICENSE_FILE = "WORDNET-LICENSE.txt"
EXPECTED_SYNSETS = 82115
HEADER = "# WordNet 3.0 nouns for synsetforge: id\tlemmas\tparents\tgloss\n"
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_HYPERNYM_SYMBOLS = {"@", "@i"}


def parse_line(line: str) -> tuple[str, list[str], list[str], str]:
    """Split one ``data.noun`` synset line into (id, lemmas, parent ids, gloss)."""
    data, _, gloss = line.partition("|")
    fields = data.split()
    offset = fields[0]
    n_words = int(fields[3], 16)  # the word count is hexadecimal in WordNet's data files
    lemmas: list[str] = []
    for k in range(n_words):
        word = _ADJ_MARKER.sub("", fields[4 + 2 * k]).replace("_", " ")
        if word not in lemmas:
            lemmas.append(word)
    pos = 4 + 2 * n_words
    n_pointers = int(fields[pos])
    parents: list[str] = []
    for k in range(n_pointers):
        symbol, target, target_pos = fields[pos + 1 + 4 * k : pos + 4 + 4 * k]
        if symbol in _HYPERNYM_SYMBOLS and target_pos == "n":
            parent = "n" + target
            if parent not in parents:
                parents.append(parent)
    return "n" + offset, lemmas, parents, " ".join(gloss.split())


def read_license(text: str) -> str:
    """The license header that Princeton puts at the top of every WordNet data file (lines ``  N text``)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("  "):
            break
        parts = line.strip().split(" ", 1)
        lines.append(parts[1].rstrip() if len(parts) > 1 else "")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def build(data_noun: Path, out_dir: Path) -> tuple[Path, int]:
    """Write the data and license files into ``out_dir``; return the data path and the synset count."""
    text = data_noun.read_text(encoding="utf-8")
    rows = [parse_line(line) for line in text.splitlines() if line and not line.startswith(" ")]
    if len(rows) != EXPECTED_SYNSETS:
        raise SystemExit(f"{data_noun}: expected {EXPECTED_SYNSETS} noun synsets, found {len(rows)}")
    body = io.StringIO()
    body.write(HEADER)
    for sid, lemmas, parents, gloss in rows:
        body.write(f"{sid}\t{'|'.join(lemmas)}\t{' '.join(parents)}\t{gloss}\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / DATA_FILE
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(body.getvalue().encode("utf-8"))
    out.write_bytes(raw.getvalue())
    (out_dir / DERIVED_FILE).write_bytes(derived_bytes(raw.getvalue()))
    (out_dir / LICENSE_FILE).write_text(read_license(text), encoding="utf-8")
    return out, len(rows)


def derived_bytes(data: bytes) -> bytes:
    """The derived file for the data file bytes ``data``."""
    from synsetforge.hierarchy import derived
    from synsetforge.hierarchy.wordnet import parse_wordnet

    return derived.encode(parse_wordnet(data), data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-noun", type=Path, default=DEFAULT_DATA_NOUN, help="WordNet 3.0 data.noun")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    if not args.data_noun.is_file():
        print(f"{args.data_noun}: not found (apt-get install wordnet-base)", file=sys.stderr)
        return 1
    out, count = build(args.data_noun, args.out)
    print(f"wrote {out} ({count} synsets, {out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
