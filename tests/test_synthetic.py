"""The synthetic plane-figure engine: real WordNet ids, honest truth, exact boxes, reproducible bytes."""

from __future__ import annotations

import io
import math
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from synsetforge.candidates.process import process_image
from synsetforge.candidates.sources import Source
from synsetforge.candidates.sources import synthetic as syn
from synsetforge.candidates.sources.synthetic import (
    DRAWABLE,
    FIGURES,
    ROOT,
    SHAPES,
    Settings,
    SyntheticSource,
    draw_scene,
    figure_mask,
    is_positive,
    kinds,
    make_url,
    parse_url,
    positives_for,
    render,
    scene_of,
)
from synsetforge.candidates.types import ProcessedImage
from synsetforge.errors import InputError
from synsetforge.hierarchy.expand import expand_queries
from synsetforge.hierarchy.wordnet import load_wordnet

SQUARE, RECTANGLE, RHOMBUS, REG_POLYGON = "n13878634", "n13883346", "n13882961", "n13867133"
TRIANGLE, RIGHT, OBTUSE, EQUILATERAL, ISOSCELES, SCALENE = (
    "n13879320",
    "n13880551",
    "n13880415",
    "n13879947",
    "n13880199",
    "n13880704",
)
CIRCLE, ELLIPSE, REG_HEXAGON, HEXAGON, STAR = "n13873502", "n13878306", "n13882385", "n13882276", "n13881644"


# ------------------------------------------------------------------------------------------ the table
def test_table_is_real_wordnet_under_plane_figure() -> None:
    h = load_wordnet()
    subtree = set(h.subtree(ROOT))
    assert h.get(ROOT).lemmas == ("plane figure", "two-dimensional figure")
    for sid, (lemmas, parents) in FIGURES.items():
        assert sid in subtree, sid
        assert h.get(sid).lemmas == lemmas, sid
        expected = () if sid == ROOT else tuple(h.parents(sid))
        assert parents == expected, sid


def test_truth_includes_every_wordnet_ancestor() -> None:
    h = load_wordnet()
    for figure in DRAWABLE:
        wordnet_kinds = {figure} | (set(h.ancestors(figure)) & set(FIGURES))
        assert wordnet_kinds <= kinds(figure), figure
        assert all(extra in FIGURES for extra in syn.ALSO_IS.get(figure, ()))


def test_every_table_synset_has_something_to_show() -> None:
    for sid in FIGURES:
        assert positives_for(sid), sid
    assert set(positives_for(ROOT)) == set(DRAWABLE)
    assert len(DRAWABLE) >= 25


def test_positive_semantics() -> None:
    assert (
        is_positive(SQUARE, RECTANGLE) and is_positive(SQUARE, RHOMBUS) and is_positive(SQUARE, REG_POLYGON)
    )
    assert not is_positive(RECTANGLE, SQUARE) and not is_positive(RHOMBUS, SQUARE)
    assert is_positive(CIRCLE, ELLIPSE) and not is_positive(ELLIPSE, CIRCLE)
    assert is_positive(REG_HEXAGON, HEXAGON) and is_positive(REG_HEXAGON, REG_POLYGON)
    assert not is_positive(HEXAGON, REG_HEXAGON)
    assert is_positive(EQUILATERAL, ISOSCELES) and not is_positive(ISOSCELES, EQUILATERAL)
    assert is_positive(RIGHT, SCALENE) and is_positive(RIGHT, TRIANGLE) and not is_positive(RIGHT, OBTUSE)
    assert not is_positive(STAR, "n13866626")  # stars are not convex
    assert not is_positive(None, ROOT)
    assert all(is_positive(f, ROOT) for f in DRAWABLE)


# ------------------------------------------------------------------------------------------ geometry
def interior_angles(points: np.ndarray) -> list[float]:
    out = []
    n = len(points)
    for i in range(n):
        a, b, c = points[i - 1], points[i], points[(i + 1) % n]
        u, v = a - b, c - b
        cos = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        out.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return out


def side_lengths(points: np.ndarray) -> list[float]:
    return [float(np.linalg.norm(points[i] - points[i - 1])) for i in range(len(points))]


