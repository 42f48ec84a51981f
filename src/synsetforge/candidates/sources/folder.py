"""A local tree of images as a source (bring-your-own images, ImageFolder layouts).

The synset of a file comes from a mapping (CSV `path,synset` or a dict; a key may name a folder, covering
everything below it), else from the nearest enclosing folder named like a wnid (`train/n02084071/x.jpg`),
else from `default_synset`. Refs point at `file://` URLs inside the root; a symlink that leads outside the
root is refused here, and the downloader re-checks with `FetchPolicy(allow_files=True, file_roots=(root,))`.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from synsetforge.candidates.sources._search import (
    WNID_RE,
    SourceReport,
    known_to,
    normalize_license,
    valid_synset_id,
)
from synsetforge.candidates.types import CandidateRef
from synsetforge.errors import InputError, NotFoundError

SIDECAR_FIELDS = ("license", "author", "caption", "page_url")


def image_extensions() -> frozenset[str]:
    """File extensions of formats Pillow can open (the bytes are sniffed again later)."""
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _norm_rel(path: str) -> str:
    p = PurePosixPath(path.replace("\\", "/").strip())
    parts = [x for x in p.parts if x not in (".", "")]
    return "/".join(parts).rstrip("/")


def _index(header: list[str], names: Iterable[str]) -> int:
    return next((header.index(n) for n in names if n in header), -1)


class FolderSource:
    """Candidates from image files under `root`."""

    def __init__(
        self,
        root: str | Path,
        *,
        mapping: str | Path | Mapping[str, str] | None = None,
        default_synset: str | None = None,
        license: str | None = None,
        author: str | None = None,
        sidecars: bool = True,  # read `<image>.json` (or `<stem>.json`) for license/author/caption/page_url
        name: str = "folder",
        extensions: Iterable[str] | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise NotFoundError(f"image folder {self.root} does not exist or is not a folder")
        self.root_resolved = self.root.resolve()
        self.name = name
        self.report = SourceReport(name)
        if default_synset is not None and not valid_synset_id(default_synset):
            raise InputError(f"default synset {default_synset!r} is not a valid synset id")
        self.default_synset = default_synset
        self.default_license = license
        self.default_author = author
        self.sidecars = sidecars
        self.extensions = frozenset(
            e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions or ()
        )
        if not self.extensions:
            self.extensions = image_extensions()
        self.mapping: dict[str, str] = {}
        self.mapping_meta: dict[str, dict[str, str]] = {}
        if isinstance(mapping, str | Path):
            self._load_mapping_file(Path(mapping))
        elif mapping is not None:
            for k, v in mapping.items():
                self._add_mapping(_norm_rel(k), str(v).strip(), "mapping", {})

    # -- mapping -------------------------------------------------------------------------------------
    def _add_mapping(self, rel: str, sid: str, where: str, meta: dict[str, str]) -> None:
        if not valid_synset_id(sid):
            self.report.skip("bad_synset", where, f"{rel}: {sid!r}")
            return
        self.mapping[rel] = sid
        if meta:
            self.mapping_meta[rel] = meta

    def _load_mapping_file(self, path: Path) -> None:
        """CSV with `path` and `synset` columns (optional license/author/caption), or two bare columns."""
        if not path.is_file():
            raise NotFoundError(f"mapping file {path} does not exist")
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows = csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                first = next(rows, None)
                if first is None:
                    raise InputError(f"mapping file {path} is empty")
                header = [c.strip().lower() for c in first]
                if len(first) >= 2 and WNID_RE.fullmatch(first[1].strip()):
                    header, path_i, syn_i = ["path", "synset"], 0, 1
                    rows_iter: Iterable[list[str]] = [first, *rows]
                else:
                    path_i = next((header.index(n) for n in ("path", "file", "filename") if n in header), -1)
                    syn_i = next(
                        (header.index(n) for n in ("synset", "synset_id", "wnid") if n in header), -1
                    )
                    if path_i < 0 or syn_i < 0:
                        raise InputError(
                            f"mapping file {path}: needs 'path' and 'synset' columns, got {first}"
                        )
                    rows_iter = rows
                for row in rows_iter:
                    where = f"{path.name}:{getattr(rows, 'line_num', 0)}"
                    if len(row) <= max(path_i, syn_i) or not row[path_i].strip():
                        if any(c.strip() for c in row):
                            self.report.skip("bad_mapping_row", where, ",".join(row))
                        continue
                    meta = {
                        f: row[header.index(f)].strip()
                        for f in SIDECAR_FIELDS
                        if f in header and header.index(f) < len(row) and row[header.index(f)].strip()
                    }
                    self._add_mapping(_norm_rel(row[path_i]), row[syn_i].strip(), where, meta)
        except UnicodeDecodeError as exc:
            raise InputError(f"mapping file {path} is not UTF-8 text ({exc})") from exc
        except csv.Error as exc:
            raise InputError(f"mapping file {path}: {exc}") from exc

    def _synset_for(self, rel: str) -> str | None:
        parts = rel.split("/")
        if self.mapping:
            for i in range(len(parts), 0, -1):  # the file itself, then its folders, deepest first
                sid = self.mapping.get("/".join(parts[:i]))
                if sid is not None:
                    return sid
        for folder in reversed(parts[:-1]):
            if WNID_RE.fullmatch(folder):
                return folder
        return self.default_synset

    def _meta_for(self, path: Path, rel: str) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.mapping_meta:
            parts = rel.split("/")
            for i in range(1, len(parts) + 1):  # shallow first so the deepest entry wins
                meta.update(self.mapping_meta.get("/".join(parts[:i]), {}))
        if self.sidecars:
            for side in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
                if not side.is_file():
                    continue
                try:
                    data = json.loads(side.read_text(encoding="utf-8"))
                    if not isinstance(data, dict):
                        raise ValueError("not a JSON object")
                except (OSError, ValueError) as exc:
                    self.report.warn("bad_sidecar", rel, f"{side.name}: {exc}")
                    break
                meta.update({k: str(data[k]) for k in SIDECAR_FIELDS if data.get(k) not in (None, "")})
                break
        return meta

    # -- walking -------------------------------------------------------------------------------------
    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve(strict=True).is_relative_to(self.root_resolved)
        except (OSError, RuntimeError):
            return False

    def files(self) -> Iterator[tuple[Path, str]]:
        """(absolute path, root-relative POSIX path) of each image file, sorted, symlinks checked."""

        def unreadable(exc: OSError) -> None:  # os.walk would skip a folder it cannot list silently
            where = Path(exc.filename or self.root)
            rel = where.relative_to(self.root).as_posix() if where.is_relative_to(self.root) else str(where)
            self.report.skip("unreadable", rel or ".", exc.strerror or type(exc).__name__)

        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False, onerror=unreadable):
            dirnames.sort()
            base = Path(dirpath)
            for d in list(dirnames):
                full = base / d
                if full.is_symlink():  # not followed; its target is either walked already or outside
                    dirnames.remove(d)
                    if not self._inside(full):
                        self.report.skip(
                            "outside_root",
                            full.relative_to(self.root).as_posix(),
                            "symlink leads outside the folder",
                        )
            for fname in sorted(filenames):
                path = base / fname
                rel = path.relative_to(self.root).as_posix()
                if path.suffix.lower() not in self.extensions:
                    if path.suffix.lower() != ".json":
                        self.report.skipped["not_image_extension"] += 1
                    continue
                if path.is_symlink() and not self._inside(path):
                    if path.exists():
                        self.report.skip("outside_root", rel, "symlink leads outside the folder")
                    else:
                        self.report.skip("broken_link", rel, "symlink to nothing")
                    continue
                yield path, rel

    def refs(
        self,
        synset_ids: Iterable[str] | None = None,
        per_synset: int | None = None,
        hierarchy: Any = None,
    ) -> Iterator[CandidateRef]:
        """A ref per image file, optionally only for `synset_ids` and at most `per_synset` per synset."""
        wanted = set(synset_ids) if synset_ids is not None else None
        known = known_to(hierarchy)
        counts: Counter[str] = Counter()
        for path, rel in self.files():
            sid = self._synset_for(rel)
            if sid is None:
                self.report.skip("no_synset", rel)
                continue
            if not known(sid):
                self.report.skip("unknown_synset", rel, sid)
                continue
            if wanted is not None and sid not in wanted:
                continue
            if per_synset is not None and counts[sid] >= per_synset:
                continue
            meta = self._meta_for(path, rel)
            lic_raw = meta.get("license") or self.default_license
            counts[sid] += 1
            self.report.yielded += 1
            yield CandidateRef(
                synset_id=sid,
                source=self.name,
                url=path.as_uri(),
                key=rel,
                page_url=meta.get("page_url"),
                license=normalize_license(lic_raw),
                author=meta.get("author") or self.default_author,
                caption=meta.get("caption"),
                extra={"relpath": rel, "license_raw": lic_raw},
            )
