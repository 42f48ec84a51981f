"""ILSVRC (classic devkit) and Kaggle file formats: parse into `Submission`/`GroundTruth`, and write back.

What is accepted (anything else is an `InputError` naming line, field and reason):

* classic submission: one line per test image, in alphabetical file-name order; up to 5
  whitespace-separated 1-based class ids (ILSVRC2012_ID); with `boxes=True` each id is followed by
  `xmin ymin xmax ymax`. A blank line is an image with no guess; blank lines after the last image are ignored.
* Kaggle submission: header `ImageId,PredictionString`, then one row per test image in any order;
  PredictionString holds up to 5 wnids (`boxes=False`) or up to 5 groups `wnid xmin ymin xmax ymax`
  (`boxes=True`); empty means no guess. Every test image must appear exactly once; blank lines are ignored.
  An ImageId may be written with or without its file extension (`test_00000001.JPEG` or `test_00000001`, as
  Kaggle's and the project's own solution files write it), whichever the test image ids use.
* ground truth: `LOC_val_solution.csv` (one or more `wnid xmin ymin xmax ymax` per image, one class per
  image) or `ILSVRC2012_validation_ground_truth.txt` (one class id per line, file-name order).
* coordinates: any number Python's `float` reads that is finite and >= 0, with xmin <= xmax and ymin <= ymax.
* files: UTF-8 (a BOM is dropped), LF/CRLF/CR line ends, at most `max_bytes`.

Fields are counted from 1: in the classic format the token's position on its line; in the CSV formats
ImageId is field 1 and the PredictionString tokens are fields 2, 3, ...
The caller says whether boxes are expected: `1 10 20 30 40` is five guesses or one box, and guessing
would silently mis-score a file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain, pairwise
from typing import Literal

import numpy as np

from synsetforge.benchmark._text import DEFAULT_MAX_BYTES, Source, read_bytes, read_lines, show, where
from synsetforge.benchmark.data import MAX_GUESSES, ClassList, GroundTruth, Submission, check_image_ids
from synsetforge.errors import InputError

Format = Literal["auto", "classic", "kaggle"]
CSV_HEADER = "ImageId,PredictionString"
_Resolve = Callable[[str], "int | str"]


# -- shared token machinery -------------------------------------------------------------------------


class _Guesses:
    """Flat guesses of many rows: class index, box, owning row and slot; built without a loop per token."""

    def __init__(
        self, ids: np.ndarray, coords: np.ndarray | None, row: np.ndarray, slot: np.ndarray, n_rows: int
    ):
        self.ids, self.coords, self.row, self.slot, self.n_rows = ids, coords, row, slot, n_rows

    def dense(self, width: int) -> tuple[np.ndarray, np.ndarray | None]:
        labels = np.full((self.n_rows, width), -1, dtype=np.int32)
        labels[self.row, self.slot] = self.ids
        if self.coords is None:
            return labels, None
        boxes = np.full((self.n_rows, width, 4), np.nan)
        boxes[self.row, self.slot] = self.coords
        return labels, boxes


_ODD_WHITESPACE = "\t\x0b\x0c\x1c\x1d\x1e\x1f"


def tokenize(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """All whitespace-separated tokens of `texts` in one flat list, and the token count of each text.

    Splitting 100,000 short strings one by one costs three times one split of their concatenation, so
    plain single-space-separated ASCII (what tools write) takes the bulk path; anything else, or a count
    that does not add up, falls back to splitting each text.
    """
    joined = "\n".join(texts)
    if (
        joined.isascii()
        and not any(c in joined for c in _ODD_WHITESPACE)
        and "  " not in joined
        and " \n" not in joined
        and "\n " not in joined
        and not joined.startswith(" ")
        and not joined.endswith(" ")
    ):
        flat = joined.split()
        counts = np.fromiter((t.count(" ") + 1 if t else 0 for t in texts), dtype=np.int64, count=len(texts))
        if int(counts.sum()) == len(flat):
            return flat, counts
    rows = [t.split() for t in texts]
    return list(chain.from_iterable(rows)), np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))


def _parse_tokens(
    texts: list[str],
    line_numbers: np.ndarray,
    first_field: int,
    lookup: dict[str, int],
    resolve: _Resolve,
    boxes: bool,
    max_guesses: int | None,
    what: str,
    noun: str = "guesses",
) -> _Guesses:
    """Turn per-row texts into flat arrays; on the first bad token raise with line and field."""
    n_rows = len(texts)
    width = 5 if boxes else 1
    flat, counts = tokenize(texts)
    bad = counts % width != 0
    if max_guesses is not None:
        bad |= counts > width * max_guesses
    if bad.any():
        r = int(np.argmax(bad))
        c, line = int(counts[r]), int(line_numbers[r])
        if c % width:
            raise InputError(
                f"{where(what, line)}: {c} fields do not form groups of 5 (class xmin ymin xmax ymax)"
            )
        field = first_field + width * (max_guesses or 0)
        raise InputError(f"{where(what, line, field)}: {c // width} {noun}; at most {max_guesses} allowed")
    n_guesses = counts // width
    id_tokens = flat[::5] if boxes else flat
    get = lookup.get
    ids = np.array([get(t, -1) for t in id_tokens], dtype=np.int64)
    row = np.repeat(np.arange(n_rows), n_guesses)
    slot = np.arange(len(ids)) - np.repeat(np.cumsum(n_guesses) - n_guesses, n_guesses)

    def locate(g: int, k: int = 0) -> str:
        return where(what, int(line_numbers[row[g]]), first_field + int(slot[g]) * width + k)

    for unknown in np.flatnonzero(ids < 0).tolist():
        value = resolve(id_tokens[unknown])
        if isinstance(value, str):
            raise InputError(f"{locate(unknown)}: {value}")
        ids[unknown] = value
    if not boxes:
        return _Guesses(ids, None, row, slot, n_rows)

    coords = np.empty((len(ids), 4))
    try:
        for k in range(4):
            coords[:, k] = np.fromiter(map(float, flat[k + 1 :: 5]), dtype=np.float64, count=len(ids))
    except ValueError:
        for i, tok in enumerate(flat):
            if i % 5:
                try:
                    float(tok)
                except ValueError:
                    raise InputError(f"{locate(i // 5, i % 5)}: {show(tok)} is not a number") from None
    bad_coord = ~np.isfinite(coords) | (coords < 0)
    inverted = (coords[:, 0] > coords[:, 2]) | (coords[:, 1] > coords[:, 3])
    bad_guess = bad_coord.any(axis=1) | inverted
    if bad_guess.any():
        g = int(np.argmax(bad_guess))
        if bad_coord[g].any():
            k = int(np.argmax(bad_coord[g]))
            tok = flat[g * 5 + k + 1]
            reason = "is negative" if coords[g, k] < 0 else "is not a finite number"
            raise InputError(f"{locate(g, k + 1)}: {show(tok)} {reason}")
        k = 0 if coords[g, 0] > coords[g, 2] else 1
        lo, hi = ("xmin", "xmax") if k == 0 else ("ymin", "ymax")
        hi_tok, lo_tok = show(flat[g * 5 + k + 3]), show(flat[g * 5 + k + 1])
        raise InputError(f"{locate(g, k + 3)}: {hi} {hi_tok} is less than {lo} {lo_tok}")
    return _Guesses(ids, coords, row, slot, n_rows)


@lru_cache(maxsize=8)
def _numeric_lookup(n_classes: int) -> dict[str, int]:
    return {str(i + 1): i for i in range(n_classes)}


def _numeric_resolver(n_classes: int) -> _Resolve:
    """Non-canonical spellings of an ILSVRC2012_ID ('007') are accepted; anything else explains itself."""

    def resolve(tok: str) -> int | str:
        if not (tok.isascii() and tok.isdigit()):
            return f"{show(tok)} is not an integer class id (1..{n_classes})"
        value = int(tok)
        if not 1 <= value <= n_classes:
            return f"class id {value} is out of range 1..{n_classes}"
        return value - 1

    return resolve


def _wnid_resolver(classes: ClassList, boxes: bool) -> _Resolve:
    def resolve(tok: str) -> int | str:
        hint = ""
        if tok.replace(".", "", 1).isdigit():
            hint = f" (the CSV format takes wnids such as {classes.wnids[0]})"
            if not boxes:
                hint = " (a box coordinate? then parse with boxes=True / --boxes)"
        return f"{show(tok)} is not a class id of this challenge{hint}"

    return resolve


def _file_order(image_ids: tuple[str, ...]) -> list[int] | None:
    """Positions of the images in alphabetical file-name order, or None when already sorted."""
    if all(a < b for a, b in pairwise(image_ids)):
        return None
    return sorted(range(len(image_ids)), key=image_ids.__getitem__)


def _csv_fields(line: str, line_number: int, what: str) -> tuple[str, str]:
    image, sep, pred = line.partition(",")
    if '"' in line or "," in pred:
        fields = next(csv.reader([line]))
        if len(fields) != 2:
            raise InputError(
                f"{where(what, line_number)}: expected 2 comma-separated fields (ImageId,PredictionString), "
                f"found {len(fields)}"
            )
        image, pred = fields
    elif not sep:
        raise InputError(f"{where(what, line_number)}: expected 'ImageId,PredictionString', found no comma")
    return image.strip(), pred


def _check_header(lines: list[str], what: str) -> None:
    if not lines:
        raise InputError(f"{what}: the file is empty; expected the header '{CSV_HEADER}'")
    if [h.strip().lower() for h in lines[0].split(",")] != ["imageid", "predictionstring"]:
        raise InputError(f"{where(what, 1)}: expected the header '{CSV_HEADER}', found {show(lines[0])}")


def _n_classes(classes: ClassList | int) -> int:
    return classes if isinstance(classes, int) else len(classes)


# -- submissions ------------------------------------------------------------------------------------


def detect_format(first_line: str) -> Literal["classic", "kaggle"]:
    """A file starting with the `ImageId,PredictionString` header is Kaggle's; anything else is classic."""
    head = first_line.lstrip("\ufeff").strip().lower().replace(" ", "")
    return "kaggle" if head.startswith("imageid,") else "classic"


