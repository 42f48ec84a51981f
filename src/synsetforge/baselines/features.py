"""Hand-engineered image features of the 2010-2011 ILSVRC entries, in numpy, for whole batches at once.

* HOG (Dalal & Triggs 2005): centred [-1, 0, 1] gradients, unsigned orientation in 9 bins with linear
  interpolation between neighbouring bins, 8 x 8-pixel cells, 2 x 2-cell blocks normalised with L2-Hys
  (L2, clip at 0.2, L2 again). Written here rather than taken from scikit-image to keep that dependency
  out; `bench/hog_features.py` compares the two.
* a joint RGB colour histogram (4 levels per channel, 64 bins, fractions of the pixels).
* dense SIFT (Lowe 2004, computed densely as VLFeat's `dsift`/`phow` do; the 2010 ILSVRC devkit's demo
  used it): 4 x 4 cells x 8 orientation bins on overlapping patches on a regular grid, at one or more cell
  sizes. Orientations come from the colour gradient (Di Zenzo's structure tensor over the RGB channels) and
  are unsigned (0-180 degrees where SIFT uses 0-360), so the descriptors do not change when an image's
  colours are inverted or its channels swapped.
  Cells are summed with separable box filters (cumulative sums), so a batch costs a few array passes.

Only numpy is needed, so the benchmarks can import this module from a venv without the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synsetforge.errors import InputError


def hog(
    gray: np.ndarray, *, cell: int = 8, bins: int = 9, block: int = 2, clip: float = 0.2, eps: float = 1e-6
) -> np.ndarray:
    """HOG descriptors of grey images [B, H, W] (or one [H, W]) -> float64 [B, D].

    D = (H//cell - block + 1) * (W//cell - block + 1) * block^2 * bins; pixels beyond whole cells are
    dropped. Gradients on the image border are 0 (no padding), as in the common implementations.
    """
    g = np.asarray(gray)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3:
        raise InputError(f"hog: expected images [B, H, W], got shape {g.shape}")
    n, height, width = g.shape
    ny, nx = height // cell, width // cell
    if ny < block or nx < block:
        raise InputError(
            f"hog: images of {height}x{width} are too small for {block}x{block} blocks of {cell}-pixel cells"
        )
    g = np.ascontiguousarray(g[:, : ny * cell, : nx * cell], dtype=np.float32)  # float32: half the traffic
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    np.subtract(g[:, :, 2:], g[:, :, :-2], out=gx[:, :, 1:-1])
    np.subtract(g[:, 2:, :], g[:, :-2, :], out=gy[:, 1:-1, :])
    magnitude = np.hypot(gx, gy)
    # unsigned orientation in bin units; bin k is centred on (k + 0.5) * 180 / bins degrees
    position = np.arctan2(gy, gx)
    position *= bins / np.pi
    position %= bins
    position -= 0.5
    low = np.floor(position)
    high_weight = magnitude * (position - low)
    low_weight = magnitude - high_weight
    k0 = low.astype(np.int64) % bins
    k1 = k0 + 1
    k1[k1 == bins] = 0
    rows = np.arange(ny * cell) // cell
    cols = np.arange(nx * cell) // cell
    cell_base = ((np.arange(n)[:, None, None] * ny + rows[None, :, None]) * nx + cols[None, None, :]) * bins
    size = n * ny * nx * bins
    hist = np.bincount((cell_base + k0).ravel(), low_weight.ravel(), minlength=size)
    hist += np.bincount((cell_base + k1).ravel(), high_weight.ravel(), minlength=size)
    hist = hist.reshape(n, ny, nx, bins)
    windows = np.lib.stride_tricks.sliding_window_view(hist, (block, block), axis=(1, 2))
    v = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n, ny - block + 1, nx - block + 1, block * block * bins)
    v = v / np.sqrt((v**2).sum(axis=-1, keepdims=True) + eps**2)
    v = np.minimum(v, clip)
    v = v / np.sqrt((v**2).sum(axis=-1, keepdims=True) + eps**2)
    return v.reshape(n, -1)


def colour_histogram(rgb: np.ndarray, *, levels: int = 4) -> np.ndarray:
    """Joint RGB histogram of uint8 images [B, H, W, 3] -> float64 [B, levels^3], rows summing to 1."""
    a = np.asarray(rgb)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise InputError(f"colour_histogram: expected images [B, H, W, 3], got shape {a.shape}")
    q = (a.astype(np.int64) * levels) // 256
    code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    n = a.shape[0]
    bins = levels**3
    flat = (code + np.arange(n)[:, None, None] * bins).ravel()
    counts = np.bincount(flat, minlength=n * bins).reshape(n, bins).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


# -- dense SIFT -------------------------------------------------------------------------------------


def oriented_gradients(images: np.ndarray, *, bins: int = 8) -> np.ndarray:
    """Per-pixel gradient energy split into `bins` unsigned orientation channels: float32 [B, bins, H, W].

    Colour images [B, H, W, 3] combine their channels' gradients as Di Zenzo (1986) does: the direction
    and strength of the largest change of colour, from the structure tensor summed over the channels, so
    that an edge between two colours of equal brightness is still an edge and the result does not depend on
    the order of the channels; a grey image [B, H, W] gives its plain gradient. Orientations are unsigned
    (0-180 degrees), so an image and its colour negative give the same result: a figure of random colour on
    a random background looks the same whichever is darker. Gradients are centred differences (0 on the
    border); each pixel's magnitude is split linearly between the two nearest bins, bin k being centred on
    k * 180 / bins degrees.
    """
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[-1] == 3:
        a = np.moveaxis(a, -1, 1)  # [B, 3, H, W]
    elif a.ndim == 3:
        a = a[:, None]
    else:
        raise InputError(f"dense SIFT: expected images [B, H, W] or [B, H, W, 3], got shape {a.shape}")
    g = a.astype(np.float32)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    np.subtract(g[..., :, 2:], g[..., :, :-2], out=gx[..., :, 1:-1])
    np.subtract(g[..., 2:, :], g[..., :-2, :], out=gy[..., 1:-1, :])
    # structure tensor [[xx, xy], [xy, yy]] summed over channels; in double-angle form (u, v) its largest
    # eigenvalue is (xx + yy + |(u, v)|) / 2 and that eigenvector's angle is atan2(v, u) / 2
    xx = (gx * gx).sum(axis=1)
    yy = (gy * gy).sum(axis=1)
    u = xx - yy
    v = 2.0 * (gx * gy).sum(axis=1)
    magnitude = np.sqrt(0.5 * (xx + yy + np.hypot(u, v)))
    position = np.arctan2(v, u)
    position *= bins / (2.0 * np.pi)
    position %= bins
    low = np.floor(position)
    high_weight = magnitude * (position - low)
    low_weight = magnitude - high_weight
    k0 = low.astype(np.int8)
    k0[k0 >= bins] = 0  # float rounding can land exactly on `bins`
    k1 = k0 + 1
    k1[k1 == bins] = 0
    out = np.zeros((g.shape[0], bins, *magnitude.shape[1:]), dtype=np.float32)
    np.put_along_axis(out, k0[:, None].astype(np.intp), low_weight[:, None], axis=1)
    np.put_along_axis(out, k1[:, None].astype(np.intp), high_weight[:, None], axis=1)  # k1 != k0: no clash
    return out


def _box_sums(x: np.ndarray, width: int, axis: int, start: int = 0, step: int = 1) -> np.ndarray:
    """Sums of `width` consecutive pixels along `axis`, for runs starting at start, start + step, ..."""
    c = np.cumsum(x, axis=axis, dtype=np.float32)
    n = x.shape[axis]
    ends = np.arange(start + width - 1, n, step)
    out = np.take(c, ends, axis=axis)
    before = ends - width
    if before[0] < 0:
        inner = np.take(c, before[1:], axis=axis)
        tail = (slice(None),) * axis + (slice(1, None),)
        out[tail] -= inner
    else:
        out -= np.take(c, before, axis=axis)
    return out


def dense_sift(
    images: np.ndarray,
    *,
    cell: int | Sequence[int] = 4,
    step: int | None = None,
    bins: int = 8,
    grid: int = 4,
    clip: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """SIFT-like descriptors on a dense grid of overlapping patches, as VLFeat's `dsift`/`phow` compute them
    (the 2010 ILSVRC devkit's demo used dense SIFT), for a batch of images [B, H, W, 3] (or grey [B, H, W]).

    Each patch is `grid` x `grid` cells of `cell` x `cell` pixels; each cell is a `bins`-bin histogram of
    unsigned gradient orientations (`oriented_gradients`) under a triangular window two cells wide, so that
    a pixel shares its vote between neighbouring cells (SIFT's trilinear interpolation, minus the Gaussian
    window over the patch). Patches start every `step` pixels (default: half a cell). A descriptor is
    L2-normalised, clipped at `clip` and normalised again (Lowe). Several cell sizes (`cell=(4, 6)`) give
    patches at several scales, as in `phow`; their descriptors are concatenated.

    Returns (float32 [B, P, grid*grid*bins] descriptors, float64 [P, 2] patch centres as (y, x) fractions
    of the image height and width).
    """
    sizes = (cell,) if isinstance(cell, int) else tuple(cell)
    if not sizes or min(sizes) < 1 or grid < 1 or (step is not None and step < 1):
        raise InputError(f"dense SIFT: cell sizes {sizes}, step ({step}) and grid ({grid}) must be positive")
    o = oriented_gradients(images, bins=bins)
    parts = [_dense_sift_one(o, c, step or max(1, c // 2), grid, clip) for c in sizes]
    return np.concatenate([d for d, _ in parts], axis=1), np.concatenate([c for _, c in parts])


def _dense_sift_one(
    o: np.ndarray, cell: int, step: int, grid: int, clip: float
) -> tuple[np.ndarray, np.ndarray]:
    n, nb, height, width = o.shape
    span = (grid + 1) * cell - 1  # pixels one patch reads (its triangular windows reach half a cell out)
    if height < span or width < span:
        raise InputError(
            f"dense SIFT: images of {height}x{width} are too small for {grid}x{grid} cells of {cell} pixels"
        )
    # A triangular window (a box filter applied twice) 2*cell-1 pixels wide, scaled so that its weights sum
    # to `cell` per axis like a plain cell's; index i is centred on pixel i + cell - 1. The second pass is
    # only evaluated where cells are read: every `step` pixels when step divides cell, else every pixel.
    stride = step if cell % step == 0 else 1
    cells = _box_sums(o, cell, axis=2)
    cells = _box_sums(cells, cell, axis=2, step=stride)
    cells = _box_sums(cells, cell, axis=3)
    cells = _box_sums(cells, cell, axis=3, step=stride)
    cells *= 1.0 / (cell * cell)
    ys = np.arange(0, height - span + 1, step)
    xs = np.arange(0, width - span + 1, step)
    offsets = np.arange(grid) * cell
    iy = ((ys[:, None] + offsets) // stride)[:, None, :, None]
    ix = ((xs[:, None] + offsets) // stride)[None, :, None, :]
    # [B, bins, Y, X, grid, grid] -> [B, Y, X, grid, grid, bins]
    d = cells[:, :, iy, ix].transpose(0, 2, 3, 4, 5, 1).reshape(n, len(ys) * len(xs), grid * grid * nb)
    d /= np.maximum(np.sqrt((d * d).sum(axis=-1, keepdims=True)), 1e-6)
    np.minimum(d, clip, out=d)
    d /= np.maximum(np.sqrt((d * d).sum(axis=-1, keepdims=True)), 1e-6)
    centre = span / 2.0
    cy = (ys + centre) / height
    cx = (xs + centre) / width
    centres = np.stack(np.meshgrid(cy, cx, indexing="ij"), axis=-1).reshape(-1, 2)
    return d, centres
