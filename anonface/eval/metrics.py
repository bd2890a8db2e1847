"""Metrics of the evaluation, as plain functions of the judges' outcomes.

Privacy (LFW pairs, the first image of each pair anonymized):

* re-identification rate: the share of same-person pairs the judge still calls the same person;
* verification accuracy: the share of all pairs (same and different) the judge gets right.

A pair the judge cannot compare (no face found, no descriptor) counts as "not the same person": the
judge failed to re-identify it. So a perfect anonymizer gives 0% re-identification and 50% verification
accuracy on balanced pairs, and the identity "anonymizer" gives the judge's own accuracy.

Naturalness: the share of anonymized faces a detector still finds, and the displacement of the five
landmarks relative to face size (``sqrt(width * height)`` of the original face box).
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


def mean_or_none(values: Iterable[float]) -> float | None:
    vals = [float(v) for v in values]
    return float(np.mean(vals)) if vals else None
