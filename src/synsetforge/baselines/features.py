"""Hand-engineered image features of the 2010-2011 ILSVRC entries, in numpy, for whole batches at once.

* HOG (Dalal & Triggs 2005): centred [-1, 0, 1] gradients, unsigned orientation in 9 bins with linear
  interpolation between neighbouring bins, 8 x 8-pixel cells, 2 x 2-cell blocks normalised with L2-Hys
  (L2, clip at 0.2, L2 again). Written here rather than taken from scikit-image to keep that dependency
  out; `bench/hog_features.py` compares the two.
* a joint RGB colour histogram (4 levels per channel, 64 bins, fractions of the pixels).

Only numpy is needed, so the benchmarks can import this module from a venv without the rest.
"""

from __future__ import annotations

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