def test_shapes_are_what_their_synset_says() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        right = interior_angles(SHAPES[RIGHT](rng))
        assert any(abs(a - 90) < 1e-6 for a in right)
        assert len({round(s, 3) for s in side_lengths(SHAPES[RIGHT](rng))}) == 3
        assert max(interior_angles(SHAPES[OBTUSE](rng))) > 100
        iso = sorted(interior_angles(SHAPES[ISOSCELES](rng)))
        assert max(iso) < 90 and (abs(iso[0] - iso[1]) < 1e-6 or abs(iso[1] - iso[2]) < 1e-6)
        assert abs(iso[0] - iso[2]) > 5  # not equilateral
        scal = sorted(interior_angles(SHAPES[SCALENE](rng)))
        assert max(scal) < 90 and min(np.diff(scal)) >= 8
        assert np.allclose(interior_angles(SHAPES[EQUILATERAL](rng)), 60)
        rect = SHAPES[RECTANGLE](rng)
        assert np.allclose(interior_angles(rect), 90)
        assert max(side_lengths(rect)) / min(side_lengths(rect)) > 1.3
        rhomb = SHAPES[RHOMBUS](rng)
        assert len({round(s, 6) for s in side_lengths(rhomb)}) == 1
        assert not np.allclose(interior_angles(rhomb), 90)
        hexagon = SHAPES[HEXAGON](rng)
        assert len(hexagon) == 6 and np.ptp(side_lengths(hexagon)) > 0.05  # irregular
        ellipse = SHAPES[ELLIPSE](rng)
        assert np.ptp(ellipse[:, 1]) < 0.75 * np.ptp(ellipse[:, 0])
    for sid, sides in [("n13882201", 5), ("n13882487", 7), ("n13882563", 8), ("n13882883", 12)]:
        pts = SHAPES[sid](rng)
        assert len(pts) == sides and max(interior_angles(pts)) < 180  # convex


# ------------------------------------------------------------------------------------------ the engine
def test_refs_and_urls() -> None:
    src = SyntheticSource(seed=7)
    assert isinstance(src, Source)
    refs = list(src.refs([SQUARE, CIRCLE], 5))
    assert [r.rank for r in refs] == [1, 2, 3, 4, 5] * 2
    first = refs[0]
    assert first.url == f"synthetic://7/{SQUARE}/1" and first.key == f"7/{SQUARE}/1"
    assert (
        first.source == "synthetic" and first.license == "CC0-1.0" and first.author == "synsetforge synthetic"
    )
    assert first.query == "square"
    assert parse_url(first.url) == (7, SQUARE, 1, Settings())
    assert list(SyntheticSource(seed=7).refs([SQUARE, CIRCLE], 5)) == refs
    assert list(SyntheticSource(seed=8).refs([SQUARE], 5)) != refs[:5]


def test_queries_use_the_hierarchy_when_given() -> None:
    h = load_wordnet()
    expected = expand_queries(h, SQUARE)
    refs = list(SyntheticSource().refs([SQUARE], len(expected) + 2, hierarchy=h))
    assert [r.query for r in refs] == [*expected, expected[0], expected[1]]


def test_unknown_synsets() -> None:
    with pytest.raises(InputError, match="n02084071"):
        list(SyntheticSource().refs(["n02084071"], 3))
    refs = list(SyntheticSource(strict=False).refs(["n02084071", SQUARE], 3))
    assert [r.synset_id for r in refs] == [SQUARE] * 3


