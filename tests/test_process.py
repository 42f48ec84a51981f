"""The per-image pipeline: every kind of bad payload, colour modes, orientation, resize policies."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from synsetforge.candidates import process as proc
from synsetforge.candidates.process import ImagePolicy, process_image, sniff, target_size
from synsetforge.candidates.types import ProcessedImage, Rejected
from synsetforge.errors import InputError

KEEP = ImagePolicy(resize="keep")


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth image with some texture (compresses like a photo, unlike flat colour)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    base = Image.fromarray(grid, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 13, (height, width, 1))
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(width: int = 500, height: int = 375, seed: int = 0, **kw: object) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=90, **kw)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but carries none: what a decompression bomb's header says."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def jpeg_header_only(width: int, height: int) -> bytes:
    """A baseline JPEG header (SOI, DQT, SOF0) for width x height, then SOS with no scan data."""
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes([1] * 64)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof += b"\x01\x22\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 12, 3) + b"\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + dqt + sof + sos


def ok(result: ProcessedImage | Rejected) -> ProcessedImage:
    assert isinstance(result, ProcessedImage), result
    return result


def rejected(result: ProcessedImage | Rejected, reason: str) -> Rejected:
    assert isinstance(result, Rejected), f"expected {reason}, got {result}"
    assert result.reason == reason, result
    return result


def rgb_at(im: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.asarray(im.convert("RGB"))[y, x])
    return r, g, b


def decoded(result: ProcessedImage) -> Image.Image:
    im = Image.open(io.BytesIO(result.data))
    assert im.format == "JPEG"
    assert im.size == (result.width, result.height)
    return im.convert("RGB")


# ------------------------------------------------------------------------------------------ bad input
def test_empty() -> None:
    rejected(process_image(b""), "empty")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
        (b"\xef\xbb\xbf\n  <html><head><title>x</title></head></html>", "HTML"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10"/>', "SVG"),
        (b'<svg viewBox="0 0 10 10"><circle r="4"/></svg>', "SVG"),
        (b'{"error": "rate limited"}', "JSON"),
        (b"Access denied.\n" * 20, "text"),
    ],
)
def test_markup_and_text_are_not_images(payload: bytes, detail: str) -> None:
    assert detail in rejected(process_image(payload), "not_image").detail


def test_random_garbage_is_not_an_image() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        blob = rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
        if sniff(blob) is None:
            rejected(process_image(blob), "not_image")


def test_garbage_behind_a_jpeg_or_png_signature_is_corrupt() -> None:
    rng = np.random.default_rng(3)
    garbage = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    rejected(process_image(b"\xff\xd8\xff" + garbage), "corrupt")
    rejected(process_image(b"\x89PNG\r\n\x1a\n" + garbage), "corrupt")
    bad_crc = bytearray(encode(photo(80, 80), "PNG"))
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    rejected(process_image(bytes(bad_crc)), "corrupt")


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_jpeg(fast: bool, keep: float) -> None:
    data = jpeg()
    cut = data[: int(len(data) * keep)]
    rejected(process_image(cut, ImagePolicy(fast_jpeg=fast)), "truncated")


def test_truncated_progressive_jpeg() -> None:
    data = jpeg(progressive=True)
    rejected(process_image(data[: len(data) // 2]), "truncated")


def test_truncated_png() -> None:
    data = encode(photo(300, 200), "PNG")
    rejected(process_image(data[: len(data) // 2]), "truncated")


@pytest.mark.parametrize("make", [png_header_only, jpeg_header_only])
@pytest.mark.parametrize("side", [30_000, 10_000])
def test_decompression_bomb_header_rejected_before_decoding(
    make: Callable[[int, int], bytes], side: int
) -> None:
    data = make(side, side)
    assert len(data) < 200  # nothing was allocated for 10^8..10^9 pixels
    detail = rejected(process_image(data), "decompression_bomb").detail
    assert detail


def test_policy_max_pixels() -> None:
    data = jpeg(500, 375)
    rejected(process_image(data, ImagePolicy(max_pixels=500 * 375 - 1)), "decompression_bomb")
    ok(process_image(data, ImagePolicy(max_pixels=500 * 375)))


def test_too_small() -> None:
    rejected(process_image(jpeg(63, 200)), "too_small")
    ok(process_image(jpeg(64, 200)))
    ok(process_image(jpeg(20, 20), ImagePolicy(min_side=16)))


def test_aspect_ratio() -> None:
    one_by_thousand = encode(Image.new("RGB", (1, 1000), (10, 20, 30)), "PNG")
    rejected(process_image(one_by_thousand, ImagePolicy(min_side=1)), "aspect_ratio")
    rejected(process_image(one_by_thousand), "aspect_ratio")
    rejected(process_image(jpeg(1000, 150)), "aspect_ratio")  # 6.7 > 5
    ok(process_image(jpeg(1000, 200)))  # exactly 5


def test_unsupported_format() -> None:
    ico = encode(photo(64, 64), "ICO")
    rejected(process_image(ico), "unsupported_format")
    rejected(
        process_image(encode(photo(100, 100), "PNG"), ImagePolicy(formats=frozenset({"jpeg"}))),
        "unsupported_format",
    )


# ------------------------------------------------------------------------------------------ good input
def test_records_original_bytes_and_hashes() -> None:
    data = jpeg(500, 375)
    result = ok(process_image(data, ImagePolicy(resize="shorter", size=256)))
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.orig_bytes == len(data)
    assert result.orig_format == "JPEG"
    assert (result.orig_width, result.orig_height) == (500, 375)
    assert (result.width, result.height) == (341, 256)
    assert 0 <= result.phash < 1 << 64
    assert result.data[:3] == b"\xff\xd8\xff"
    assert process_image(data, ImagePolicy(resize="shorter", size=256)) == result  # deterministic


def test_content_survives() -> None:
    source = photo(400, 300, seed=5)
    result = ok(process_image(encode(source, "PNG"), KEEP))
    out = np.asarray(decoded(result), dtype=np.int16)
    assert np.abs(out - np.asarray(source, dtype=np.int16)).mean() < 4


def test_cmyk_jpeg() -> None:
    image = Image.new("CMYK", (120, 100), (0, 255, 255, 0))  # pure red in CMYK
    result = ok(process_image(encode(image, "JPEG", quality=95), KEEP))
    r, g, b = rgb_at(decoded(result), 60, 50)
    assert r > 200 and g < 60 and b < 60


def test_png_with_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (25, 25, 75, 75))
    out = decoded(ok(process_image(encode(rgba, "PNG"), KEEP)))
    assert min(rgb_at(out, 5, 5)) > 245
    r, g, b = rgb_at(out, 50, 50)
    assert r > 230 and g < 30 and b < 30


def test_palette_gif_with_transparency() -> None:
    im = Image.new("P", (90, 90), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (30, 30, 60, 60))
    out = decoded(ok(process_image(encode(im, "GIF", transparency=0), KEEP)))
    assert min(rgb_at(out, 3, 3)) > 240
    r, g, b = rgb_at(out, 45, 45)
    assert b > 220 and r < 40 and g < 40


def test_grey_la_and_16_bit() -> None:
    la = Image.new("LA", (80, 80), (0, 0))
    la.paste((50, 255), (20, 20, 60, 60))
    out = decoded(ok(process_image(encode(la, "PNG"), KEEP)))
    assert min(rgb_at(out, 2, 2)) > 245
    assert abs(rgb_at(out, 40, 40)[0] - 50) < 6

    sixteen = Image.fromarray(np.full((80, 80), 32768, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    out = decoded(ok(process_image(encode(sixteen, "PNG"), KEEP)))
    assert abs(rgb_at(out, 40, 40)[0] - 128) <= 2  # scaled, not clipped to 255

    grey_jpeg = encode(Image.new("L", (100, 100), 77), "JPEG", quality=95)
    out = decoded(ok(process_image(grey_jpeg, KEEP)))
    assert out.mode == "RGB" and abs(rgb_at(out, 50, 50)[1] - 77) < 3


def test_webp_bmp_tiff() -> None:
    for fmt in ("WEBP", "BMP", "TIFF"):
        result = ok(process_image(encode(photo(200, 150), fmt), KEEP))
        assert result.orig_format == fmt and (result.width, result.height) == (200, 150)


def marked(width: int, height: int) -> Image.Image:
    """Grey image with a red block in its top-left corner, to follow where the corner goes."""
    im = Image.new("RGB", (width, height), (128, 128, 128))
    im.paste((255, 0, 0), (0, 0, width // 4, height // 4))
    return im


@pytest.mark.parametrize("fast", [True, False])
def test_exif_orientation_is_applied(fast: bool) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    data = encode(marked(400, 200), "JPEG", quality=95, exif=exif.tobytes())
    result = ok(process_image(data, ImagePolicy(resize="keep", fast_jpeg=fast)))
    assert (result.width, result.height) == (200, 400)
    assert (result.orig_width, result.orig_height) == (200, 400)
    out = decoded(result)
    assert rgb_at(out, 190, 10)[0] > 200  # top-left went top-right
    assert rgb_at(out, 10, 10)[0] < 180

    small = ok(process_image(data, ImagePolicy(resize="shorter", size=100, fast_jpeg=fast)))
    assert (small.width, small.height) == (100, 200)


def test_exif_orientation_in_png() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    result = ok(process_image(encode(marked(300, 100), "PNG", exif=exif.tobytes()), KEEP))
    assert (result.width, result.height) == (100, 300)


# ------------------------------------------------------------------------------------------ resizing
@pytest.mark.parametrize(
    ("size", "mode", "n", "expected"),
    [
        ((500, 375), "shorter", 256, (341, 256)),
        ((500, 375), "longer", 256, (256, 192)),
        ((375, 500), "shorter", 256, (256, 341)),
        ((375, 500), "longer", 256, (192, 256)),
        ((500, 375), "keep", 256, (500, 375)),
        ((100, 80), "shorter", 256, (100, 80)),  # never upscale
        ((100, 80), "longer", 256, (100, 80)),
        ((256, 300), "shorter", 256, (256, 300)),
        ((640, 640), "longer", 500, (500, 500)),
        ((1001, 3), "longer", 10, (10, 1)),
        ((3, 1001), "shorter", 2, (2, 667)),
    ],
)
def test_target_size(size: tuple[int, int], mode: str, n: int, expected: tuple[int, int]) -> None:
    assert target_size(*size, mode, n) == expected


def test_target_size_is_exact_over_many_sizes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        w, h, n = (int(v) for v in rng.integers(1, 5000, 3))
        for mode in ("shorter", "longer"):
            tw, th = target_size(w, h, mode, n)
            side = min(w, h) if mode == "shorter" else max(w, h)
            if side <= n:
                assert (tw, th) == (w, h)
                continue
            ref_is_width = (w <= h) if mode == "shorter" else (w >= h)
            ref, other, scaled = (w, h, th) if ref_is_width else (h, w, tw)
            assert (tw if ref_is_width else th) == n
            exact = other * n / ref
            assert abs(scaled - exact) <= 0.5 or (scaled == 1 and exact < 1)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("width", "height", "mode", "n"),
    [
        (2000, 1500, "shorter", 256),  # 1/4 draft -> 500x375 -> 341x256
        (2048, 1536, "longer", 256),  # 1/8 draft -> 256x192 exactly
        (1025, 769, "longer", 256),  # 1/4 draft -> 257x193 -> 256x192
        (999, 333, "shorter", 111),  # 1/2 draft -> 500x167 -> 333x111
        (500, 375, "shorter", 256),  # no draft possible
        (1600, 1200, "keep", 0),
        (801, 601, "shorter", 300),  # 1/2 draft -> 401x301
    ],
)
def test_resized_size_is_exactly_the_policy(fast: bool, width: int, height: int, mode: str, n: int) -> None:
    data = jpeg(width, height, seed=width)
    result = ok(process_image(data, ImagePolicy(resize=mode, size=n, fast_jpeg=fast)))
    expected = target_size(width, height, mode, n)
    assert (result.width, result.height) == expected
    assert decoded(result).size == expected


def test_draft_scale_never_goes_below_the_target() -> None:
    assert proc._draft_scale(2000, 1500, 341, 256) == 4
    assert proc._draft_scale(500, 375, 341, 256) == 1
    assert proc._draft_scale(4000, 3000, 256, 192) == 8
    rng = np.random.default_rng(1)
    for _ in range(3000):
        w, h = (int(v) for v in rng.integers(16, 6000, 2))
        tw, th = target_size(w, h, str(rng.choice(["shorter", "longer"])), int(rng.integers(8, 800)))
        s = proc._draft_scale(w, h, tw, th)
        assert -(-w // s) >= tw and -(-h // s) >= th
        if s < 8:
            assert 2 * s * tw > w or 2 * s * th > h  # the next scale would have been too small


def test_fast_and_pillow_paths_agree() -> None:
    data = jpeg(1600, 1200, seed=9)
    policy = ImagePolicy(resize="shorter", size=300)
    fast = ok(process_image(data, policy))
    slow = ok(process_image(data, ImagePolicy(resize="shorter", size=300, fast_jpeg=False)))
    assert (fast.width, fast.height) == (slow.width, slow.height) == (400, 300)
    diff = np.abs(np.asarray(decoded(fast), np.int16) - np.asarray(decoded(slow), np.int16))
    assert diff.mean() < 3
    assert (fast.phash ^ slow.phash).bit_count() <= 4


def test_resize_reduces_like_an_area_filter() -> None:
    """A 2x2 checkerboard averages to grey when halved: no aliasing from the reduction."""
    board = np.indices((400, 400)).sum(axis=0) % 2 * 255
    im = Image.fromarray(np.repeat(board[:, :, None], 3, axis=2).astype(np.uint8))
    result = ok(process_image(encode(im, "PNG"), ImagePolicy(resize="longer", size=200, jpeg_quality=95)))
    out = np.asarray(decoded(result), np.float64)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 6


def test_policy_validation() -> None:
    with pytest.raises(InputError):
        ImagePolicy(resize="fit")
    with pytest.raises(InputError):
        ImagePolicy(jpeg_quality=0)
    with pytest.raises(InputError):
        ImagePolicy(resample="cubic-ish")
    with pytest.raises(InputError):
        ImagePolicy(resize="shorter", size=0)
    assert ImagePolicy(formats=frozenset({"png"})).formats == frozenset({"PNG"})


def test_sniff() -> None:
    assert sniff(jpeg(80, 80)) == "JPEG"
    assert sniff(encode(photo(80, 80), "PNG")) == "PNG"
    assert sniff(encode(photo(80, 80), "GIF")) == "GIF"
    assert sniff(encode(photo(80, 80), "WEBP")) == "WEBP"
    assert sniff(b"\x00\x00\x00\x1cftypavif" + bytes(20)) == "AVIF"
    assert sniff(b"\x00\x00\x00\x18ftypheic" + bytes(20)) == "HEIF"
    assert sniff(b"<html>") is None
