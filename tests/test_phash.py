"""pHash: same bits as the textbook algorithm (and imagehash), robust to re-encoding, distinct across images."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import scipy.fft
from PIL import Image, ImageDraw, ImageEnhance

from synsetforge.candidates.phash import (
    hamming,
    phash,
    phash_batch,
    phash_pixels,
    thumbnail,
    to_hex,
    to_signed,
    to_unsigned,
)


def reference_phash(pixels: np.ndarray) -> int:
    """imagehash.phash's steps written out: full 2-D DCT, top-left 8x8, above-median bits, MSB first."""
    dct = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)
    low = dct[:8, :8]
    bits = (low > np.median(low)).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def scene(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A textured test picture: smooth random background plus a few filled shapes."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    im = Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(0, 250, 2))
        x1, y1 = x0 + int(rng.integers(30, 150)), y0 + int(rng.integers(30, 150))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return im


def jpeg_roundtrip(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_matches_the_reference_algorithm() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        pixels = rng.uniform(0, 255, (32, 32))
        assert phash_pixels(pixels) == reference_phash(pixels)
    for seed in range(10):
        pixels = thumbnail(scene(seed), "lanczos")
        assert phash_pixels(pixels) == reference_phash(pixels)


def test_batch_equals_single() -> None:
    rng = np.random.default_rng(1)
    stack = rng.uniform(0, 255, (40, 32, 32))
    batch = phash_batch(stack)
    assert batch.dtype == np.uint64 and batch.shape == (40,)
    assert [int(h) for h in batch] == [phash_pixels(p) for p in stack]
    with pytest.raises(ValueError):
        phash_batch(rng.uniform(0, 1, (2, 16, 16)))


def test_same_bits_as_imagehash() -> None:
    imagehash = pytest.importorskip("imagehash")  # optional test dependency
    for seed in range(12):
        im = scene(seed)
        assert phash(im, "lanczos") == int(str(imagehash.phash(im)), 16)
    assert to_hex(phash(scene(3), "lanczos")) == str(imagehash.phash(scene(3)))


@pytest.mark.parametrize("resample", ["box", "lanczos"])
def test_robust_to_resizing_recompression_and_brightness(resample: str) -> None:
    worst = 0
    for seed in range(12):
        im = scene(seed)
        h = phash(im, resample)
        variants = [
            im.resize((200, 150), Image.Resampling.BILINEAR),
            im.resize((640, 480), Image.Resampling.BICUBIC),
            jpeg_roundtrip(im, 40),
            ImageEnhance.Brightness(im).enhance(1.08),
            im.convert("L"),
        ]
        worst = max(worst, *(hamming(h, phash(v, resample)) for v in variants))
    assert worst <= 6


def test_different_pictures_are_far_apart() -> None:
    hashes = [phash(scene(seed)) for seed in range(30)]
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert np.median(distances) >= 24
    assert sum(d <= 8 for d in distances) <= len(distances) // 100


def test_box_and_lanczos_thumbnails_agree_closely() -> None:
    distances = [hamming(phash(scene(s), "box"), phash(scene(s), "lanczos")) for s in range(20)]
    assert max(distances) <= 6


def test_integer_helpers() -> None:
    assert hamming(0, (1 << 64) - 1) == 64
    assert hamming(0b1011, 0b0001) == 2
    for h in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        s = to_signed(h)
        assert -(1 << 63) <= s < 1 << 63
        assert to_unsigned(s) == h
    assert to_hex(255) == "00000000000000ff"
