"""Seeded mini-batch k-means (Sculley 2010) with k-means++ seeding, in numpy.

Fitted on a sample of pixels (a scene has millions; a few tens of thousands fix the centres), then
every pixel is assigned to its nearest centre block by block.
"""

from __future__ import annotations

import numpy as np


def kmeans_plus_plus(samples: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` initial centres, each drawn with probability proportional to the squared distance
    to the nearest centre already chosen."""
    centres = [samples[rng.integers(len(samples))]]
    distances = ((samples - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = distances.sum()
        if total <= 0:  # fewer distinct samples than clusters: repeat one
            index = int(rng.integers(len(samples)))
        else:
            index = int(rng.choice(len(samples), p=distances / total))
        centres.append(samples[index])
        distances = np.minimum(distances, ((samples - samples[index]) ** 2).sum(axis=1))
    return np.array(centres, dtype=np.float32)


def nearest_centre(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each row of ``features``."""
    distances = (centres**2).sum(axis=1)[None, :] - 2.0 * features @ centres.T
    return distances.argmin(axis=1)


def minibatch_kmeans(
    samples: np.ndarray,
    k: int,
    seed: int = 0,
    batch_size: int = 1024,
    iterations: int = 100,
) -> np.ndarray:
    """Centres ``(k, F)`` of ``samples`` ``(N, F)``.

    Each iteration moves the centres toward a random batch with a per-centre learning rate of
    1 / (samples it has seen), which makes each centre the running mean of its members.
    """
    if len(samples) < k:
        raise ValueError(f"{len(samples)} valid pixels cannot make {k} clusters")
    rng = np.random.default_rng(seed)
    samples = samples.astype(np.float32)
    centres = kmeans_plus_plus(samples, k, rng)
    seen = np.zeros(k)
    for _ in range(iterations):
        batch = samples[rng.integers(len(samples), size=min(batch_size, len(samples)))]
        nearest = nearest_centre(batch, centres)
        for cluster in np.unique(nearest):
            members = batch[nearest == cluster]
            seen[cluster] += len(members)
            rate = len(members) / seen[cluster]
            centres[cluster] += rate * (members.mean(axis=0) - centres[cluster])
    return centres


def order_by_size(samples: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The centres sorted by how many samples they hold, largest first (stable cluster numbers)."""
    counts = np.bincount(nearest_centre(samples, centres), minlength=len(centres))
    return centres[np.argsort(-counts, kind="stable")]