def parse_submission(
    source: Source,
    classes: ClassList,
    image_ids: Sequence[str],
    *,
    boxes: bool,
    format: Format = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_guesses: int = MAX_GUESSES,
) -> Submission:
    """Parse either format (auto-detected from the header); rows follow `image_ids` order."""
    lines = read_lines(source, max_bytes, "submission")
    fmt = format if format != "auto" else detect_format(lines[0] if lines else "")
    if fmt == "kaggle":
        return _kaggle_submission(lines, classes, image_ids, boxes, max_guesses)
    return _classic_submission(lines, len(classes), image_ids, boxes, max_guesses)


def parse_classic_submission(
    source: Source,
    classes: ClassList | int,
    image_ids: Sequence[str],
    *,
    boxes: bool,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_guesses: int = MAX_GUESSES,
) -> Submission:
    """ILSVRC devkit format; line k is the k-th image in file-name order, rows follow `image_ids` order."""
    lines = read_lines(source, max_bytes, "submission")
    return _classic_submission(lines, _n_classes(classes), image_ids, boxes, max_guesses)


def parse_kaggle_submission(
    source: Source,
    classes: ClassList,
    image_ids: Sequence[str],
    *,
    boxes: bool,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_guesses: int = MAX_GUESSES,
) -> Submission:
    """Kaggle `ImageId,PredictionString` format; rows follow `image_ids` order."""
    lines = read_lines(source, max_bytes, "submission")
    return _kaggle_submission(lines, classes, image_ids, boxes, max_guesses)


