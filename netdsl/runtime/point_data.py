"""Built-in 2-D point clouds for generative models, and how close samples come to them.

    ring   x f32[N, 2]   eight Gaussians (std 0.05) on a circle of radius 2 (the GAN test bed)
    moons  x f32[N, 2]   two interleaving half circles with Gaussian noise (0.05)

`ring_scores` and `nearest_distances` are the numbers the generative examples report: the modes a
GAN covers and the share of its samples near a mode; how far samples lie from the data
compared with the data's own spacing.
"""
from __future__ import annotations

import numpy as np

from ..errors import Error

RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.05


def _count(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 10_000_000:
        raise Error(f"{name} needs n between 1 and 10,000,000 points, got {n!r}")
    return int(n)


def ring_centres(modes: int = RING_MODES, radius: float = RING_RADIUS) -> np.ndarray:
    """The centres of the ring's Gaussians, [modes, 2]."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def ring(n: int = 4096, seed: int = 0) -> dict[str, np.ndarray]:
    """Eight Gaussians on a circle: `x` f32[n, 2], each point from a mode picked uniformly."""
    n = _count("ring", n)
    rng = np.random.default_rng(seed)
    centres = ring_centres()
    points = centres[rng.integers(0, RING_MODES, n)] + RING_STD * rng.standard_normal((n, 2))
    return {"x": points.astype(np.float32)}


def moons(n: int = 2048, seed: int = 0, noise: float = 0.05) -> dict[str, np.ndarray]:
    """Two interleaving half circles (scikit-learn's make_moons, standardised to mean 0 and
    unit spread): `x` f32[n, 2]."""
    n = _count("moons", n)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise Error(f"moons noise must be a number in [0, 1], got {noise!r}")
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < 0.5
    angle = np.pi * rng.random(n)
    x = np.where(upper, np.cos(angle), 1 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    points = (points - [0.5, 0.25]) / [0.87, 0.5]       # the moons' centre and spread
    return {"x": points.astype(np.float32)}


def ring_scores(samples: np.ndarray, sigmas: float = 3.0) -> dict[str, float]:
    """How well samples cover the ring: `modes` (of 8) that have at least one sample within
    `sigmas` standard deviations of their centre, and `share` of samples that lie that close
    to some mode (the usual "high-quality samples" of the GAN literature)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    distance = np.linalg.norm(samples[:, None, :] - ring_centres()[None], axis=-1)
    near = distance.min(axis=1) < sigmas * RING_STD
    covered = np.unique(distance.argmin(axis=1)[near])
    return {"modes": int(len(covered)), "share": float(near.mean()) if len(near) else 0.0}


def nearest_distances(points: np.ndarray, reference: np.ndarray, exclude_self: bool = False,
                      chunk: int = 1024) -> np.ndarray:
    """For every point, the distance to its nearest neighbour in `reference` (leaving out the
    point itself when both are the same set)."""
    points = np.asarray(points, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    found = np.empty(len(points))
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        distance = np.linalg.norm(block[:, None, :] - reference[None], axis=-1)
        if exclude_self:
            rows = np.arange(len(block))
            distance[rows, start + rows] = np.inf
        found[start:start + chunk] = distance.min(axis=1)
    return found
