"""The per-image pipeline: validate downloaded bytes, decode safely, normalise to an RGB JPEG, hash.

`process_image(data, policy)` returns a `ProcessedImage` or a `Rejected` with a machine-readable reason; it
never raises on bad input, because a crawl sees every kind of broken payload. Reasons:

* ``empty`` (0 bytes), ``not_image`` (HTML, SVG, XML, text or an unknown signature: the content is sniffed
  from the bytes, a Content-Type is never trusted), ``unsupported_format`` (an image format the policy or
  this Pillow build does not take),
* ``decompression_bomb`` (width x height from the header above `max_pixels`, checked before any pixel is
  decoded; Pillow's own bomb error and warning count too), ``corrupt`` (undecodable), ``truncated``,
* ``aspect_ratio`` (longer/shorter side above `max_aspect`), ``too_small`` (shorter side below
  `min_side`); checked in this order, both from the header.

Speed: baseline RGB/grey JPEGs (almost all of the web) are decoded with simplejpeg (libjpeg-turbo) and,
when the target size allows, at 1/2, 1/4 or 1/8 scale in the DCT domain, never below the target size;
simplejpeg also encodes. Everything else goes through Pillow (with `draft` for CMYK JPEGs). The final
resize uses `policy.resample` (default BOX, i.e. area averaging like OpenCV's INTER_AREA that
img2dataset uses). The pHash is taken from the normalised image (before JPEG encoding).

Orientation: EXIF orientation is applied, and `orig_width`/`orig_height` are the *oriented* original size,
so ``width / orig_width`` is the scale factor for boxes drawn on the image as a browser shows it.

Thread-safe except for one detail: turning Pillow's DecompressionBombWarning into an error uses the
process-wide warnings filter, which Python does not guard; the explicit `max_pixels` check does not rely on
it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import simplejpeg
from PIL import Image, features

from synsetforge.candidates.phash import phash as image_phash
from synsetforge.candidates.types import ProcessedImage, Rejected
from synsetforge.errors import InputError

RESIZE_MODES = ("keep", "shorter", "longer")
RESAMPLE = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF"})

# EXIF orientation -> the transpose that shows the image upright (as PIL.ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_CODEC_FEATURE = {"WEBP": "webp", "AVIF": "avif", "JPEG": "jpg", "JPEG2000": "jpg_2000"}
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImagePolicy:
    """What images are accepted and how they are normalised.

    `resize`: "keep" the size, scale the "shorter" or the "longer" side to `size` pixels; never upscales.
    `max_pixels` bounds width x height from the header (above Pillow's `Image.MAX_IMAGE_PIXELS` Pillow's
    own limit applies too). `fast_jpeg=False` forces Pillow for JPEGs as well (for comparisons).
    """

    resize: str = "longer"
    size: int = 500
    jpeg_quality: int = 90
    resample: str = "box"
    min_side: int = 64
    max_aspect: float = 5.0
    max_pixels: int = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS
    formats: frozenset[str] = field(default=DEFAULT_FORMATS)
    fast_jpeg: bool = True
    background: tuple[int, int, int] = (255, 255, 255)  # transparent pixels are composited onto this

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise InputError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if self.resize != "keep" and self.size < 1:
            raise InputError(f"resize size must be at least 1 pixel, got {self.size}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InputError(f"jpeg quality must be in 1..100, got {self.jpeg_quality}")
        if self.resample not in RESAMPLE:
            raise InputError(f"resample must be one of {', '.join(RESAMPLE)}, got {self.resample!r}")
        if self.min_side < 1 or self.max_pixels < 1 or self.max_aspect < 1:
            raise InputError("min_side and max_pixels must be positive and max_aspect at least 1")
        object.__setattr__(self, "formats", frozenset(f.upper() for f in self.formats))

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """The normalised size of an upright `width` x `height` image under this policy."""
        return target_size(width, height, self.resize, self.size)


def target_size(width: int, height: int, mode: str, size: int) -> tuple[int, int]:
    """Scale so the shorter/longer side becomes `size` (rounded half up, at least 1); never upscale."""
    if mode == "keep":
        return width, height
    side_is_width = (width <= height) if mode == "shorter" else (width >= height)
    ref, other = (width, height) if side_is_width else (height, width)
    if ref <= size:
        return width, height
    scaled = max(1, (2 * other * size + ref) // (2 * ref))
    return (size, scaled) if side_is_width else (scaled, size)


# ---------------------------------------------------------------------------------------------- sniffing
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"%PDF", "PDF"),
    (b"\xff\x0a", "JXL"),
    (b"\x00\x00\x00\x0cJXL ", "JXL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"8BPS", "PSD"),
    (b"qoif", "QOI"),
)
_HEIF_BRANDS = {b"heic": "HEIF", b"heix": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF", b"hevc": "HEIF"}
_AVIF_BRANDS = {b"avif", b"avis"}


def sniff(data: bytes) -> str | None:
    """The image format named by the leading bytes (Pillow's names), or None when it is not a known image."""
    head = data[:32]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        return _HEIF_BRANDS.get(brand)
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def describe_non_image(data: bytes) -> str:
    """A short description of a payload that is not an image (for `Rejected.detail`)."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\x00").lower()
    if head.startswith(b"<"):
        if b"<svg" in head:
            return "SVG document"
        if b"<html" in head or b"<!doctype html" in head or b"<head" in head or b"<body" in head:
            return "HTML document"
        return "XML/markup document"
    if head[:1] in (b"{", b"[") and b"\x00" not in head:
        return "JSON/text document"
    sample = data[:512]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    if sample and printable >= 0.95 * len(sample):
        return "text document"
    return f"unknown signature {data[:8].hex()}"


# ---------------------------------------------------------------------------------------------- decoding
class _Reject(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _pillow_formats(fmt: str) -> list[str]:
    return ["JPEG", "MPO"] if fmt == "JPEG" else [fmt]


def _decode_error(exc: Exception) -> _Reject:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return _Reject("decompression_bomb", text)
    if "truncated" in str(exc).lower() or "premature end" in str(exc).lower():
        return _Reject("truncated", text)
    return _Reject("corrupt", text)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF must not sink an otherwise good image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft_scale(width: int, height: int, need_w: int, need_h: int) -> int:
    """Largest DCT scale denominator (8, 4, 2, 1) that still decodes at least need_w x need_h."""
    for scale in (8, 4, 2):
        if scale * need_w <= width and scale * need_h <= height:
            return scale
    return 1


def _to_8bit_grey(im: Image.Image) -> Image.Image:
    """16/32-bit and float grey images scaled (not clipped, as Pillow's convert does) to 8 bits."""
    arr = np.asarray(im).astype(np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if im.mode == "F":
        low = float(arr.min()) if arr.size else 0.0
        if low >= 0.0 and top <= 1.0:  # the usual 0..1 float convention
            arr = arr * 255.0
        else:
            arr = (arr - low) * (255.0 / (top - low or 1.0))
    elif im.mode.startswith("I;16") or top > 255:
        arr = arr * (255.0 / max(65535.0, top))
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow image as 8-bit RGB: transparency composited onto `background`, CMYK/16-bit/etc. converted."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I") or mode == "F":
        return _to_8bit_grey(im).convert("RGB")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa", "RGBX"):
        im = im.convert("RGBA" if mode != "RGBX" else "RGB")
    elif mode in ("L", "1", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        out = Image.new("RGB", im.size, background)
        out.paste(im.convert("RGB"), mask=im.getchannel("A"))
        return out
    return im.convert("RGB")


def _open(data: bytes, fmt: str, policy: ImagePolicy) -> Image.Image:
    with warnings.catch_warnings():
        escalate = policy.max_pixels <= (Image.MAX_IMAGE_PIXELS or policy.max_pixels)
        warnings.simplefilter("error" if escalate else "ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=_pillow_formats(fmt))
        except Exception as exc:
            raise _decode_error(exc) from None


def _decode_fast_jpeg(data: bytes, width: int, height: int, need: tuple[int, int]) -> Image.Image | None:
    """simplejpeg decode at the largest power-of-two reduction that keeps `need`; None if libjpeg complains."""
    scale = _draft_scale(width, height, *need)
    try:
        if scale == 1:
            arr = simplejpeg.decode_jpeg(data, colorspace="RGBX")
        else:
            arr = simplejpeg.decode_jpeg(
                data,
                colorspace="RGBX",
                min_width=-(-width // scale),
                min_height=-(-height // scale),
            )
    except Exception:  # any libjpeg warning (strict mode): let Pillow give the verdict
        return None
    if arr.shape[1] < need[0] or arr.shape[0] < need[1]:
        return None
    # RGBX is Pillow's own pixel layout, so the decoded buffer is shared, not copied into a new image.
    return Image.frombuffer("RGBX", (arr.shape[1], arr.shape[0]), arr, "raw", "RGBX", 0, 1)


def _decode(data: bytes, fmt: str, policy: ImagePolicy) -> tuple[Image.Image, str, int, int]:
    """Validated, upright, RGB(X), resized image plus (format, oriented original width, height)."""
    im = _open(data, fmt, policy)
    width, height = im.size
    if width * height > policy.max_pixels:
        raise _Reject(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels > {policy.max_pixels}"
        )
    if max(width, height) > policy.max_aspect * min(width, height):
        raise _Reject("aspect_ratio", f"{width}x{height}, aspect > {policy.max_aspect:g}")
    if min(width, height) < policy.min_side:
        raise _Reject("too_small", f"{width}x{height}, shorter side < {policy.min_side}")
    real_format = im.format or fmt
    is_jpeg = real_format in ("JPEG", "MPO")
    orientation = _orientation(im) if is_jpeg else 1

    def needed(orient: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(target size upright, the same in file orientation)."""
        upright = (height, width) if orient in _SWAPS_AXES else (width, height)
        tw, th = policy.target_size(*upright)
        return (tw, th), ((th, tw) if orient in _SWAPS_AXES else (tw, th))

    target, need = needed(orientation)
    decoded: Image.Image | None = None
    if is_jpeg and policy.fast_jpeg and im.mode in ("RGB", "L"):
        decoded = _decode_fast_jpeg(data, width, height, need)
    if decoded is None:
        try:
            if is_jpeg:
                im.draft(None, need)
            im.load()
        except Exception as exc:
            raise _decode_error(exc) from None
        if not is_jpeg:
            orientation = _orientation(im)
            target, need = needed(orientation)
        try:
            decoded = to_rgb(im, policy.background)
        except Exception as exc:
            raise _decode_error(exc) from None
    if decoded.size != need:
        decoded = decoded.resize(
            need,
            RESAMPLE[policy.resample],
            reducing_gap=3.0 if decoded.width >= 3 * need[0] and policy.resample != "box" else None,
        )
    if orientation in _TRANSPOSE:
        decoded = decoded.transpose(_TRANSPOSE[orientation])
    assert decoded.size == target
    upright = (height, width) if orientation in _SWAPS_AXES else (width, height)
    return decoded, real_format, upright[0], upright[1]


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """RGB or RGBX image -> baseline JPEG, 4:2:0, via libjpeg-turbo."""
    return bytes(
        simplejpeg.encode_jpeg(
            np.asarray(image), quality=quality, colorspace=image.mode, colorsubsampling="420"
        )
    )


@functools.cache
def _can_decode(fmt: str) -> bool:
    """Whether this Pillow build has a decoder for `fmt` (asked once per format and process)."""
    Image.init()  # registers every plugin
    return fmt in Image.OPEN and (fmt not in _CODEC_FEATURE or bool(features.check(_CODEC_FEATURE[fmt])))


def process_image(data: bytes, policy: ImagePolicy | None = None) -> ProcessedImage | Rejected:
    """Validate and normalise one downloaded payload (see the module docstring for reasons and speed)."""
    policy = policy or DEFAULT_POLICY
    if not data:
        return Rejected("empty", "0 bytes")
    fmt = sniff(data)
    if fmt is None:
        return Rejected("not_image", describe_non_image(data))
    if fmt not in policy.formats:
        return Rejected("unsupported_format", f"{fmt} is not accepted by the policy")
    if not _can_decode(fmt):
        return Rejected("unsupported_format", f"this Pillow build cannot decode {fmt}")
    try:
        image, real_format, orig_w, orig_h = _decode(data, fmt, policy)
    except _Reject as rej:
        return Rejected(rej.reason, rej.detail)
    return ProcessedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        data=encode_jpeg(image, policy.jpeg_quality),
        width=image.width,
        height=image.height,
        orig_width=orig_w,
        orig_height=orig_h,
        orig_bytes=len(data),
        orig_format=real_format,
        phash=image_phash(image),
    )


DEFAULT_POLICY = ImagePolicy()
