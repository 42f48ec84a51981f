"""A synthetic "search engine" for WordNet's plane figures (n13863186): images with a known answer.

Every image is drawn from its URL ``synthetic://<seed>/<synset>/<rank>`` (plus ``?precision=..`` etc. when
the settings are not the defaults), so `render` regenerates byte-identical JPEGs on any machine with the same
Pillow/simplejpeg, and the whole pipeline (collection, dedup, crowd verification, boxes) can be tested
against ground truth without network.

Like a real engine, a query for synset S returns mostly wrong results: a share `precision` (default 0.4) of
the results shows a figure that *is* an S, the rest show another figure or only clutter. Each result records
the exact figure drawn (`truth_synset`, None for clutter only) and its boxes (`Box`, inclusive pixel corners).

Several instances (for box collection, where coverage must be measurable): a share `multi` (default 0.3) of
the images that show a figure show 2 or 3 instances of it instead of one: smaller, each in its own colour,
each fully inside the image, boxes overlapping by at most `MAX_OVERLAP` of the smaller one; `boxes` holds one
box per instance. Which images are multi-instance, and their instances, come from a random stream of their
own, so every single-instance image is the same picture (byte for byte) as before multi-instance images
existed, and `multi` only decides how many images change.

Which figures count as an S (`is_positive`): the figure drawn, its WordNet 3.0 hypernyms inside the plane
figure subtree, and a few memberships that are true of the figures *as drawn* but that WordNet does not
record (`ALSO_IS`): a square is also a rhombus; a regular hexagon is a regular polygon; every triangle is
drawn so that its angle class (acute/right/obtuse, oblique) and side class (equilateral/isosceles/scalene)
are definite; all drawn polygons except stars are convex (points on a circle), stars are concave. So a
square image is a true positive for "rectangle", "rhombus", "regular polygon" and "plane figure". Figures
are chosen so no other relation holds: rectangles, rhombi, rhomboids are never squares, pentagons to
dodecagons and "hexagon" are irregular, ellipses are never circles, sectors never half discs.

The table `FIGURES` (ids, lemmas and WordNet parents) is static so this module does not need the hierarchy;
tests check it against the shipped WordNet. Not drawn (no honest rendering or not a plane figure as an
image): crescent (n13896217 is not under plane figure in WordNet 3.0), oblong, box, spherical polygons,
parabola/hyperbola (open curves), paraboloid/ellipsoid (surfaces), tree diagrams, and objects such as
"quadrate" or "delta".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image, ImageChops, ImageDraw

from synsetforge.candidates.types import Box, CandidateRef
from synsetforge.errors import InputError

NAME = "synthetic"
SCHEME = "synthetic"
ROOT = "n13863186"  # plane figure, two-dimensional figure
LICENSE = "CC0-1.0"
AUTHOR = "synsetforge synthetic"

# id -> (lemmas, WordNet 3.0 hypernyms). Verified against data.noun; the root's parent (n13862780, "figure")
# is outside the subtree and left out.
FIGURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "n13863186": (("plane figure", "two-dimensional figure"), ()),
    "n13866144": (("polygon", "polygonal shape"), ("n13863186",)),
    "n13866515": (("isogon",), ("n13866144",)),
    "n13867133": (("regular polygon",), ("n13866515",)),
    "n13866626": (("convex polygon",), ("n13866144",)),
    "n13866827": (("concave polygon",), ("n13866144",)),
    "n13867005": (("reentrant polygon", "reentering polygon"), ("n13866827",)),
    "n13879126": (("quadrilateral", "quadrangle", "tetragon"), ("n13866144",)),
    "n13881175": (("parallelogram",), ("n13879126",)),
    "n13883346": (("rectangle",), ("n13881175",)),
    "n13878634": (("square", "foursquare"), ("n13883346", "n13867133")),
    "n13882961": (("rhombus", "rhomb", "diamond"), ("n13881175",)),
    "n13883133": (("rhomboid",), ("n13881175",)),
    "n13881512": (("trapezoid",), ("n13879126",)),
    "n13881381": (("trapezium",), ("n13879126",)),
    "n13879320": (("triangle", "trigon", "trilateral"), ("n13866144",)),
    "n13879947": (("equilateral triangle", "equiangular triangle"), ("n13879320", "n13867133")),
    "n13879816": (("acute triangle", "acute-angled triangle"), ("n13879320",)),
    "n13880199": (("isosceles triangle",), ("n13879320",)),
    "n13880295": (("oblique triangle",), ("n13879320",)),
    "n13880415": (("obtuse triangle", "obtuse-angled triangle"), ("n13879320",)),
    "n13880551": (("right triangle", "right-angled triangle"), ("n13879320",)),
    "n13880704": (("scalene triangle",), ("n13879320",)),
    "n13882201": (("pentagon",), ("n13866144",)),
    "n13882276": (("hexagon",), ("n13866144",)),
    "n13882385": (("regular hexagon",), ("n13882276",)),
    "n13882487": (("heptagon",), ("n13866144",)),
    "n13882563": (("octagon",), ("n13866144",)),
    "n13882639": (("nonagon",), ("n13866144",)),
    "n13882713": (("decagon",), ("n13866144",)),
    "n13882804": (("undecagon",), ("n13866144",)),
    "n13882883": (("dodecagon",), ("n13866144",)),
    "n13872975": (("conic section", "conic"), ("n13863186",)),
    "n13878306": (("ellipse", "oval"), ("n13872975",)),
    "n13873502": (("circle",), ("n13878306",)),
    "n13874251": (("semicircle", "hemicycle"), ("n13863186",)),
    "n13875027": (("sector",), ("n13863186",)),
    "n13881644": (("star",), ("n13863186",)),
    "n13882008": (("pentacle", "pentagram", "pentangle"), ("n13881644",)),
    "n13880811": (("hexagram",), ("n13881644",)),
    "n13865904": (("heart",), ("n13863186",)),
}

_CONVEX = "n13866626"
_CONCAVE = "n13867005"  # reentrant polygon (a concave polygon)
_ACUTE, _OBLIQUE, _ISOSCELES, _SCALENE = "n13879816", "n13880295", "n13880199", "n13880704"

# What a drawn figure also is, beyond its WordNet hypernyms (see the module docstring).
ALSO_IS: dict[str, tuple[str, ...]] = {
    "n13878634": ("n13882961", _CONVEX),  # square: rhombus
    "n13883346": (_CONVEX,),
    "n13882961": (_CONVEX,),
    "n13883133": (_CONVEX,),
    "n13881512": (_CONVEX,),
    "n13881381": (_CONVEX,),
    "n13879947": (_ISOSCELES, _ACUTE, _OBLIQUE, _CONVEX),  # equilateral
    "n13880199": (_ACUTE, _OBLIQUE, _CONVEX),  # isosceles, drawn acute
    "n13880704": (_ACUTE, _OBLIQUE, _CONVEX),  # scalene, drawn acute
    "n13880551": (_SCALENE, _CONVEX),  # right, drawn with unequal legs
    "n13880415": (_SCALENE, _OBLIQUE, _CONVEX),  # obtuse, drawn scalene
    "n13882201": (_CONVEX,),
    "n13882276": (_CONVEX,),
    "n13882385": ("n13867133", _CONVEX),  # regular hexagon: regular polygon
    "n13882487": (_CONVEX,),
    "n13882563": (_CONVEX,),
    "n13882639": (_CONVEX,),
    "n13882713": (_CONVEX,),
    "n13882804": (_CONVEX,),
    "n13882883": (_CONVEX,),
    "n13881644": (_CONCAVE,),
    "n13882008": (_CONCAVE,),
    "n13880811": (_CONCAVE,),
}


@cache
def kinds(figure: str) -> frozenset[str]:
    """Every table synset that a drawing of `figure` is an instance of (itself included)."""
    out: set[str] = set()
    todo = [figure]
    while todo:
        sid = todo.pop()
        if sid in out:
            continue
        out.add(sid)
        todo.extend(FIGURES[sid][1])
        todo.extend(ALSO_IS.get(sid, ()))
    return frozenset(out)


def is_positive(truth_synset: str | None, synset_id: str) -> bool:
    """Does an image whose drawn figure is `truth_synset` (None: clutter only) show a `synset_id`?"""
    return truth_synset is not None and synset_id in kinds(truth_synset)


# ---------------------------------------------------------------------------------------------- geometry
Points = npt.NDArray[np.float64]  # (n, 2), x right, y down
Rng = np.random.Generator


def _ngon(n: int, phase: float = 0.0) -> Points:
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _cyclic_irregular(rng: Rng, n: int) -> Points:
    """n points on a circle with jittered angles: convex, never regular (jitter of at least 15% of a step)."""
    step = 2 * np.pi / n
    while True:
        jitter = rng.uniform(-0.38, 0.38, n) * step
        if np.abs(jitter - jitter.mean()).max() >= 0.15 * step:
            break
    a = np.sort(np.arange(n) * step + jitter)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _star(n: int, inner: float) -> Points:
    a = -np.pi / 2 + np.pi * np.arange(2 * n) / n
    r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _arc(a0: float, a1: float, n: int) -> Points:
    a = np.linspace(a0, a1, n)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _triangle(angles_deg: tuple[float, float, float]) -> Points:
    """Triangle with the given interior angles at A, B, C (A at the origin, B on the x axis)."""
    a, b, _ = (math.radians(x) for x in angles_deg)
    c_len = 1.0
    b_len = c_len * math.sin(b) / math.sin(a + b)  # side AC, law of sines
    return np.array([[0.0, 0.0], [c_len, 0.0], [b_len * math.cos(a), -b_len * math.sin(a)]])


def _scalene_acute(rng: Rng) -> tuple[float, float, float]:
    while True:
        x, y = rng.uniform(35, 85, 2)
        z = 180 - x - y
        angles = sorted((x, y, z))
        if angles[0] > 35 and angles[2] < 85 and min(np.diff(angles)) >= 8:
            return (x, y, z)


def _isosceles_acute(rng: Rng) -> tuple[float, float, float]:
    apex = rng.uniform(25, 50) if rng.random() < 0.5 else rng.uniform(70, 85)
    base = (180 - apex) / 2
    return (base, base, apex)


def _right(rng: Rng) -> tuple[float, float, float]:
    x = rng.uniform(25, 39) if rng.random() < 0.5 else rng.uniform(51, 65)
    return (90.0, x, 90.0 - x)


def _obtuse(rng: Rng) -> tuple[float, float, float]:
    big = rng.uniform(105, 145)
    rest = 180 - big
    share = rng.uniform(0.22, 0.4) if rng.random() < 0.5 else rng.uniform(0.6, 0.78)  # unequal: scalene
    return (rest * share, big, rest * (1 - share))


def _trapezium(rng: Rng) -> Points:
    """Convex quadrilateral with no two sides parallel (more than 10 degrees apart)."""
    while True:
        p = _cyclic_irregular(rng, 4)
        d = np.roll(p, -1, axis=0) - p
        ang = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180
        diff = [abs(ang[0] - ang[2]), abs(ang[1] - ang[3])]
        if all(min(x, 180 - x) > 10 for x in diff):
            return p


def _parallelogram(rng: Rng) -> Points:
    side = rng.uniform(0.45, 0.75)
    phi = math.radians(rng.uniform(50, 75))
    dx, dy = side * math.cos(phi), -side * math.sin(phi)
    return np.array([[0.0, 0.0], [1.0, 0.0], [1.0 + dx, dy], [dx, dy]])


def _trapezoid(rng: Rng) -> Points:
    top = rng.uniform(0.35, 0.7)
    shift = rng.uniform(-(1 - top) / 2, (1 - top) / 2) if rng.random() < 0.5 else 0.0
    height = rng.uniform(0.4, 0.8)
    x0 = (1 - top) / 2 + shift
    return np.array([[0.0, 0.0], [1.0, 0.0], [x0 + top, -height], [x0, -height]])


def _heart(n: int = 96) -> Points:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1) / 16


def _sector(rng: Rng) -> Points:
    span = rng.uniform(35, 150) if rng.random() < 0.5 else rng.uniform(210, 325)
    return np.vstack([[[0.0, 0.0]], _arc(0.0, math.radians(span), 48)])


ShapeFn = Callable[[Rng], Points]

# The figures that can be drawn: exact synset -> unit-frame outline (rotated, scaled and placed later).
SHAPES: dict[str, ShapeFn] = {
    "n13865904": lambda r: _heart(),
    "n13878634": lambda r: np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]),
    "n13883346": lambda r: np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [1.0, r.uniform(0.35, 0.72)],
    "n13882961": lambda r: np.array([[-1, 0], [0, -1], [1, 0], [0, 1]]) * [1.0, r.uniform(0.4, 0.75)],
    "n13883133": _parallelogram,
    "n13881512": _trapezoid,
    "n13881381": _trapezium,
    "n13879947": lambda r: _ngon(3, -np.pi / 2),
    "n13880199": lambda r: _triangle(_isosceles_acute(r)),
    "n13880704": lambda r: _triangle(_scalene_acute(r)),
    "n13880551": lambda r: _triangle(_right(r)),
    "n13880415": lambda r: _triangle(_obtuse(r)),
    "n13882201": lambda r: _cyclic_irregular(r, 5),
    "n13882276": lambda r: _cyclic_irregular(r, 6),
    "n13882385": lambda r: _ngon(6),
    "n13882487": lambda r: _cyclic_irregular(r, 7),
    "n13882563": lambda r: _cyclic_irregular(r, 8),
    "n13882639": lambda r: _cyclic_irregular(r, 9),
    "n13882713": lambda r: _cyclic_irregular(r, 10),
    "n13882804": lambda r: _cyclic_irregular(r, 11),
    "n13882883": lambda r: _cyclic_irregular(r, 12),
    "n13873502": lambda r: _ngon(96),
    "n13878306": lambda r: _ngon(96) * [1.0, r.uniform(0.4, 0.72)],
    "n13874251": lambda r: _arc(0.0, np.pi, 49),
    "n13875027": _sector,
    "n13881644": lambda r: _star(int(r.choice([7, 8, 10, 12])), r.uniform(0.35, 0.55)),
    "n13882008": lambda r: _star(5, math.cos(math.radians(72)) / math.cos(math.radians(36))),
    "n13880811": lambda r: _star(6, 1 / math.sqrt(3)),
}
DRAWABLE = tuple(SHAPES)


def positives_for(synset_id: str) -> tuple[str, ...]:
    """The drawable figures that are an instance of `synset_id`."""
    return tuple(f for f in DRAWABLE if synset_id in kinds(f))


# ---------------------------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class Settings:
    """How the engine behaves; non-default values travel in the URL so `render` needs nothing else."""

    precision: float = 0.4  # share of results that show the queried synset
    clutter: float = 0.3  # share of the *wrong* results that show no figure at all (all of them for the
    # root, plane figure, since every drawable figure is one)
    size: tuple[int, int] | None = None  # fixed (width, height); default: 320..500 wide, 4:3 / 3:4 / 1:1
    multi: float = 0.3  # share of the images showing a figure that show 2-3 instances of it

    def __post_init__(self) -> None:
        if not 0.0 <= self.precision <= 1.0 or not 0.0 <= self.clutter <= 1.0:
            raise InputError("synthetic precision and clutter must be between 0 and 1")
        if not 0.0 <= self.multi <= 1.0:
            raise InputError(f"synthetic multi-instance share must be between 0 and 1, got {self.multi}")
        if self.size is not None and (min(self.size) < 32 or max(self.size) > _MAX_SIDE):
            raise InputError(f"synthetic image size must be within 32..{_MAX_SIDE} pixels, got {self.size}")

    def query_string(self) -> str:
        params: dict[str, str] = {}
        if self.precision != Settings.precision:
            params["precision"] = repr(self.precision)
        if self.clutter != Settings.clutter:
            params["clutter"] = repr(self.clutter)
        if self.size is not None:
            params["size"] = f"{self.size[0]}x{self.size[1]}"
        if self.multi != Settings.multi:
            params["multi"] = repr(self.multi)
        return urlencode(params)


Colour = tuple[int, int, int]
Outline = tuple[tuple[int, int], ...]
_MAX_SIDE = 1024
_BACKGROUND_SPREAD = 45
MAX_OVERLAP = 0.08  # most a box of a multi-instance image may share with another, of the smaller one's area


def _box_of(points: Outline, figure: str | None = None) -> Box:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return Box(min(xs), min(ys), max(xs), max(ys), figure)


@dataclass(frozen=True)
class Instance:
    """One more drawn instance of a scene's figure (the first is `Scene.points` / `Scene.fill`)."""

    points: Outline
    fill: Colour


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw one image, derived deterministically from its URL."""

    width: int
    height: int
    grid: bytes  # small RGB colour grid (grid_shape rows x columns), upscaled to the smooth background
    grid_shape: tuple[int, int]
    clutter: tuple[tuple[str, tuple[float, ...], Colour, int], ...]  # (kind, coords, colour, width)
    figure: str | None
    points: tuple[tuple[int, int], ...] = ()
    fill: Colour = (0, 0, 0)
    outline: Colour | None = None
    noise: int = 0  # index into the noise tiles (0: none)
    noise_offset: tuple[int, int] = (0, 0)
    quality: int = 85
    positive: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    more: tuple[Instance, ...] = ()  # further instances of `figure`, drawn in order after the first

    @property
    def instances(self) -> tuple[Instance, ...]:
        """Every drawn instance of the figure, in drawing order (empty for clutter only)."""
        if self.figure is None:
            return ()
        return (Instance(self.points, self.fill), *self.more)

    @property
    def box(self) -> Box | None:
        """The first instance's box, inclusive pixel corners, or None for clutter only."""
        return None if self.figure is None else _box_of(self.points, self.figure)

    @property
    def boxes(self) -> tuple[Box, ...]:
        """One box per instance, inclusive pixel corners (empty for clutter only)."""
        return tuple(_box_of(inst.points, self.figure) for inst in self.instances)


