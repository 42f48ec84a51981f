"""URL lists as a source: CSV, TSV, Parquet, JSON lines or plain text, read as a stream.

Column names follow img2dataset's conventions ("url"/"URL", "caption"/"TEXT", ...) unless given. A bad
row (no URL, a malformed synset id, bytes that are not UTF-8, a broken JSON line) is counted with its line
number and skipped; only a file that cannot be read at all raises `InputError`. Ten million lines cost the
same memory as ten: rows are parsed one at a time (CSV/JSON lines) or one batch at a time (Parquet).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from synsetforge.candidates.sources._search import (
    SourceReport,
    known_to,
    normalize_license,
    stable_key,
    valid_synset_id,
)
from synsetforge.candidates.types import CandidateRef
from synsetforge.errors import InputError, NotFoundError
from synsetforge.limits import nul_free

FORMATS = ("csv", "tsv", "parquet", "jsonl", "txt")
_SUFFIX_FORMAT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "txt",
}

# Candidate column names, tried in order, compared case-insensitively (img2dataset's included).
URL_NAMES = ("url", "image_url", "imageurl", "img_url", "photo_url", "image", "link", "src")
CAPTION_NAMES = ("caption", "text", "alt", "alt_text", "title", "description")
SYNSET_NAMES = ("synset", "synset_id", "wnid")
LICENSE_NAMES = ("license", "licence", "license_name")
AUTHOR_NAMES = ("author", "creator", "artist", "owner_name", "ownername", "photographer")
PAGE_URL_NAMES = ("page_url", "foreign_landing_url", "landing_url", "source_url")
PARQUET_BATCH_ROWS = 8192


@dataclass(frozen=True)
class Columns:
    """Which input column feeds which field; None when the file has no such column."""

    url: str | None
    synset: str | None = None
    caption: str | None = None
    license: str | None = None
    author: str | None = None
    page_url: str | None = None
    extra: tuple[str, ...] = ()


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _SUFFIX_FORMAT.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"{path}: cannot tell the format from the name; pass input_format (one of {FORMATS})"
        )
    return fmt


def _pick(
    available: Sequence[str], given: str | None, names: Sequence[str], what: str, path: Path, strict: bool
) -> str | None:
    """The column for `what`: the given name (exact, then any case) or the first conventional name found.

    A given name that is missing is an error for files with a header (`strict`), and simply absent from a
    JSON line (whose keys vary from line to line)."""
    if given is not None:
        if given in available:
            return given
        folded = {a.lower(): a for a in available}
        if given.lower() in folded:
            return folded[given.lower()]
        if not strict:
            return None
        raise InputError(f"{path}: no {what} column {given!r} (columns: {', '.join(available) or 'none'})")
    folded = {a.strip().lower(): a for a in available}
    for name in names:
        if name in folded:
            return folded[name]
    return None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class UrlListSource:
    """Candidates from a URL list file; see the module docstring for formats and column conventions."""

    def __init__(
        self,
        path: str | Path,
        *,
        input_format: str | None = None,
        url_col: str | None = None,
        synset_col: str | None = None,
        caption_col: str | None = None,
        license_col: str | None = None,
        author_col: str | None = None,
        page_url_col: str | None = None,
        extra_cols: Sequence[str] = (),
        default_synset: str | None = None,
        name: str = "urls",
        delimiter: str | None = None,
        allowed_schemes: Iterable[str] = ("http", "https"),
        synset_check: Callable[[str], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        if not self.path.exists():
            raise NotFoundError(f"URL list {self.path} does not exist")
        self.format = (input_format or detect_format(self.path)).lower()
        if self.format not in FORMATS:
            raise InputError(f"{self.path}: unknown input format {self.format!r} (one of {FORMATS})")
        self.delimiter = delimiter or ("\t" if self.format == "tsv" else ",")
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self._synset_ok = synset_check or valid_synset_id
        if default_synset is not None and not self._synset_ok(default_synset):
            raise InputError(f"default synset {default_synset!r} is not a valid synset id")
        self.default_synset = default_synset
        self._given = {
            "url": url_col,
            "synset": synset_col,
            "caption": caption_col,
            "license": license_col,
            "author": author_col,
            "page_url": page_url_col,
        }
        self._extra_cols = tuple(extra_cols)
        self.report = SourceReport(name)
        self.columns: Columns | None = None
        self._by_keys: dict[tuple[str, ...], Columns] = {}
        if self.format in ("csv", "tsv", "parquet"):
            self.columns = self._resolve(self._header())  # fail early on a file without a URL column

    # -- columns -------------------------------------------------------------------------------------
    def _resolve(self, available: Sequence[str], strict: bool = True) -> Columns:
        p, g = self.path, self._given

        def pick(given: str | None, names: Sequence[str], what: str) -> str | None:
            return _pick(available, given, names, what, p, strict)

        url = pick(g["url"], URL_NAMES, "url")
        if url is None and strict:
            raise InputError(f"{p}: no URL column (columns: {', '.join(available) or 'none'}); pass url_col")
        return Columns(
            url=url,
            synset=pick(g["synset"], SYNSET_NAMES, "synset"),
            caption=pick(g["caption"], CAPTION_NAMES, "caption"),
            license=pick(g["license"], LICENSE_NAMES, "license"),
            author=pick(g["author"], AUTHOR_NAMES, "author"),
            page_url=pick(g["page_url"], PAGE_URL_NAMES, "page_url"),
            extra=tuple(c for c in (pick(c, (), "extra") for c in self._extra_cols) if c),
        )

    def _columns_of(self, rec: dict[str, Any]) -> Columns:
        """Columns of a JSON line / text record; keys vary by line, so resolve per key set (cached)."""
        keys = tuple(rec)
        cols = self._by_keys.get(keys)
        if cols is None:
            if len(self._by_keys) >= 256:
                self._by_keys.clear()
            cols = self._by_keys[keys] = self._resolve(keys, strict=False)
        return cols

    def _open_text(self) -> IO[str]:
        if self.path.suffix.lower() == ".gz":
            return gzip.open(self.path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")
        return self.path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _open_binary(self) -> IO[bytes]:
        if self.path.suffix.lower() == ".gz":
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        return self.path.open("rb")

    def _header(self) -> list[str]:
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                return list(pq.ParquetFile(self.path).schema_arrow.names)
            with self._open_text() as fh:
                row = next(csv.reader(fh, delimiter=self.delimiter), None)
        except InputError:
            raise
        except Exception as exc:  # pyarrow, gzip and csv all have their own errors
            raise InputError(f"{self.path}: cannot read as {self.format}: {exc}") from exc
        if not row:
            raise InputError(f"{self.path}: empty file, expected a header row")
        return [c.strip() for c in row]

    # -- reading -------------------------------------------------------------------------------------
    def records(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        """(line or row number, field dict, reason it is unusable) for every row, streaming."""
        readers = {
            "csv": self._csv_records,
            "tsv": self._csv_records,
            "parquet": self._parquet_records,
            "jsonl": self._jsonl_records,
            "txt": self._txt_records,
        }
        last = 0
        try:
            for item in readers[self.format]():
                last = item[0]
                yield item
        except InputError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            if last == 0:
                raise InputError(f"{self.path}: unreadable ({type(exc).__name__}: {exc})") from exc
            # a file cut short (truncated gzip, disk error): keep what was read, say where it stopped
            self.report.skip("unreadable_rest", f"{self.path.name}:{last}", f"{type(exc).__name__}: {exc}")

    def _csv_records(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        with self._open_text() as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            header = [c.strip() for c in next(reader, [])]
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, None, f"bad_csv: {exc}"
                    continue
                if not row or all(not c.strip() for c in row):
                    continue
                if any(_has_surrogates(c) for c in row):
                    yield reader.line_num, None, "not_utf8"
                    continue
                yield reader.line_num, dict(zip(header, row, strict=False)), None

    def _jsonl_records(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        with self._open_binary() as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                if lineno == 1 and raw.lstrip().startswith(b"["):
                    raise InputError(f"{self.path}: a JSON array is not streamable; use JSON lines")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    yield lineno, None, "not_utf8"
                    continue
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    yield lineno, None, f"bad_json: {exc}"
                    continue
                if not isinstance(obj, dict):
                    yield lineno, None, f"bad_json: a {type(obj).__name__}, not an object"
                    continue
                yield lineno, obj, None

    def _txt_records(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        with self._open_binary() as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.strip()
                if not line or line.startswith(b"#"):
                    continue
                try:
                    yield lineno, {"url": line.decode("utf-8")}, None
                except UnicodeDecodeError:
                    yield lineno, None, "not_utf8"

    def _parquet_records(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        import pyarrow.parquet as pq

        assert self.columns is not None
        c = self.columns
        wanted = [x for x in (c.url, c.synset, c.caption, c.license, c.author, c.page_url, *c.extra) if x]
        wanted = list(dict.fromkeys(wanted))
        pf = pq.ParquetFile(self.path)
        rowno = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            cols = batch.to_pydict()
            for i in range(batch.num_rows):
                rowno += 1
                rec = {k: v[i] for k, v in cols.items()}
                bad = False
                for k, v in rec.items():
                    if isinstance(v, bytes):
                        try:
                            rec[k] = v.decode("utf-8")
                        except UnicodeDecodeError:
                            bad = True
                yield (rowno, None, "not_utf8") if bad else (rowno, rec, None)

    # -- refs ----------------------------------------------------------------------------------------
    def _ref(self, lineno: int, rec: dict[str, Any]) -> CandidateRef | str:
        """A ref from one record, or the reason it is skipped."""
        c = self.columns or self._columns_of(rec)

        def text(col: str | None) -> str | None:
            if col is None:
                return None
            v = rec.get(col)
            if v is None:
                return None
            s = str(v).strip()
            return s or None

        url = text(c.url)
        if url is None:
            return "missing_url"
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes))
            what = f"scheme {scheme!r} is not allowed" if scheme else "no scheme"
            return f"bad_url: {what} (only {allowed})"
        if scheme != "file" and not parts.netloc:
            return f"bad_url: no host in {url[:80]!r}"
        for col in (c.url, c.synset, c.caption, c.license, c.author, c.page_url):
            if not nul_free(text(col) or ""):
                return f"nul_character: column {col!r} holds a NUL character"
        sid = text(c.synset) or self.default_synset
        if sid is None:
            return "missing_synset"
        if not self._synset_ok(sid):
            return f"bad_synset: {sid[:80]!r}"
        lic_raw = text(c.license)
        extra: dict[str, Any] = {"line": lineno, "license_raw": lic_raw}
        for col in c.extra:
            extra[col] = rec.get(col)
        return CandidateRef(
            synset_id=sid,
            source=self.name,
            url=url,
            key=f"{sid}/{stable_key(url)}",
            page_url=text(c.page_url),
            license=normalize_license(lic_raw),
            author=text(c.author),
            caption=text(c.caption),
            extra=extra,
        )

    def refs(
        self,
        synset_ids: Iterable[str] | None = None,
        per_synset: int | None = None,
        hierarchy: Any = None,
    ) -> Iterator[CandidateRef]:
        """Valid rows as refs, optionally only for `synset_ids` and at most `per_synset` per synset."""
        wanted = set(synset_ids) if synset_ids is not None else None
        known = known_to(hierarchy)
        counts: Counter[str] = Counter()
        full = 0  # wanted synsets that reached per_synset; when all have, the rest of the file is moot
        for lineno, rec, problem in self.records():
            where = f"{self.path.name}:{lineno}"
            if rec is None:
                reason, _, detail = (problem or "bad_row").partition(": ")
                self.report.skip(reason, where, detail)
                continue
            ref = self._ref(lineno, rec)
            if isinstance(ref, str):
                reason, _, detail = ref.partition(": ")
                self.report.skip(reason, where, detail)
                continue
            if not known(ref.synset_id):
                self.report.skip("unknown_synset", where, ref.synset_id)
                continue
            if wanted is not None and ref.synset_id not in wanted:
                continue
            if per_synset is not None and counts[ref.synset_id] >= per_synset:
                continue
            counts[ref.synset_id] += 1
            self.report.yielded += 1
            yield ref
            if wanted is not None and per_synset is not None and counts[ref.synset_id] == per_synset:
                full += 1
                if full == len(wanted):
                    return


def read_url_list(path: str | Path, **kwargs: Any) -> tuple[list[CandidateRef], SourceReport]:
    """Small lists only: every ref and the report (use `UrlListSource(...).refs()` to stream)."""
    src = UrlListSource(path, **kwargs)
    return list(src.refs()), src.report
