"""Metrics of the evaluation, as plain functions of the judges' outcomes.

Privacy (LFW pairs, the first image of each pair anonymized):

* re-identification rate: the share of same-person pairs the judge still calls the same person;
* verification accuracy: the share of all pairs (same and different) the judge gets right.

A pair the judge cannot compare (no face found, no descriptor) counts as "not the same person": the
judge failed to re-identify it. So a perfect anonymizer gives 0% re-identification and 50% verification
accuracy on balanced pairs, and the identity "anonymizer" gives the judge's own accuracy.

Naturalness: the share of anonymized faces a detector still finds, and the displacement of the five
landmarks relative to face size (``sqrt(width * height)`` of the original face box).

Look-alikes: the share of pairs of *different* people whose anonymized faces the judge calls the same
person (distance < 0.6): 1 when a method gives everybody one face (a solid mask), the judge's own false
match rate for untouched faces. Pairs share faces, so they are not independent draws; no interval is given.

Realism: the Frechet distance between Gaussians fitted to two sets of face descriptors (anonymized
faces, and untouched faces of other people), as FID does with Inception features:
``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairOutcome",
    "Rate",
    "rate",
    "reid_rate",
    "verification_accuracy",
    "detection_rate",
    "landmark_displacement",
    "mean_or_none",
    "lookalike_rate",
    "FrechetDistance",
    "frechet_gaussians",
    "frechet_distance",
]


@dataclass(frozen=True)
class PairOutcome:
    """The judge's verdict on one pair. ``distance`` is None when the judge could not compare the faces."""

    same: bool
    distance: float | None
    threshold: float = 0.6

    @property
    def matched(self) -> bool:
        return self.distance is not None and self.distance < self.threshold

    @property
    def correct(self) -> bool:
        return self.matched == self.same


