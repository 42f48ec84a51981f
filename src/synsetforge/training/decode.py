"""Decode a stored image straight to the square uint8 array the network is fed, as cheaply as possible.

This module is what the loader's worker processes run, so it imports only numpy, Pillow and simplejpeg.

Speed comes from not decoding pixels that are thrown away: JPEG's DCT can decode at 1/2, 1/4 or 1/8 scale
for free, so a 500 x 375 JPEG wanted at 73 px is decoded at 1/4 (125 x 94) by simplejpeg (`min_width` /
`min_height`) and only then resized with Pillow. Other formats go through Pillow (with `draft` where the
format has one).

How a non-square image becomes square (`fit`):
- ``crop``: resize the shorter side to `size`, keep the centre square (the usual ImageNet practice);
- ``pad``: resize the longer side to `size` and letterbox with the image's mean colour, so nothing of the
  image is lost (right for images whose object may touch any border, like the demo's figures);
- ``stretch``: resize both sides to `size`, distorting the aspect ratio.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

FITS = ("crop", "pad", "stretch")
_MAX_PIXELS = 40_000_000  # refuse larger images (a decompression bomb would not be in a release, but be safe)


class DecodeError(Exception):
    """The bytes are not an image this loader can read (a corrupt or truncated blob)."""


def _resize_target(width: int, height: int, size: int, fit: str) -> tuple[int, int]:
    if fit == "stretch":
        return size, size
    scale = size / (min(width, height) if fit == "crop" else max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_jpeg(data: bytes, size: int, fit: str) -> Image.Image | None:
    """Decode at the smallest DCT scale that still covers the target size; None when not a JPEG."""
    try:
        width, height, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if width * height > _MAX_PIXELS:
        raise DecodeError(f"image of {width} x {height} pixels is too large")
    tw, th = _resize_target(width, height, size, fit)
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=tw, min_height=th, strict=True)
    except ValueError as exc:
        raise DecodeError(str(exc)) from None
    return Image.fromarray(arr, "RGB")


def _decode_pillow(data: bytes, size: int, fit: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > _MAX_PIXELS:
                raise DecodeError(f"image of {im.width} x {im.height} pixels is too large")
            tw, th = _resize_target(im.width, im.height, size, fit)
            im.draft("RGB", (tw, th))
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(str(exc)) from None


def to_square(image: Image.Image, size: int, fit: str) -> np.ndarray:
    """The image as uint8 [size, size, 3], made square as `fit` says."""
    tw, th = _resize_target(image.width, image.height, size, fit)
    if (image.width, image.height) != (tw, th):
        image = image.resize((tw, th), Image.Resampling.BILINEAR, reducing_gap=None)
    arr = np.asarray(image)
    if fit == "crop":
        y0, x0 = (th - size) // 2, (tw - size) // 2
        return np.ascontiguousarray(arr[y0 : y0 + size, x0 : x0 + size])
    if fit == "pad":
        out = np.empty((size, size, 3), dtype=np.uint8)
        out[:] = arr.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        y0, x0 = (size - th) // 2, (size - tw) // 2
        out[y0 : y0 + th, x0 : x0 + tw] = arr
        return out
    return np.ascontiguousarray(arr)


def decode(data: bytes, size: int, fit: str = "crop") -> np.ndarray:
    """Image bytes -> uint8 [size, size, 3] RGB; DecodeError when the bytes are not a readable image."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    image = _decode_jpeg(data, size, fit) if data[:2] == b"\xff\xd8" else None
    if image is None:
        image = _decode_pillow(data, size, fit)
    return to_square(image, size, fit)


def decode_into(
    out: np.ndarray, sources: list[tuple[int, str | bytes]], size: int, fit: str
) -> list[tuple[int, str]]:
    """Decode each (row, file path or bytes) into `out[row]`; returns (row, reason) of those that failed."""
    failed: list[tuple[int, str]] = []
    for row, src in sources:
        try:
            data = Path(src).read_bytes() if isinstance(src, str) else src
            out[row] = decode(data, size, fit)
        except (DecodeError, OSError) as exc:
            failed.append((row, str(exc) or type(exc).__name__))
    return failed
