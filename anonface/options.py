"""Limits of the numeric options, checked in one place for the API and the command line.

Privacy fails closed, so a setting that would blind the detector (a detection size of a few
pixels, a NaN threshold), leave faces uncovered (a NaN mask scale, a feather band that lets the
face show through) or hide nothing (pixelation into one-pixel cells, noise of sigma 0) is refused
with a :class:`ValueError` that names the option, its valid range and why, before any frame is
processed. :class:`anonface.Anonymizer`, :class:`anonface.detect.CenterFace` and the ``anonface``
command check their options here (the command with its flag names, exit status 2).

The strength limits follow the re-identification measured in the README (Evaluation): each
refused setting let an independent face recogniser re-identify more than ~10% of faces.

* ``pixelate``: at most :data:`PIXELATE_MAX_CELLS` cells across a (mask-scaled) box (16: 1.3-1.7%
  re-identified; 24: 17-18%; 32: 55%). Per box, the pipeline also keeps every cell at least
  :data:`PIXELATE_MIN_CELL_PX` pixels wide (fewer cells in small boxes), so a small face is never
  "pixelated" into one-pixel cells that change nothing; ``mosaic_px`` obeys both bounds too.
* ``blur``: sigma at least 0.06 of the box size (0.06: 1.0-2.3% re-identified; 0.03: 27%).
* ``noise``: sigma at least 100 grey levels (100: 10.3%; 50: 62%; 25: 89%).
* ``solid``: a grey level in [0, 255].
"""

from __future__ import annotations

import math
import numbers
from typing import Any

#: anonface's CenterFace score threshold. Measured on ground truth (benchmarks/bench_recall.py, composite
#: faces >= 20 px, composites of seeds 13 / 14): 0.05 covers 99.5% / 97.7% of them, 0.1 98.8% / 95.8%,
#: for about twice the false-detection area of 0.1 (~2% of the frame instead of ~1%).
#: Privacy fails closed: a missed face is a leak, a false blob is cosmetic.
DEFAULT_THRESHOLD = 0.05

#: The learned anonymizer's default weight of the previous frame's face and box in each drawn face
#: (:class:`anonface.render.FaceMemory`; README, Temporal stability).
DEFAULT_TEMPORAL_SMOOTHING = 0.8

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_TEMPORAL_SMOOTHING",
    "DEFAULT_STRENGTH",
    "LIMITS",
    "STRENGTH_LIMITS",
    "PIXELATE_MAX_CELLS",
    "PIXELATE_MIN_CELL_PX",
    "check_number",
    "check_option",
    "check_scale",
    "check_strength",
]

#: Default ``strength`` per method, for the tool and the kernels alike: inside the limits below,
#: on the side of privacy (README, Evaluation).
DEFAULT_STRENGTH: dict[str, float] = {
    "pixelate": 10.0,  # cells across the (mask-scaled) box: about 6 across the face itself
    "blur": 0.15,  # Gaussian sigma as a fraction of the box size: strong, but blur leaks identity
    "noise": 100.0,  # Gaussian sigma in 0-255 grey levels: the weakest noise measured to hide identity
    "solid": 0.0,  # grey level in 0-255 units (0 = black)
}

#: Most pixelation cells across one box (see the module docstring).
PIXELATE_MAX_CELLS = 16
#: Smallest pixelation cell side in pixels: one-pixel cells would leave the face unchanged.
PIXELATE_MIN_CELL_PX = 2