def _classic_rows(lines: list[str], n: int, what: str) -> list[str]:
    while len(lines) > n and not lines[-1].strip():
        lines.pop()
    if len(lines) != n:
        raise InputError(
            f"{what}: {len(lines):,} lines for {n:,} test images; the classic format has one line per image, "
            "in file-name order"
        )
    return lines


def _classic_submission(
    lines: list[str], n_classes: int, image_ids: Sequence[str], boxes: bool, max_guesses: int
) -> Submission:
    ids = check_image_ids(image_ids, "image ids")
    rows = _classic_rows(lines, len(ids), "submission")
    guesses = _parse_tokens(
        rows,
        np.arange(1, len(ids) + 1),
        1,
        _numeric_lookup(n_classes),
        _numeric_resolver(n_classes),
        boxes,
        max_guesses,
        "submission",
    )
    labels, bx = guesses.dense(max_guesses)
    order = _file_order(ids)
    if order is not None:
        labels[order] = labels.copy()
        if bx is not None:
            bx[order] = bx.copy()
    return Submission(ids, labels, bx)


def _csv_rows(lines: list[str], what: str) -> tuple[list[str], list[str], np.ndarray]:
    """(ImageId, PredictionString, line number) of each non-blank row after the header.

    The common case (no quotes, one comma per row) is split in bulk; anything else goes through the
    per-line path, which also understands CSV quoting.
    """
    _check_header(lines, what)
    body = lines[1:]
    parts = [line.partition(",") for line in body]
    if all(
        sep and '"' not in line and "," not in pred for line, (_, sep, pred) in zip(body, parts, strict=True)
    ):
        return [p[0].strip() for p in parts], [p[2] for p in parts], np.arange(2, len(body) + 2)
    images: list[str] = []
    preds: list[str] = []
    line_numbers: list[int] = []
    for ln, line in enumerate(body, start=2):
        if not line or line.isspace():
            continue
        image, pred = _csv_fields(line, ln, what)
        images.append(image)
        preds.append(pred)
        line_numbers.append(ln)
    return images, preds, np.asarray(line_numbers, dtype=np.int64)