@dataclass(frozen=True)
class Rate:
    """``k`` successes out of ``n``, with the Wilson 95% interval. ``value`` is None when ``n == 0``."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def interval(self, z: float = 1.959964) -> tuple[float, float] | None:
        """Wilson score interval (95% by default)."""
        if self.n == 0:
            return None
        p, n = self.k / self.n, self.n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        return (max(0.0, centre - half), min(1.0, centre + half))

    def to_dict(self) -> dict:
        iv = self.interval()
        return {"value": self.value, "k": self.k, "n": self.n, "ci95": list(iv) if iv else None}


def rate(flags: Iterable[bool | None]) -> Rate:
    """Share of True among the flags that are not None (None: not measurable, left out)."""
    vals = [bool(f) for f in flags if f is not None]
    return Rate(sum(vals), len(vals))


def reid_rate(outcomes: Sequence[PairOutcome]) -> Rate:
    """Share of same-person pairs the judge still matches."""
    return rate(o.matched for o in outcomes if o.same)


def verification_accuracy(outcomes: Sequence[PairOutcome]) -> Rate:
    """Share of all pairs (same and different) the judge decides correctly."""
    return rate(o.correct for o in outcomes)


def detection_rate(found: Iterable[bool | None]) -> Rate:
    """Share of faces still detected; None entries (no reference face to compare with) are left out."""
    return rate(found)


def landmark_displacement(original: np.ndarray, anonymized: np.ndarray, face_size: float) -> float:
    """Mean Euclidean distance between corresponding landmarks ``[L, 2]``, divided by ``face_size``.

    Raises:
        ValueError: the landmark arrays differ in shape or are not ``[L, 2]``, or ``face_size <= 0``.
    """
    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(anonymized, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"landmarks must both be [L, 2], got {a.shape} and {b.shape}")
    if not face_size > 0:
        raise ValueError(f"face_size must be > 0, got {face_size}")
    return float(np.linalg.norm(a - b, axis=1).mean() / face_size)


def lookalike_rate(descriptors: np.ndarray, people: Sequence[str], threshold: float = 0.6) -> Rate:
    """Of all pairs ``i < j`` of faces of different ``people``, how many have descriptors (``[n, d]``) closer
    than ``threshold`` (Euclidean): different people the judge would call the same person.

    Raises:
        ValueError: ``descriptors`` is not ``[n, d]`` with one person per row, or holds a non-finite value.
    """
    d = np.asarray(descriptors, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != len(people):
        raise ValueError(f"descriptors must be [n, d] with one person per row, got {d.shape} for {len(people)}")
    if not np.isfinite(d).all():
        raise ValueError("descriptors must be finite")
    n = d.shape[0]
    if n < 2:
        return Rate(0, 0)
    sq = (d * d).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * d @ d.T, 0.0))
    _, who = np.unique(np.asarray([str(p) for p in people]), return_inverse=True)
    upper = np.triu(np.ones((n, n), dtype=bool), 1) & (who[:, None] != who[None, :])
    return Rate(int((dist[upper] < threshold).sum()), int(upper.sum()))


def mean_or_none(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values]
    return float(np.mean(vals)) if vals else None


@dataclass(frozen=True)
class FrechetDistance:
    """A Frechet distance between two descriptor sets of ``n_a`` and ``n_b`` vectors of ``dim``.

    ``value`` is NaN when it could not be measured; ``reason`` then says why.
    """

    value: float
    n_a: int
    n_b: int
    dim: int
    reason: str | None = None

    def to_dict(self) -> dict:
        ok = math.isfinite(self.value)
        return {"value": self.value if ok else None, "n_a": self.n_a, "n_b": self.n_b, "dim": self.dim,
                "reason": self.reason}


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (round-off negatives set to 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_gaussians(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance of ``N(mu1, cov1)`` and ``N(mu2, cov2)``.

    ``Tr((S1 S2)^(1/2))`` is computed as ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` (the two matrices are
    similar, and the second is symmetric positive semi-definite), from eigenvalues: no complex parts to
    drop, unlike ``scipy.linalg.sqrtm`` of the non-symmetric product.

    Raises:
        ValueError: shapes that do not fit (``mu [d]``, ``cov [d, d]``) or non-finite values.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(f"need mu [d] and cov [d, d] for both, got {mu1.shape}, {c1.shape}, {mu2.shape}, {c2.shape}")
    if not all(np.isfinite(x).all() for x in (mu1, mu2, c1, c2)):
        raise ValueError("means and covariances must be finite")
    r1 = _sqrt_psd(c1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ c2 @ r1), 0.0, None)).sum()
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * cross))


def frechet_distance(a: np.ndarray, b: np.ndarray, *, min_samples: int | None = None) -> FrechetDistance:
    """Frechet distance between Gaussians fitted to the rows of ``a [n_a, d]`` and ``b [n_b, d]`` (sample
    means, unbiased sample covariances).

    Each set needs at least ``min_samples`` rows (default and floor ``d + 1``: with fewer the sample
    covariance is singular and the figure says more about the sample size than about the sets);
    otherwise ``value`` is NaN and ``reason`` says why. The estimate is biased upwards for finite samples
    (two samples of one distribution give a positive distance), so compare figures measured with the same
    set sizes, against a reference row measured the same way.

    Raises:
        ValueError: not 2-D, different ``d``, or non-finite values.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two [n, d] arrays with the same d, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("descriptors must be finite")
    d = a.shape[1]
    need = max(d + 1, int(min_samples or 0))
    small = [f"{name} has {len(x)}" for name, x in (("the first set", a), ("the second set", b)) if len(x) < need]
    if d == 0 or small:
        why = "no dimensions" if d == 0 else f"too few samples: {' and '.join(small)}, needs >= {need} (d = {d})"
        return FrechetDistance(float("nan"), len(a), len(b), d, why)
    value = frechet_gaussians(a.mean(0), np.atleast_2d(np.cov(a, rowvar=False)), b.mean(0),
                              np.atleast_2d(np.cov(b, rowvar=False)))
    return FrechetDistance(value, len(a), len(b), d)
