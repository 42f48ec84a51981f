"""Parsing ILSVRC/Kaggle submission and ground-truth files: dense arrays out, precise errors for bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from synsetforge.benchmark.data import ClassList, GroundTruth, Submission
from synsetforge.benchmark.formats import (
    detect_format,
    format_classic_submission,
    format_ground_truth_csv,
    format_kaggle_submission,
    parse_classic_ground_truth,
    parse_classic_submission,
    parse_exclusion_list,
    parse_ground_truth_csv,
    parse_kaggle_submission,
    parse_submission,
    parse_synset_mapping,
    tokenize,
)
from synsetforge.errors import InputError, NotFoundError

CLASSES = ClassList(("n01440764", "n01443537", "n01484850", "n01491361"))
# deliberately not in file-name order: rows of parsed arrays follow this order, lines follow sorted order
IMAGES = ("val_3", "val_1", "val_2")
HEADER = "ImageId,PredictionString\n"


def classic(text: str, *, boxes: bool = False, **kw: object) -> Submission:
    return parse_classic_submission(text.encode(), CLASSES, IMAGES, boxes=boxes, **kw)


def kaggle(text: str, *, boxes: bool = True, **kw: object) -> Submission:
    return parse_kaggle_submission((HEADER + text).encode(), CLASSES, IMAGES, boxes=boxes, **kw)


def error_of(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(InputError) as e:
        fn(*args, **kw)  # type: ignore[operator]
    return str(e.value)


# -- classic ---------------------------------------------------------------------------------------


def test_classic_lines_follow_file_name_order_and_pad_with_minus_one() -> None:
    # line 1 -> val_1, line 2 -> val_2, line 3 -> val_3; ids are 1-based
    sub = classic("1 2\n4 4 4\n\n")
    assert sub.image_ids == IMAGES
    assert sub.labels.dtype == np.int32
    assert sub.labels.tolist() == [
        [-1, -1, -1, -1, -1],  # val_3: blank line = no guess
        [0, 1, -1, -1, -1],  # val_1
        [3, 3, 3, -1, -1],  # val_2: duplicates kept
    ]
    assert sub.boxes is None


def test_classic_localization_boxes() -> None:
    sub = classic("1 0 0 9 9 2 1.5 2 3 4\n3 5 5 5 5\n4 0 0 0 0\n", boxes=True)
    assert sub.boxes is not None and sub.boxes.shape == (3, 5, 4)
    assert sub.labels[1].tolist() == [0, 1, -1, -1, -1]  # val_1
    assert sub.boxes[1, 0].tolist() == [0, 0, 9, 9]
    assert sub.boxes[1, 1].tolist() == [1.5, 2, 3, 4]
    assert np.isnan(sub.boxes[1, 2:]).all()
    assert sub.boxes[2, 0].tolist() == [5, 5, 5, 5]  # val_2: a one-pixel box is fine


def test_classic_crlf_bom_tabs_and_trailing_blank_lines() -> None:
    data = b"\xef\xbb\xbf1\t2\r\n3  4\r\n\r\n\r\n\r\n"
    sub = parse_classic_submission(data, CLASSES, IMAGES, boxes=False)
    assert sub.labels[1, :2].tolist() == [0, 1]
    assert sub.labels[2, :2].tolist() == [2, 3]
    assert (sub.labels[0] == -1).all()
    # old Mac line ends too
    sub = parse_classic_submission(b"1\r2\r3\r", CLASSES, IMAGES, boxes=False)
    assert sub.labels[:, 0].tolist() == [2, 0, 1]


def test_classic_accepts_leading_zeros_and_path_and_stream(tmp_path: Path) -> None:
    path = tmp_path / "sub.txt"
    path.write_bytes(b"001\n2\n3\n")
    assert parse_classic_submission(path, CLASSES, IMAGES, boxes=False).labels[1, 0] == 0
    stream = io.BytesIO(b"4\n2\n3\n")
    assert parse_classic_submission(stream, 4, IMAGES, boxes=False).labels[1, 0] == 3


@pytest.mark.parametrize(
    ("text", "boxes", "message"),
    [
        ("1\n2\n", False, "submission: 2 lines for 3 test images"),
        ("1\n2\n3\n4\n", False, "submission: 4 lines for 3 test images"),
        ("1\n2 n0x\n3\n", False, "line 2, field 2: 'n0x' is not an integer class id (1..4)"),
        ("1\n2\n3 5\n", False, "line 3, field 2: class id 5 is out of range 1..4"),
        ("0\n2\n3\n", False, "line 1, field 1: class id 0 is out of range 1..4"),
        ("1\n2.0\n3\n", False, "line 2, field 1: '2.0' is not an integer class id"),
        ("1\n-2\n3\n", False, "line 2, field 1: '-2' is not an integer class id"),
        ("1 2 3 4 1 2\n2\n3\n", False, "line 1, field 6: 6 guesses; at most 5 allowed"),
        ("1 0 0 1\n2 0 0 1 1\n3 0 0 1 1\n", True, "line 1: 4 fields do not form groups of 5"),
        ("1 0 0 1 1\n2 0 x 1 1\n3 0 0 1 1\n", True, "line 2, field 3: 'x' is not a number"),
        ("1 0 0 1 1\n2 0 0 1 1 3 0 -1 1 1\n3 0 0 1 1\n", True, "line 2, field 8: '-1' is negative"),
        ("1 0 0 1 1\n2 0 0 1 1\n3 0 nan 1 1\n", True, "line 3, field 3: 'nan' is not a finite number"),
        ("1 0 0 1 inf\n2 0 0 1 1\n3 0 0 1 1\n", True, "line 1, field 5: 'inf' is not a finite number"),
        ("1 9 0 1 1\n2 0 0 1 1\n3 0 0 1 1\n", True, "line 1, field 4: xmax '1' is less than xmin '9'"),
        ("1 0 9 1 1\n2 0 0 1 1\n3 0 0 1 1\n", True, "line 1, field 5: ymax '1' is less than ymin '9'"),
        ("1 0 0 1 1 " * 6 + "\n2\n3\n", True, "line 1, field 26: 6 guesses; at most 5 allowed"),
    ],
)
def test_classic_errors_name_line_field_and_reason(text: str, boxes: bool, message: str) -> None:
    assert message in error_of(classic, text, boxes=boxes)


def test_max_guesses_is_a_parameter() -> None:
    assert "line 1, field 3: 3 guesses; at most 2 allowed" in error_of(
        classic, "1 2 3\n1\n1\n", max_guesses=2
    )
    assert classic("1 2\n1\n1\n", max_guesses=2).labels.shape == (3, 2)


def test_encoding_and_binary_errors() -> None:
    msg = error_of(parse_classic_submission, b"1\n2 \xff\n3\n", CLASSES, IMAGES, boxes=False)
    assert msg.startswith("submission: line 2, column 3: byte 0xff is not valid UTF-8")
    msg = error_of(parse_classic_submission, "1\n2\n3\n".encode("utf-16"), CLASSES, IMAGES, boxes=False)
    assert "UTF-16" in msg
    msg = error_of(parse_classic_submission, b"1\n2\x003\n3\n", CLASSES, IMAGES, boxes=False)
    assert "line 2: contains a NUL byte" in msg


def test_size_limit_applies_to_bytes_paths_and_streams(tmp_path: Path) -> None:
    data = b"1\n2\n3\n"
    assert "larger than the limit of 5 bytes" in error_of(
        parse_classic_submission, data, CLASSES, IMAGES, boxes=False, max_bytes=5
    )
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    assert "is 6 bytes; the limit is 5" in error_of(
        parse_classic_submission, path, CLASSES, IMAGES, boxes=False, max_bytes=5
    )
    assert "larger than the limit" in error_of(
        parse_classic_submission, io.BytesIO(data), CLASSES, IMAGES, boxes=False, max_bytes=5
    )
    assert parse_classic_submission(data, CLASSES, IMAGES, boxes=False, max_bytes=6).labels[0, 0] == 2


def test_missing_file_and_str_source(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        parse_classic_submission(tmp_path / "nope.txt", CLASSES, IMAGES, boxes=False)
    with pytest.raises(TypeError):
        parse_classic_submission("1\n2\n3\n", CLASSES, IMAGES, boxes=False)


# -- Kaggle ------------------------------------------------------------------------------------------


def test_kaggle_localization_rows_in_any_order() -> None:
    sub = kaggle(
        "val_2,n01491361 10 20 30 40\nval_3,\nval_1,n01440764 0 0 9 9 n01443537 1 2 3 4 n01440764 5 5 6 6\n"
    )
    assert sub.labels.tolist() == [[-1] * 5, [0, 1, 0, -1, -1], [3, -1, -1, -1, -1]]
    assert sub.boxes is not None
    assert sub.boxes[2, 0].tolist() == [10, 20, 30, 40]
    assert sub.boxes[1, 2].tolist() == [5, 5, 6, 6]
    assert np.isnan(sub.boxes[0]).all()


def test_kaggle_classification_only_quoted_fields_and_blank_lines() -> None:
    sub = kaggle('val_1,n01440764 n01484850\n\n"val_2","n01491361"\nval_3,n01443537\n', boxes=False)
    assert sub.labels[:, :2].tolist() == [[1, -1], [0, 2], [3, -1]]


@pytest.mark.parametrize(
    ("text", "boxes", "message"),
    [
        ("val_1,n0x\nval_2,\nval_3,\n", False, "line 2, field 2: 'n0x' is not a class id of this challenge"),
        (
            "val_1,\nval_2,n01440764 5\nval_3,\n",
            False,
            "line 3, field 3: '5' is not a class id of this challenge (a box coordinate? then parse with boxes=True",
        ),
        (
            "val_1,\nval_2,7 0 0 1 1\nval_3,\n",
            True,
            "line 3, field 2: '7' is not a class id of this challenge (the CSV format takes wnids such as n01440764)",
        ),
        ("val_1,\nval_9,\nval_3,\n", False, "line 3, field 1: 'val_9' is not a test image of this challenge"),
        (
            "val_1,\nval_2,\nval_1,\nval_3,\n",
            False,
            "line 4, field 1: image 'val_1' already appeared on line 2",
        ),
        ("val_1,\nval_3,\n", False, "submission: 1 test images have no row, e.g. 'val_2'"),
        ("val_1,\nval_2\nval_3,\n", False, "line 3: expected 'ImageId,PredictionString', found no comma"),
        ("val_1,\nval_2,a,b\nval_3,\n", False, "line 3: expected 2 comma-separated fields"),
        (
            "val_1,n01440764 0 0 5 5 n01440764 0 0 5\nval_2,\nval_3,\n",
            True,
            "line 2: 9 fields do not form groups of 5",
        ),
        ("val_1,\nval_2,n01440764 0 0 5 x\nval_3,\n", True, "line 3, field 6: 'x' is not a number"),
        (
            "val_1,\nval_2,\nval_3,n01440764 6 0 5 5\n",
            True,
            "line 4, field 5: xmax '5' is less than xmin '6'",
        ),
        ("val_1," + "n01440764 0 0 5 5 " * 6 + "\nval_2,\nval_3,\n", True, "line 2, field 27: 6 guesses"),
    ],
)
def test_kaggle_errors_name_line_field_and_reason(text: str, boxes: bool, message: str) -> None:
    assert message in error_of(kaggle, text, boxes=boxes)


def test_kaggle_header_is_required() -> None:
    msg = error_of(parse_kaggle_submission, b"val_1,n01440764\n", CLASSES, IMAGES, boxes=False)
    assert "line 1: expected the header 'ImageId,PredictionString'" in msg
    assert "the file is empty" in error_of(parse_kaggle_submission, b"", CLASSES, IMAGES, boxes=False)


def test_parse_submission_detects_the_format() -> None:
    assert detect_format("\ufeffImageId, PredictionString") == "kaggle"
    assert detect_format("1 2 3") == "classic"
    a = parse_submission(b"2\n3\n1\n", CLASSES, IMAGES, boxes=False)
    b = parse_submission(
        (HEADER + "val_1,n01443537\nval_2,n01484850\nval_3,n01440764\n").encode(),
        CLASSES,
        IMAGES,
        boxes=False,
    )
    assert a.labels.tolist() == b.labels.tolist()


# -- ground truth and side files ------------------------------------------------------------------------


def test_ground_truth_csv_several_boxes_per_image_sorted_by_file_name() -> None:
    data = (
        HEADER + "val_2,n01443537 0 0 9 9\n"
        "val_1,n01440764 1 2 3 4 n01440764 5 6 7 8 n01440764 0 0 1 1\n"
        "val_3,n01491361 2 2 2 2\n"
    ).encode()
    gt = parse_ground_truth_csv(data, CLASSES)
    assert gt.image_ids == ("val_1", "val_2", "val_3")
    assert gt.labels.tolist() == [0, 1, 3]
    assert gt.box_offsets is not None and gt.box_offsets.tolist() == [0, 3, 4, 5]
    assert gt.boxes is not None and gt.boxes.tolist() == [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [0, 0, 1, 1],
        [0, 0, 9, 9],
        [2, 2, 2, 2],
    ]
    assert gt.box_labels is not None and gt.box_labels.tolist() == [0, 0, 0, 1, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "val_1,n01440764 0 0 1 1 n01443537 0 0 1 1\n",
            "line 2, field 7: class n01443537 differs from the image's first box",
        ),
        ("val_1,\n", "line 2, field 2: no box"),
        (
            "val_1,n01440764 0 0 1 1\nval_1,n01440764 0 0 1 1\n",
            "line 3, field 1: image 'val_1' already appeared on line 2",
        ),
        ("val_1,nXX 0 0 1 1\n", "line 2, field 2: 'nXX' is not a class id"),
        (",n01440764 0 0 1 1\n", "line 2, field 1: empty ImageId"),
        ("", "ground truth: no images"),
    ],
)
def test_ground_truth_csv_errors(text: str, message: str) -> None:
    assert message in error_of(parse_ground_truth_csv, (HEADER + text).encode(), CLASSES)


def test_classic_ground_truth() -> None:
    gt = parse_classic_ground_truth(b"4\n1\n2\n", CLASSES, IMAGES)
    assert gt.image_ids == IMAGES
    assert gt.labels.tolist() == [1, 3, 0]  # val_3 <- line 3, val_1 <- line 1, val_2 <- line 2
    assert not gt.has_boxes
    assert "line 2: no class id" in error_of(parse_classic_ground_truth, b"1\n\n2\n", CLASSES, IMAGES)
    assert "line 1, field 2: 2 class ids; at most 1 allowed" in error_of(
        parse_classic_ground_truth, b"1 2\n1\n2\n", CLASSES, IMAGES
    )


def test_synset_mapping() -> None:
    classes = parse_synset_mapping(b"n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n\n")
    assert classes.wnids == ("n01440764", "n01443537")
    assert classes.names == ("tench, Tinca tinca", "goldfish, Carassius auratus")
    assert classes.index_of("n01443537") == 1
    assert "line 2, field 1: n01440764 already appeared on line 1" in error_of(
        parse_synset_mapping, b"n01440764 a\nn01440764 b\n"
    )


def test_exclusion_list_takes_ids_or_one_based_file_order_indices() -> None:
    mask = parse_exclusion_list(b"1\nval_3\n\n", IMAGES)
    assert mask.tolist() == [True, True, False]  # val_3 by id, val_1 = index 1 in file-name order
    assert "line 1, field 1: '4' is neither a test image nor an index 1..3" in error_of(
        parse_exclusion_list, b"4\n", IMAGES
    )


def test_duplicate_image_ids_are_refused() -> None:
    assert "image id 'a' appears twice" in error_of(
        parse_classic_submission, b"1\n1\n", CLASSES, ("a", "a"), boxes=False
    )


# -- writers round-trip -------------------------------------------------------------------------------


def test_writers_round_trip_through_the_parsers() -> None:
    rng = np.random.default_rng(3)
    n = 40
    ids = tuple(f"img_{i:03d}" for i in rng.permutation(n))
    labels = rng.integers(-1, len(CLASSES), (n, 5))
    labels.sort(axis=1)
    labels = labels[:, ::-1].copy()  # -1 padding at the end
    lo = rng.integers(0, 50, (n, 5, 2))
    boxes = np.concatenate([lo, lo + rng.integers(0, 50, (n, 5, 2))], axis=2).astype(float)
    boxes[labels < 0] = np.nan
    boxes[0, 0] = [0.5, 1.25, 2.5, 3.0]
    sub = Submission(ids, labels, boxes)
    for data, fmt in (
        (format_classic_submission(sub, boxes=True), "classic"),
        (format_kaggle_submission(sub, CLASSES, boxes=True), "kaggle"),
    ):
        back = parse_submission(data, CLASSES, ids, boxes=True, format=fmt)
        assert np.array_equal(back.labels, sub.labels)
        assert np.array_equal(back.boxes, sub.boxes, equal_nan=True)
    gt = GroundTruth(ids, labels[:, 0].clip(0), len(CLASSES), boxes[:, 0].clip(0), np.arange(n + 1))
    back_gt = parse_ground_truth_csv(format_ground_truth_csv(gt, CLASSES), CLASSES)
    order = sorted(range(n), key=ids.__getitem__)
    assert back_gt.image_ids == tuple(ids[i] for i in order)
    assert back_gt.labels.tolist() == gt.labels[order].tolist()
    assert back_gt.boxes is not None and gt.boxes is not None
    assert np.array_equal(back_gt.boxes, gt.boxes[order])


def test_tokenize_bulk_and_fallback_paths_agree() -> None:
    plain = ["a b c", "", "d", "e f"]
    odd = ["a  b c", " ", "d\t", "é f"]
    assert tokenize(plain)[0] == ["a", "b", "c", "d", "e", "f"]
    assert tokenize(plain)[1].tolist() == [3, 0, 1, 2]
    assert tokenize(odd)[0] == ["a", "b", "c", "d", "é", "f"]
    assert tokenize(odd)[1].tolist() == [3, 0, 1, 2]


def test_data_classes_validate_direct_construction() -> None:
    with pytest.raises(InputError, match="labels must have shape"):
        Submission(("a",), np.zeros((2, 5), dtype=int))
    with pytest.raises(InputError, match="inverted"):
        Submission(("a",), np.array([[0]]), np.array([[[5.0, 0, 1, 1]]]))
    with pytest.raises(InputError, match=r"class indices must lie in 0\.\.3"):
        GroundTruth(("a",), np.array([4]), 4)
    with pytest.raises(InputError, match="box_offsets"):
        GroundTruth(("a",), np.array([1]), 4, np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(InputError, match="appears twice"):
        ClassList(("n1", "n1"))
    gt = GroundTruth.from_padded(
        ("a", "b"), [0, 1], 4, np.array([[[0, 0, 1, 1], [np.nan] * 4], [[2, 2, 3, 3], [4, 4, 5, 5]]])
    )
    assert gt.box_offsets is not None and gt.box_offsets.tolist() == [0, 1, 3]
    assert gt.box_labels is not None and gt.box_labels.tolist() == [0, 1, 1]


def test_kaggle_image_ids_with_or_without_extension() -> None:
    """Challenges name test images `test_00000001.JPEG`; solution files write `test_00000001`: both match."""
    jpeg = ("test_00000002.JPEG", "test_00000001.JPEG")
    body = HEADER + "test_00000001,n01443537\ntest_00000002.JPEG,n01491361\n"
    sub = parse_kaggle_submission(body.encode(), CLASSES, jpeg, boxes=False)
    assert sub.labels[:, 0].tolist() == [3, 1]
    stems = ("test_00000002", "test_00000001")
    body = HEADER + "test_00000001.JPEG,n01443537\ntest_00000002,n01491361\n"
    sub = parse_kaggle_submission(body.encode(), CLASSES, stems, boxes=False)
    assert sub.labels[:, 0].tolist() == [3, 1]


def test_kaggle_both_spellings_of_one_image_are_a_repeat() -> None:
    body = HEADER + "test_00000001,n01443537\ntest_00000001.JPEG,n01491361\n"
    msg = error_of(parse_kaggle_submission, body.encode(), CLASSES, ("test_00000001.JPEG",), boxes=False)
    assert "line 3, field 1: image 'test_00000001.JPEG' already appeared on line 2" in msg


def test_kaggle_stem_shared_by_two_images_must_be_written_in_full() -> None:
    ids = ("a.JPEG", "a.png")
    msg = error_of(parse_kaggle_submission, (HEADER + "a,n01440764\n").encode(), CLASSES, ids, boxes=False)
    assert "'a' is not a test image of this challenge" in msg
    body = HEADER + "a.png,n01440764\na.JPEG,n01443537\n"
    sub = parse_kaggle_submission(body.encode(), CLASSES, ids, boxes=False)
    assert sub.labels[:, 0].tolist() == [1, 0]