def _first_repeat(keys: Sequence[object]) -> tuple[int, int]:
    """Positions (first, again) of the first key listed twice."""
    first: dict[object, int] = {}
    for k, key in enumerate(keys):
        if key in first:
            return first[key], k
        first[key] = k
    raise AssertionError("no repeated image")


def _repeat_message(
    images: list[str], lns: np.ndarray, what: str, keys: Sequence[object] | None = None
) -> str:
    """The first image given twice (``keys``: what identifies an image, when not its spelling)."""
    first, again = _first_repeat(images if keys is None else keys)
    at = where(what, int(lns[again]), 1)
    return f"{at}: image {show(images[again])} already appeared on line {lns[first]}"


def _image_finder(ids: Sequence[str]) -> Callable[[str], int]:
    """Position of an ImageId among ``ids`` (-1 if absent), with or without the file extension.

    ``test_00000001`` finds ``test_00000001.JPEG`` and the other way round; a stem shared by two ids
    (``a.JPEG`` and ``a.png``) is ambiguous and must be written in full.
    """
    exact = {image: i for i, image in enumerate(ids)}
    by_stem: dict[str, int] = {}
    for i, image in enumerate(ids):
        stem = _stem(image)
        if stem != image and stem not in exact:
            by_stem[stem] = -1 if stem in by_stem else i

    def find(image: str) -> int:
        i = exact.get(image)
        if i is None:
            i = by_stem.get(image)
        if i is None:
            stem = _stem(image)
            i = exact.get(stem, -1) if stem != image else -1
        return i

    return find


def _stem(name: str) -> str:
    """``name`` without a final ``.ext`` (1 to 5 letters or digits), else ``name``."""
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and 0 < len(ext) <= 5 and ext.isalnum() else name


def _kaggle_submission(
    lines: list[str], classes: ClassList, image_ids: Sequence[str], boxes: bool, max_guesses: int
) -> Submission:
    what = "submission"
    ids = check_image_ids(image_ids, "image ids")
    images, preds, lns = _csv_rows(lines, what)
    find = _image_finder(ids)
    targets = np.array([find(image) for image in images], dtype=np.int64)
    if (targets < 0).any():
        k = int(np.argmax(targets < 0))
        raise InputError(
            f"{where(what, int(lns[k]), 1)}: {show(images[k])} is not a test image of this challenge"
        )
    seen = np.bincount(targets, minlength=len(ids))
    if (seen > 1).any():
        raise InputError(_repeat_message(images, lns, what, targets.tolist()))
    if (seen == 0).any():
        missing = [ids[i] for i in np.flatnonzero(seen == 0)[:3].tolist()]
        sample = ", ".join(show(m) for m in missing)
        raise InputError(f"{what}: {int((seen == 0).sum()):,} test images have no row, e.g. {sample}")
    guesses = _parse_tokens(
        preds, lns, 2, classes.index, _wnid_resolver(classes, boxes), boxes, max_guesses, what
    )
    labels, bx = guesses.dense(max_guesses)
    out_labels = np.empty_like(labels)
    out_labels[targets] = labels
    out_boxes = None
    if bx is not None:
        out_boxes = np.empty_like(bx)
        out_boxes[targets] = bx
    return Submission(ids, out_labels, out_boxes)


# -- ground truth and side files ----------------------------------------------------------------------