#: ``name: (low, high, integer, low_open, why)``; the range is ``[low, high]`` (``(low, high]``
#: when ``low_open``). ``why`` is added to the error message.
LIMITS: dict[str, tuple[float, float, bool, bool, str]] = {
    "threshold": (0.0, 1.0, False, True, "a face score threshold"),
    "nms_threshold": (0.0, 1.0, False, True, "an IoU"),
    "mask_scale": (1.0, 10.0, False, False,
                   "1 masks the detected box; each side moves out by (mask_scale - 1) x the box size"),
    "feather": (0.0, 0.25, False, False,
                "a fraction of the box; a wider soft edge lets the face show through"),
    "upscale": (1.0, 8.0, False, False,
                "it enlarges the detection input for small faces; below 1 it would shrink faces "
                "below what the detector finds (use max_side or scale to detect at a smaller size)"),
    "max_side": (128, 8192, True, False,
                 "the long side of the detection input in pixels; smaller sizes leave faces too "
                 "small to detect"),
    "scale": (64, 8192, True, False,
              "each side of the detection input in pixels; smaller sizes leave faces too small to "
              "detect"),
    "batch_size": (1, 256, True, False, "frames per batch"),
    "detect_every": (1, 30, True, False, "frames between detector runs"),
    "max_gap": (1, 300, True, False, "frames; the tracker holds this many frames back"),
    "linger": (0, 300, True, False, "frames; the tracker holds this many frames back"),
    "mosaic_px": (PIXELATE_MIN_CELL_PX, 4096, True, False,
                  f"the pixelation cell size in pixels; cells under {PIXELATE_MIN_CELL_PX} px leave "
                  "the face unchanged"),
    "threads": (1, 1024, True, False, "CPU threads"),
    "temporal_smoothing": (0.0, 0.9, False, False,
                           "the previous frame's weight in each learned face (0: off); at 1 a face "
                           "would never change"),
}

#: Per method: ``(low, high, why)`` for ``strength`` (see the module docstring).
STRENGTH_LIMITS: dict[str, tuple[float, float, str]] = {
    "pixelate": (1.0, float(PIXELATE_MAX_CELLS),
                 "cells across the box; more cells leave faces recognisable (README, Evaluation)"),
    "blur": (0.06, 10.0, "sigma as a fraction of the box; weaker blurs leave faces recognisable "
             "(README, Evaluation)"),
    "noise": (100.0, 1000.0, "sigma in grey levels; weaker noise leaves faces recognisable "
              "(README, Evaluation)"),
    "solid": (0.0, 255.0, "the grey level of the fill"),
}


def _interval(lo: float, hi: float, low_open: bool) -> str:
    return f"{'(' if low_open else '['}{lo:g}, {hi:g}]"


def check_number(
    label: str,
    value: Any,
    lo: float,
    hi: float,
    *,
    integer: bool = False,
    low_open: bool = False,
    why: str = "",
) -> Any:
    """``value`` as an int (``integer``) or float in ``[lo, hi]`` (``(lo, hi]``), else ValueError.

    Booleans, strings, NaN and infinities are refused; ``label`` names the option in the message.
    """
    kind = "an integer" if integer else "a number"
    what = f"{label} must be {kind} in {_interval(lo, hi, low_open)}"
    if why:
        what += f" ({why})"
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{what}, got {value!r}")
    out = int(value) if integer else float(value)
    if not math.isfinite(out) or out > hi or out < lo or (low_open and out == lo):
        raise ValueError(f"{what}, got {value!r}")
    return out


def check_option(name: str, value: Any, label: str | None = None) -> Any:
    """Check the option ``name`` of :data:`LIMITS`; ``label`` names it in the message (a flag)."""
    lo, hi, integer, low_open, why = LIMITS[name]
    return check_number(label or name, value, lo, hi, integer=integer, low_open=low_open, why=why)


def check_scale(value: Any, label: str = "scale") -> tuple[int, int]:
    """A detection size ``(W, H)``: two integers, each within :data:`LIMITS` ``["scale"]``."""
    try:
        w, h = value
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be (W, H), two integers, got {value!r}") from None
    return check_option("scale", w, f"{label} width"), check_option("scale", h, f"{label} height")


def check_strength(method: str, value: Any, label: str = "strength") -> float | None:
    """``strength`` for ``method`` within :data:`STRENGTH_LIMITS` (None stays None).

    Methods without a strength (``learned``, ``none``) accept None only.
    """
    if value is None:
        return None
    if method not in STRENGTH_LIMITS:
        raise ValueError(f"{label} does not apply to method {method!r} (leave it unset)")
    lo, hi, why = STRENGTH_LIMITS[method]
    return check_number(f"{label} of {method}", value, lo, hi, why=why)
