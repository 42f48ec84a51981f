"""Bag of visual words over dense local descriptors, with a spatial pyramid (the 2010 ILSVRC recipe).

`fit_codebook` learns the words from a sample of train descriptors: PCA to `dims` dimensions (decorrelated,
and half the cost of every distance), then k-means (scikit-learn `MiniBatchKMeans`, seeded) into `words`
clusters. `Codebook.encode` turns an image's descriptors into the histogram of their nearest words (hard
assignment), counted over the whole image and over each cell of a 2 x 2 grid (Lazebnik et al.'s spatial
pyramid, levels 0 and 1). Each histogram is L1-normalised and square-rooted, the explicit feature map of the
Hellinger kernel (so that a linear SVM on it acts like a kernel SVM on histograms), and the whole vector is
L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synsetforge.errors import InputError

ASSIGN_CHUNK = 8192  # descriptors per distance matrix (8192 x 1000 words: 32 MB)


@dataclass
class Codebook:
    """Visual words (float32 [words, dims] in the PCA space) and the PCA that maps descriptors there."""

    centres: np.ndarray
    mean: np.ndarray  # [D] descriptor mean
    basis: np.ndarray  # [D, dims] principal directions
    pyramid: tuple[int, ...] = (1, 2)

    @property
    def words(self) -> int:
        return int(self.centres.shape[0])

    @property
    def dim(self) -> int:
        """Length of an encoded image."""
        return self.words * sum(g * g for g in self.pyramid)

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """Index of the nearest word for each descriptor [N, D] -> int64 [N]."""
        x = np.asarray(descriptors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise InputError(f"bag of words: expected descriptors [N, {self.mean.shape[0]}], got {x.shape}")
        # |x - c|^2 - |x|^2 = [x, 1] . [-2c, |c|^2]: one matrix product per chunk gives the distances
        weights = np.vstack([-2.0 * self.centres.T, (self.centres**2).sum(axis=1)[None, :]]).astype(
            np.float32
        )
        shift = self.mean @ self.basis
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), ASSIGN_CHUNK):
            part = x[start : start + ASSIGN_CHUNK]
            z = np.empty((len(part), self.basis.shape[1] + 1), dtype=np.float32)
            np.matmul(part, self.basis, out=z[:, :-1])
            z[:, :-1] -= shift
            z[:, -1] = 1.0
            out[start : start + len(part)] = np.argmin(z @ weights, axis=1)
        return out

    def encode(self, descriptors: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """Images' descriptors [B, P, D] at patch centres [P, 2] ((y, x) fractions) -> float32 [B, dim]."""
        if descriptors.ndim != 3:
            raise InputError(f"bag of words: expected descriptors [B, P, D], got {descriptors.shape}")
        b, p, d = descriptors.shape
        if centres.shape != (p, 2):
            raise InputError(f"bag of words: {p} descriptors per image but centres of shape {centres.shape}")
        word = self.assign(descriptors.reshape(b * p, d)).reshape(b, p)
        image = np.arange(b)[:, None]
        parts = []
        for g in self.pyramid:
            cell = np.clip((centres * g).astype(np.int64), 0, g - 1)
            region = (cell[:, 0] * g + cell[:, 1])[None, :]
            flat = ((image * (g * g) + region) * self.words + word).ravel()
            h = np.bincount(flat, minlength=b * g * g * self.words).reshape(b, g * g, self.words)
            h = h / np.maximum(h.sum(axis=2, keepdims=True), 1)  # L1 per region
            parts.append(np.sqrt(h).reshape(b, -1) / g)  # Hellinger map; every level weighs the same
        out = np.hstack(parts)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)


def fit_codebook(
    sample: np.ndarray, words: int, *, dims: int = 64, seed: int = 0, pyramid: tuple[int, ...] = (1, 2)
) -> Codebook:
    """PCA to `dims` then k-means on descriptors [N, D]: `words` clusters, or N/4 when the sample is small."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(sample, dtype=np.float32)
    if x.ndim != 2 or len(x) < 8:
        raise InputError(f"bag of words: need at least 8 sample descriptors, got an array of shape {x.shape}")
    if words < 2:
        raise InputError(f"the codebook needs at least 2 words, not {words}")
    mean = x.mean(axis=0, dtype=np.float64)
    centred = x - mean.astype(np.float32)
    _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)  # principal axes, ascending
    basis = np.ascontiguousarray(vectors[:, ::-1][:, : min(dims, x.shape[1])], dtype=np.float32)
    z = centred @ basis
    # Random initial centres: k-means++ seeding costs 10-20x the clustering itself here and gives no
    # measurably better words; five passes over the sample do as well as ten (measured).
    km = MiniBatchKMeans(
        n_clusters=min(words, len(x) // 4),
        init="random",
        batch_size=4096,
        n_init=1,
        max_iter=5,
        random_state=seed,
    )
    km.fit(z)
    centres = np.ascontiguousarray(km.cluster_centers_, dtype=np.float32)
    return Codebook(centres, mean.astype(np.float32), basis, tuple(pyramid))