def parse_ground_truth_csv(
    source: Source, classes: ClassList, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> GroundTruth:
    """`LOC_val_solution.csv`: the file defines the image set; rows come back in file-name order."""
    what = "ground truth"
    images, preds, lns = _csv_rows(read_lines(source, max_bytes, what), what)
    if not images:
        raise InputError(f"{what}: no images")
    for k, image in enumerate(images):
        if not image:
            raise InputError(f"{where(what, int(lns[k]), 1)}: empty ImageId")
    if len(set(images)) != len(images):
        raise InputError(_repeat_message(images, lns, what))
    g = _parse_tokens(preds, lns, 2, classes.index, _wnid_resolver(classes, True), True, None, what)
    counts = np.bincount(g.row, minlength=len(preds))
    if (counts == 0).any():
        k = int(np.argmax(counts == 0))
        raise InputError(
            f"{where(what, int(lns[k]), 2)}: no box; each image needs 'wnid xmin ymin xmax ymax'"
        )
    starts = np.cumsum(counts) - counts
    image_label = g.ids[starts]
    mixed = g.ids != np.repeat(image_label, counts)
    if mixed.any():
        k = int(np.argmax(mixed))
        at = where(what, int(lns[g.row[k]]), 2 + 5 * int(g.slot[k]))
        raise InputError(
            f"{at}: class {classes.wnids[g.ids[k]]} differs from the image's first box "
            f"({classes.wnids[image_label[g.row[k]]]}); one class per image"
        )
    order = np.asarray(sorted(range(len(images)), key=images.__getitem__), dtype=np.int64)
    sorted_counts = counts[order]
    sorted_starts = np.cumsum(sorted_counts) - sorted_counts
    gather = np.repeat(starts[order] - sorted_starts, sorted_counts) + np.arange(len(g.ids))
    assert g.coords is not None
    return GroundTruth(
        tuple(images[i] for i in order),
        image_label[order],
        len(classes),
        g.coords[gather],
        np.concatenate([[0], np.cumsum(sorted_counts)]),
        g.ids[gather],
    )


def parse_classic_ground_truth(
    source: Source, classes: ClassList | int, image_ids: Sequence[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> GroundTruth:
    """`ILSVRC2012_validation_ground_truth.txt`: one ILSVRC2012_ID per line, in file-name order."""
    what = "ground truth"
    n_classes = _n_classes(classes)
    ids = check_image_ids(image_ids, "image ids")
    rows = _classic_rows(read_lines(source, max_bytes, what), len(ids), what)
    g = _parse_tokens(
        rows,
        np.arange(1, len(ids) + 1),
        1,
        _numeric_lookup(n_classes),
        _numeric_resolver(n_classes),
        False,
        1,
        what,
        "class ids",
    )
    if len(g.ids) != len(ids):
        empty = np.ones(len(ids), dtype=bool)
        empty[g.row] = False
        raise InputError(f"{where(what, int(np.argmax(empty)) + 1)}: no class id")
    labels = g.ids.astype(np.int32)
    order = _file_order(ids)
    if order is not None:
        labels[order] = labels.copy()
    return GroundTruth(ids, labels, n_classes)


def parse_ground_truth(
    source: Source,
    classes: ClassList,
    image_ids: Sequence[str] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> GroundTruth:
    """Either ground-truth format: a CSV header means LOC_val_solution.csv, else one class id per line."""
    data = read_bytes(source, max_bytes, "ground truth")
    first = data[:200].lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    if detect_format(first) == "kaggle":
        return parse_ground_truth_csv(data, classes, max_bytes=max_bytes)
    if image_ids is None:
        raise InputError("ground truth: a file of class ids, one per line, needs the list of test image ids")
    return parse_classic_ground_truth(data, classes, image_ids, max_bytes=max_bytes)


def parse_image_ids(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, ...]:
    """A list of test images, one id (file name) per line; blank lines are skipped."""
    ids = tuple(line.strip() for line in read_lines(source, max_bytes, "image ids") if line.strip())
    if not ids:
        raise InputError("image ids: the list is empty")
    return check_image_ids(ids, "image ids")


def parse_synset_mapping(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ClassList:
    """`LOC_synset_mapping.txt` (`n01440764 tench, Tinca tinca`): line order is ILSVRC2012_ID order."""
    what = "synset mapping"
    wnids: list[str] = []
    names: list[str] = []
    first_line: dict[str, int] = {}
    for ln, line in enumerate(read_lines(source, max_bytes, what), start=1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        wnid = parts[0]
        if "," in wnid:
            raise InputError(f"{where(what, ln, 1)}: {show(wnid)} is not a class id (it holds a comma)")
        if wnid in first_line:
            raise InputError(f"{where(what, ln, 1)}: {wnid} already appeared on line {first_line[wnid]}")
        first_line[wnid] = ln
        wnids.append(wnid)
        names.append(parts[1].strip() if len(parts) > 1 else "")
    if not wnids:
        raise InputError(f"{what}: no classes")
    return ClassList(tuple(wnids), tuple(names))


def parse_exclusion_list(
    source: Source, image_ids: Sequence[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Images to leave out (ILSVRC-2015 blacklist): one per line, an image id or a 1-based file-order index.

    Returns a bool mask in `image_ids` order. An exact image id wins over reading the line as an index.
    """
    what = "exclusion list"
    ids = check_image_ids(image_ids, "image ids")
    position = {image: i for i, image in enumerate(ids)}
    order = _file_order(ids) or list(range(len(ids)))
    mask = np.zeros(len(ids), dtype=bool)
    for ln, line in enumerate(read_lines(source, max_bytes, what), start=1):
        tok = line.strip()
        if not tok:
            continue
        if tok in position:
            mask[position[tok]] = True
        elif tok.isascii() and tok.isdigit() and 1 <= int(tok) <= len(ids):
            mask[order[int(tok) - 1]] = True
        else:
            raise InputError(
                f"{where(what, ln, 1)}: {show(tok)} is neither a test image nor an index 1..{len(ids)}"
            )
    return mask


# -- writers ---------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _guess_fields(labels: np.ndarray, boxes: np.ndarray | None, name: Callable[[int], str]) -> list[str]:
    out: list[str] = []
    for k, label in enumerate(labels.tolist()):
        if label < 0:
            continue
        out.append(name(label))
        if boxes is not None:
            if np.isnan(boxes[k]).any():
                raise InputError("cannot write a localization file: a guess has no box")
            out.extend(_num(v) for v in boxes[k].tolist())
    return out


def format_classic_submission(sub: Submission, *, boxes: bool) -> bytes:
    """The devkit text: one line per image in file-name order, 1-based ids (and boxes)."""
    order = _file_order(sub.image_ids) or range(len(sub.image_ids))
    bx = sub.boxes if boxes else None
    if boxes and bx is None:
        raise InputError("cannot write a localization file: the submission has no boxes")
    lines = [
        " ".join(_guess_fields(sub.labels[i], None if bx is None else bx[i], lambda c: str(c + 1)))
        for i in order
    ]
    return ("\n".join(lines) + "\n").encode()


def format_kaggle_submission(sub: Submission, classes: ClassList, *, boxes: bool) -> bytes:
    """Kaggle CSV: header, then `ImageId,PredictionString` rows in `sub.image_ids` order."""
    bx = sub.boxes if boxes else None
    if boxes and bx is None:
        raise InputError("cannot write a localization file: the submission has no boxes")
    lines = [CSV_HEADER]
    for i, image in enumerate(sub.image_ids):
        fields = _guess_fields(sub.labels[i], None if bx is None else bx[i], classes.wnids.__getitem__)
        lines.append(f"{image},{' '.join(fields)}")
    return ("\n".join(lines) + "\n").encode()


def format_ground_truth_csv(gt: GroundTruth, classes: ClassList) -> bytes:
    """`LOC_val_solution.csv` style; needs boxes."""
    if gt.boxes is None or gt.box_offsets is None or gt.box_labels is None:
        raise InputError("cannot write LOC_val_solution.csv: the ground truth has no boxes")
    lines = [CSV_HEADER]
    offsets = gt.box_offsets.tolist()
    for i, image in enumerate(gt.image_ids):
        fields: list[str] = []
        for b in range(offsets[i], offsets[i + 1]):
            fields.append(classes.wnids[gt.box_labels[b]])
            fields.extend(_num(v) for v in gt.boxes[b].tolist())
        lines.append(f"{image},{' '.join(fields)}")
    return ("\n".join(lines) + "\n").encode()