@pytest.mark.parametrize(
    "url",
    [
        "synthetic://x/n13878634/1",
        "synthetic://1/n13878634",
        "http://1/n13878634/1",
        "synthetic://1/n13878634/1?z=1",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InputError):
        parse_url(url)


def test_rendering_is_deterministic_and_matches_the_ref() -> None:
    src = SyntheticSource(seed=3)
    refs = list(src.refs([ROOT], 12))
    for ref in refs:
        data = render(ref)
        assert data == render(ref.url) == src.render(ref)  # byte-identical every time
        im = Image.open(io.BytesIO(data))
        assert im.format == "JPEG"
        assert im.size == (ref.extra["width"], ref.extra["height"])
        assert min(im.size) >= 240 and max(im.size) <= 500
    assert len({render(r) for r in refs}) == len(refs)


def test_settings_travel_in_the_url() -> None:
    src = SyntheticSource(seed=2, precision=0.25, clutter=0.5, size=(200, 120))
    ref = next(src.refs([TRIANGLE], 1))
    assert ref.url.startswith(f"synthetic://2/{TRIANGLE}/1?")
    assert parse_url(ref.url)[3] == Settings(precision=0.25, clutter=0.5, size=(200, 120))
    assert Image.open(io.BytesIO(render(ref))).size == (200, 120)
    with pytest.raises(InputError):
        Settings(precision=1.5)
    with pytest.raises(InputError):
        Settings(size=(10, 5000))


def test_boxes_are_inside_and_tight_around_the_figure() -> None:
    src = SyntheticSource(seed=11, precision=1.0)
    refs = [ref for sid in (ROOT, TRIANGLE, STAR, CIRCLE, "n13875027") for ref in src.refs([sid], 12)]
    assert all(ref.truth_synset is not None for ref in refs)
    assert any(len(ref.boxes) > 1 for ref in refs)  # multi-instance images are checked the same way
    for ref in refs:
        scene = scene_of(ref.url)
        assert ref.boxes == scene.boxes and ref.boxes[0] == scene.box
        pixels = np.asarray(draw_scene(scene, clean=True))
        for i, (box, instance) in enumerate(zip(ref.boxes, scene.instances, strict=True)):
            assert box.synset_id == ref.truth_synset
            assert 0 <= box.xmin < box.xmax < scene.width and 0 <= box.ymin < box.ymax < scene.height
            mask = figure_mask(scene, i)
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (box.xmin, box.ymin, box.xmax, box.ymax)
            # in the drawn picture, the instance's colour occurs only inside its box, and fills most of it
            # (a later instance may hide a little of an earlier one)
            same = np.all(pixels == np.array(instance.fill, dtype=np.uint8), axis=2)
            ys, xs = np.nonzero(same)
            assert box.xmin <= xs.min() and xs.max() <= box.xmax
            assert box.ymin <= ys.min() and ys.max() <= box.ymax
            assert same.sum() >= (0.6 if len(ref.boxes) == 1 else 0.5) * mask.sum()


def test_figure_is_big_enough_to_see() -> None:
    src = SyntheticSource(seed=4, precision=1.0)
    for ref in src.refs([ROOT], 40):
        for box in ref.boxes:  # several instances are smaller
            longest = max(
                (box.xmax - box.xmin + 1) / ref.extra["width"],
                (box.ymax - box.ymin + 1) / ref.extra["height"],
            )
            assert (0.25 <= longest <= 0.85) if len(ref.boxes) == 1 else (0.15 <= longest <= 0.5)


@pytest.mark.parametrize("precision", [0.4, 0.1, 0.9])
def test_precision_of_the_engine(precision: float) -> None:
    src = SyntheticSource(seed=5, precision=precision)
    synsets = [SQUARE, TRIANGLE, CIRCLE, STAR, HEXAGON]
    refs = list(src.refs(synsets, 400))
    hits = [is_positive(r.truth_synset, r.synset_id) for r in refs]
    assert abs(sum(hits) / len(hits) - precision) < 0.035
    assert all(r.extra["positive"] == hit for r, hit in zip(refs, hits, strict=True))
    wrong = [r for r, hit in zip(refs, hits, strict=True) if not hit]
    clutter_share = sum(r.truth_synset is None for r in wrong) / len(wrong)
    assert abs(clutter_share - 0.3) < 0.06
    shown = Counter(r.truth_synset for r in wrong if r.truth_synset)
    assert len(shown) >= 15  # wrong results show many different figures


def test_query_for_the_root_has_no_wrong_figures() -> None:
    refs = list(SyntheticSource(seed=1).refs([ROOT], 200))
    assert all(r.truth_synset is None or is_positive(r.truth_synset, ROOT) for r in refs)
    assert any(r.truth_synset is None for r in refs)
    everything = list(SyntheticSource(seed=1, precision=1.0).refs([ROOT], 400))
    assert {r.truth_synset for r in everything} == set(DRAWABLE)


def test_rendered_images_pass_the_image_pipeline() -> None:
    for ref in SyntheticSource(seed=9).refs([SQUARE], 6):
        result = process_image(render(ref))
        assert isinstance(result, ProcessedImage)
        assert (result.orig_width, result.orig_height) == (ref.extra["width"], ref.extra["height"])


def test_make_url_roundtrip() -> None:
    settings = Settings(precision=0.6, size=(320, 240))
    url = make_url(4, CIRCLE, 17, settings)
    assert parse_url(url) == (4, CIRCLE, 17, settings)
    assert scene_of(url) == syn.plan(4, CIRCLE, 17, settings)