def _rng(seed: int, synset_id: str, rank: int, stream: str = "") -> Rng:
    digest = hashlib.blake2b(f"{seed}/{synset_id}/{rank}{stream}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _colour(rng: Rng) -> Colour:
    r, g, b = rng.bytes(3)
    return (r, g, b)


def _l1(a: Colour, b: Colour) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def _pick_colour(rng: Rng, distance: Callable[[Colour], int], at_least: int) -> Colour:
    """A random colour at least `at_least` away by `distance` (else the farthest of 40 tries)."""
    best, best_d = _colour(rng), -1
    for _ in range(40):
        c = _colour(rng)
        d = distance(c)
        if d >= at_least:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _cube_distance(low: npt.NDArray[np.int64], high: npt.NDArray[np.int64]) -> Callable[[Colour], int]:
    """L1 distance from a colour to the box of colours [low, high] (where every background pixel lies)."""

    lows, highs = [int(v) for v in low], [int(v) for v in high]

    def distance(c: Colour) -> int:
        return sum(max(lo - v, 0) + max(v - hi, 0) for v, lo, hi in zip(c, lows, highs, strict=True))

    return distance


def _image_size(rng: Rng, settings: Settings) -> tuple[int, int]:
    if settings.size is not None:
        return settings.size
    w = int(rng.integers(320, 501))
    shape = rng.random()
    if shape < 0.65:
        return w, round(w * 3 / 4)
    if shape < 0.85:
        return round(w * 3 / 4), w
    side = min(w, 400)
    return side, side


def _place(
    rng: Rng, unit: Points, width: int, height: int, sizes: tuple[float, float] = (0.3, 0.8)
) -> Outline:
    """Rotate, scale to `sizes` (default 30-80%) of the image and put the outline fully inside it, in
    integer pixels."""
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pts = unit @ rot.T
    pts = pts - pts.min(axis=0)
    extent = np.maximum(pts.max(axis=0), 1e-9)
    margin = 2
    frac = rng.uniform(*sizes)
    scale = frac * min((width - 2 * margin - 1) / extent[0], (height - 2 * margin - 1) / extent[1])
    pts = pts * scale
    room = np.array([width - 1 - 2 * margin, height - 1 - 2 * margin]) - pts.max(axis=0)
    pts = pts + margin + rng.uniform(0, 1, 2) * np.maximum(room, 0)
    ints = np.rint(pts).astype(int)
    ints[:, 0] = np.clip(ints[:, 0], 0, width - 1)
    ints[:, 1] = np.clip(ints[:, 1], 0, height - 1)
    return tuple((int(x), int(y)) for x, y in ints)


MULTI_SIZES = (0.2, 0.42)  # instances of a multi-instance image, as a share of the image (cf. 0.3-0.8)
_PLACEMENT_TRIES = 60


def _overlap(a: Box, b: Box) -> float:
    """Intersection of two inclusive boxes as a share of the smaller one's area."""
    w = min(a.xmax, b.xmax) - max(a.xmin, b.xmin) + 1
    h = min(a.ymax, b.ymax) - max(a.ymin, b.ymin) + 1
    if w <= 0 or h <= 0:
        return 0.0
    area = min((a.xmax - a.xmin + 1) * (a.ymax - a.ymin + 1), (b.xmax - b.xmin + 1) * (b.ymax - b.ymin + 1))
    return w * h / area


def _more_instances(
    rng: Rng,
    figure: str,
    size: tuple[int, int],
    first_fill: Colour,
    background: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> list[Instance] | None:
    """2-3 smaller instances of `figure` that overlap at most `MAX_OVERLAP` (None: they did not fit).

    The first keeps the scene's fill; each other gets one far from the background's colour box and from
    the other fills, so that it can be told from the background and from its neighbours (and found by its
    exact colour in `draw_scene(clean=True)`).
    """
    width, height = size
    count = 2 if rng.random() < 0.6 else 3
    placed: list[Instance] = []
    boxes: list[Box] = []
    far_from_background = _cube_distance(*background)
    for k in range(count):
        fill = first_fill
        if k:
            fill = _pick_colour(
                rng, lambda c: min([far_from_background(c), *(_l1(c, o.fill) for o in placed)]), 90
            )
        unit = SHAPES[figure](rng)
        for _ in range(_PLACEMENT_TRIES):
            points = _place(rng, unit, width, height, MULTI_SIZES)
            box = _box_of(points)
            if all(_overlap(box, other) <= MAX_OVERLAP for other in boxes):
                placed.append(Instance(points, fill))
                boxes.append(box)
                break
    if len(placed) < 2:
        return None
    return placed


def _clutter(
    rng: Rng, width: int, height: int, avoid: Colour
) -> list[tuple[str, tuple[float, ...], Colour, int]]:
    """Open strokes only (lines, arcs under 200 degrees, scribbles): never a closed plane figure."""
    items: list[tuple[str, tuple[float, ...], Colour, int]] = []
    for _ in range(int(rng.integers(0, 13))):
        roll = rng.random()
        kind = "line" if roll < 0.5 else "arc" if roll < 0.75 else "scribble"
        colour = _pick_colour(rng, lambda c: _l1(c, avoid), 90)
        stroke = int(rng.integers(1, 5))
        if kind == "line":
            coords = tuple(float(v) for v in rng.uniform(0, 1, 4) * [width, height, width, height])
        elif kind == "arc":
            cx, cy = rng.uniform(0, 1, 2) * [width, height]
            r = rng.uniform(0.05, 0.4) * min(width, height)
            start = rng.uniform(0, 360)
            coords = (cx - r, cy - r, cx + r, cy + r, start, start + rng.uniform(20, 200))
        else:
            steps = rng.normal(0, 0.06, (int(rng.integers(4, 10)), 2)).cumsum(axis=0) + rng.uniform(0, 1, 2)
            coords = tuple(float(v) for v in (steps * [width, height]).ravel())
        items.append((kind, coords, colour, stroke))
    return items


def plan(seed: int, synset_id: str, rank: int, settings: Settings | None = None) -> Scene:
    """The scene of result `rank` of a query for `synset_id` (deterministic in all arguments)."""
    settings = settings or Settings()
    good = positives_for(synset_id) if synset_id in FIGURES else ()
    if not good:
        raise InputError(f"synthetic: {synset_id} is not a plane figure this source can draw")
    rng = _rng(seed, synset_id, rank)
    width, height = _image_size(rng, settings)
    positive = bool(rng.random() < settings.precision)
    figure: str | None
    if positive:
        figure = str(rng.choice(good))
    else:
        wrong = [f for f in DRAWABLE if f not in good]
        clutter_only = not wrong or rng.random() < settings.clutter
        figure = None if clutter_only else str(rng.choice(wrong))
    base = rng.integers(0, 256, 3)
    gh, gw = (int(v) for v in rng.integers(2, 6, 2))
    spread = _BACKGROUND_SPREAD
    grid = np.clip(base + rng.integers(-spread, spread + 1, (gh, gw, 3)), 0, 255).astype(np.uint8)
    # Bilinear upscaling stays inside the grid's colour box, so the figure can be told from any background
    # pixel (and, in `draw_scene(clean=True)`, found by its exact colour).
    low, high = np.clip(base - spread, 0, 255), np.clip(base + spread, 0, 255)
    fill = _pick_colour(rng, _cube_distance(low, high), 90)
    outline = _pick_colour(rng, lambda c: _l1(c, fill), 120) if rng.random() < 0.3 else None
    clutter = _clutter(rng, width, height, fill)
    points: Outline = ()
    if figure is not None:
        points = _place(rng, SHAPES[figure](rng), width, height)
    more: tuple[Instance, ...] = ()
    if figure is not None and settings.multi > 0:
        # Its own stream: single-instance images stay exactly what they were (see the module docstring).
        multi_rng = _rng(seed, synset_id, rank, "/instances")
        if multi_rng.random() < settings.multi:
            several = _more_instances(multi_rng, figure, (width, height), fill, (low, high))
            if several is not None:
                points, more = several[0].points, tuple(several[1:])
    noise = int(rng.integers(0, len(_NOISE_LEVELS)))
    offset = (int(rng.integers(0, _TILE - width + 1)), int(rng.integers(0, _TILE - height + 1)))
    quality = int(rng.integers(55, 96))
    lemma = FIGURES[figure][0][0] if figure else None
    return Scene(
        width=width,
        height=height,
        grid=grid.tobytes(),
        grid_shape=(gh, gw),
        clutter=tuple(clutter),
        figure=figure,
        points=points,
        fill=fill,
        outline=outline,
        noise=noise,
        noise_offset=offset,
        quality=quality,
        positive=positive,
        extra={"figure": lemma, "positive": positive},
        more=more,
    )


# ---------------------------------------------------------------------------------------------- drawing
_TILE = _MAX_SIDE + 64
_NOISE_LEVELS = (0, 4, 8, 12)  # +- amplitude per level


@cache
def _noise_tile(level: int) -> Image.Image:
    amp = _NOISE_LEVELS[level]
    rng = np.random.default_rng(1000 + level)  # fixed: the tiles are part of the format
    return Image.fromarray(rng.integers(0, 2 * amp + 1, (_TILE, _TILE, 3), dtype=np.uint8), "RGB")


def draw_scene(scene: Scene, clean: bool = False) -> Image.Image:
    """The scene as an RGB image; `clean` leaves out the pixel noise (for tests of colours and boxes)."""
    size = (scene.width, scene.height)
    gh, gw = scene.grid_shape
    image = Image.frombytes("RGB", (gw, gh), scene.grid).resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for kind, coords, colour, stroke in scene.clutter:
        if kind == "line":
            draw.line(coords, fill=colour, width=stroke)
        elif kind == "arc":
            draw.arc(coords[:4], coords[4], coords[5], fill=colour, width=stroke)
        else:
            draw.line(coords, fill=colour, width=stroke, joint="curve")
    for instance in scene.instances:
        draw.polygon(list(instance.points), fill=instance.fill, outline=scene.outline)
    if scene.noise and not clean:
        x, y = scene.noise_offset
        tile = _noise_tile(scene.noise).crop((x, y, x + scene.width, y + scene.height))
        image = ImageChops.add(image, tile, 1.0, -_NOISE_LEVELS[scene.noise])
    return image


def figure_mask(scene: Scene, instance: int | None = None) -> npt.NDArray[np.bool_]:
    """Boolean (height, width) mask of the figure's pixels as drawn: every instance, or only the
    `instance`-th (its whole outline, also where a later instance covers it)."""
    mask = Image.new("L", (scene.width, scene.height), 0)
    chosen = scene.instances if instance is None else scene.instances[instance : instance + 1]
    for inst in chosen:
        ImageDraw.Draw(mask).polygon(list(inst.points), fill=255, outline=255)
    return np.asarray(mask) > 0


def encode(image: Image.Image, quality: int) -> bytes:
    return bytes(simplejpeg.encode_jpeg(np.asarray(image), quality=quality, colorsubsampling="420"))


# ---------------------------------------------------------------------------------------------- URLs
def make_url(seed: int, synset_id: str, rank: int, settings: Settings | None = None) -> str:
    query = (settings or Settings()).query_string()
    return f"{SCHEME}://{seed}/{synset_id}/{rank}" + (f"?{query}" if query else "")


def parse_url(url: str) -> tuple[int, str, int, Settings]:
    """(seed, synset, rank, settings) of a synthetic URL; InputError when it is not one."""
    parts = urlsplit(url)
    bits = parts.path.strip("/").split("/")
    try:
        if parts.scheme != SCHEME or len(bits) != 2:
            raise ValueError
        seed, synset_id, rank = int(parts.netloc), bits[0], int(bits[1])
        params = dict(parse_qsl(parts.query, strict_parsing=False))
        size = None
        if "size" in params:
            w, h = params.pop("size").lower().split("x")
            size = (int(w), int(h))
        precision = float(params.pop("precision", Settings.precision))
        clutter = float(params.pop("clutter", Settings.clutter))
        multi = float(params.pop("multi", Settings.multi))
        if params:
            raise ValueError
    except ValueError:
        raise InputError(f"not a synthetic image URL: {url!r}") from None
    return seed, synset_id, rank, Settings(precision=precision, clutter=clutter, size=size, multi=multi)


def scene_of(url: str) -> Scene:
    """The scene a synthetic URL stands for."""
    seed, synset_id, rank, settings = parse_url(url)
    return plan(seed, synset_id, rank, settings)


def render_url(url: str) -> bytes:
    """JPEG bytes of a synthetic URL; the same URL always gives the same bytes."""
    scene = scene_of(url)
    return encode(draw_scene(scene), scene.quality)


def render(ref: CandidateRef | str) -> bytes:
    """JPEG bytes of a synthetic `CandidateRef` (or its URL)."""
    return render_url(ref if isinstance(ref, str) else ref.url)


# ---------------------------------------------------------------------------------------------- source
def _queries(hierarchy: Any, synset_id: str) -> list[str]:
    try:
        known = hierarchy is not None and synset_id in hierarchy
    except TypeError:
        known = False
    if known:
        expand = getattr(hierarchy, "expand", None)
        if callable(expand):
            return list(expand(synset_id)) or [FIGURES[synset_id][0][0]]
        if callable(getattr(hierarchy, "ancestors", None)):
            from synsetforge.hierarchy.expand import expand_queries

            return expand_queries(hierarchy, synset_id) or [FIGURES[synset_id][0][0]]
        return [str(x).replace("_", " ") for x in hierarchy.get(synset_id).lemmas]
    return [FIGURES[synset_id][0][0]]


class SyntheticSource:
    """Search-engine-like source of drawn plane figures with ground truth (see the module docstring).

    `multi` is the share of figure images with 2-3 instances (0: always one, the old behaviour).
    `strict=False` skips synsets it cannot draw instead of raising `InputError`.
    """

    name = NAME

    def __init__(
        self,
        seed: int = 0,
        precision: float = Settings.precision,
        clutter: float = Settings.clutter,
        size: tuple[int, int] | None = None,
        per_synset: int = 100,
        strict: bool = True,
        multi: float = Settings.multi,
    ) -> None:
        if seed < 0:
            raise InputError(f"synthetic seed must be >= 0, got {seed}")
        self.seed = seed
        self.settings = Settings(precision=precision, clutter=clutter, size=size, multi=multi)
        self.per_synset = per_synset
        self.strict = strict

    @staticmethod
    def supports(synset_id: str) -> bool:
        """Whether queries for this synset have anything to show."""
        return synset_id in FIGURES

    def ref(self, synset_id: str, rank: int, query: str | None = None) -> CandidateRef:
        """Result `rank` (1-based) of a query for `synset_id`."""
        url = make_url(self.seed, synset_id, rank, self.settings)
        scene = plan(self.seed, synset_id, rank, self.settings)
        return CandidateRef(
            synset_id=synset_id,
            source=self.name,
            url=url,
            key=url[len(SCHEME) + 3 :],
            query=query if query is not None else FIGURES[synset_id][0][0],
            rank=rank,
            license=LICENSE,
            author=AUTHOR,
            truth_synset=scene.figure,
            boxes=scene.boxes,
            extra={**scene.extra, "width": scene.width, "height": scene.height},
        )

    def refs(
        self, synset_ids: Iterable[str], per_synset: int | None = None, hierarchy: Any = None
    ) -> Iterator[CandidateRef]:
        """`per_synset` results per synset (default: the constructor's), ranks 1..n, queries rotating."""
        count = self.per_synset if per_synset is None else per_synset
        for synset_id in synset_ids:
            if not self.supports(synset_id):
                if self.strict:
                    raise InputError(
                        f"synthetic: {synset_id} is not a plane figure this source can draw "
                        f"(use one of the {len(FIGURES)} synsets under {ROOT})"
                    )
                continue
            queries = _queries(hierarchy, synset_id)
            for rank in range(1, count + 1):
                yield self.ref(synset_id, rank, queries[(rank - 1) % len(queries)])

    def render(self, ref: CandidateRef | str) -> bytes:
        """JPEG bytes of one of this source's refs."""
        return render(ref)
