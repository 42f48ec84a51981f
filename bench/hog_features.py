"""Benchmark: synsetforge's batched numpy HOG against scikit-image's `feature.hog` (the peer).

Same parameters on both sides (9 orientations, 8 x 8-pixel cells, 2 x 2-cell blocks, L2-Hys) on random
grey images. scikit-image bins each pixel into one orientation bin while ours splits it linearly between
the two nearest (Dalal & Triggs), so the descriptors are close but not equal: the script prints their
mean cosine similarity next to the speed ratio and the peak RSS.

    .bench-venv/bin/python bench/hog_features.py                 # 2,000 images of 64 x 64
    .bench-venv/bin/python bench/hog_features.py --images 200 --size 128
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from synsetforge.baselines.features import hog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256, help="images per numpy call (the baseline uses 256)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # smooth random images: a little structure so orientations are not uniform noise
    raw = rng.random((args.images, args.size // 4, args.size // 4))
    images = np.kron(raw, np.ones((4, 4)))[:, : args.size, : args.size]

    t0 = time.perf_counter()
    ours = np.vstack([hog(images[i : i + args.batch]) for i in range(0, args.images, args.batch)])
    t_ours = time.perf_counter() - t0

    try:
        from skimage.feature import hog as sk_hog
    except ImportError:
        print(f"synsetforge hog: {args.images:,} images of {args.size}x{args.size} in {t_ours:.3f} s")
        print("peer scikit-image is not installed here; run with .bench-venv/bin/python")
        return
    t0 = time.perf_counter()
    peer = np.vstack(
        [
            sk_hog(img, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
            for img in images
        ]
    )
    t_peer = time.perf_counter() - t0
    assert peer.shape == ours.shape, (peer.shape, ours.shape)
    cos = (ours * peer).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(peer, axis=1))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"images: {args.images:,} of {args.size}x{args.size}, descriptor length {ours.shape[1]}")
    print(
        f"synsetforge (numpy, batches of {args.batch}): {t_ours:.3f} s  ({args.images / t_ours:,.0f} images/s)"
    )
    print(
        f"scikit-image feature.hog (per image):      {t_peer:.3f} s  ({args.images / t_peer:,.0f} images/s)"
    )
    print(f"speed ratio (peer time / ours): {t_peer / t_ours:.2f}x")
    print(f"descriptor agreement: mean cosine similarity {cos.mean():.4f} (min {cos.min():.4f})")
    print(f"peak RSS: {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
