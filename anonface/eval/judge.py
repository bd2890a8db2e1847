"""The independent privacy judge: dlib's ResNet face recogniser.

dlib's frontal (HOG) face detector, its 5-point shape predictor and its ResNet face descriptor
(the files of ``face-recognition-models``), as the ``face_recognition`` package uses them: two faces
are the same person when the Euclidean distance of their 128-d descriptors is below 0.6.

The judge is for measurement only. It must never be used to train the anonymizer (a model trained
against its judge can fool that judge without hiding identity from anyone else).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anonface.boxes import box_iou
from anonface.eval._deps import face_recognition_model_files, import_dlib

logger = logging.getLogger(__name__)

__all__ = ["DlibJudge", "MATCH_THRESHOLD", "JudgedFace"]

MATCH_THRESHOLD = 0.6
"""Descriptor distance below which dlib's recogniser calls two faces the same person."""


@dataclass(frozen=True)
class JudgedFace:
    """A face as the judge saw it: its descriptor, the box it was computed in, and whether the judge's
    detector found the face itself (False: the box was given to it)."""

    descriptor: np.ndarray
    box: tuple[float, float, float, float]
    detected: bool


class DlibJudge:
    """dlib face recogniser: detect, align on 5 landmarks, 128-d descriptor, match below ``threshold``.

    Args:
        threshold: match when the descriptor distance is below this (0.6, dlib's documented value).
        upsample: times the detector upsamples the image (1, as ``face_recognition`` does).
    """

    def __init__(self, threshold: float = MATCH_THRESHOLD, upsample: int = 1) -> None:
        dlib = import_dlib()
        shape_file, rec_file = face_recognition_model_files()
        self._dlib = dlib
        self.threshold = float(threshold)
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(shape_file))
        self._rec = dlib.face_recognition_model_v1(str(rec_file))

    @staticmethod
    def _check(rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
        return np.ascontiguousarray(rgb)

    def detect(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes ``(x1, y1, x2, y2)`` that dlib's frontal detector finds in an RGB image."""
        rects = self._detector(self._check(rgb), self.upsample)
        return [(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)) for r in rects]

    def descriptor(self, rgb: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The 128-d descriptor of the face in ``box`` (landmarks are predicted inside that box)."""
        rgb = self._check(rgb)
        x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
        rect = self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1)
        shape = self._shape(rgb, rect)
        return np.asarray(self._rec.compute_face_descriptor(rgb, shape), dtype=np.float64)

    def judge(self, rgb: np.ndarray, *, near: Sequence[float] | None = None,
              fallback: Sequence[float] | None = None) -> JudgedFace | None:
        """Find the face and describe it.

        The face is the detection with the largest IoU with ``near`` (or, without ``near``, the one
        nearest the image centre). When the detector finds nothing (or nothing overlapping ``near``),
        the descriptor is computed in ``fallback`` if given (``detected=False``); otherwise None.
        """
        rgb = self._check(rgb)
        boxes = self.detect(rgb)
        chosen = None
        if boxes:
            if near is not None:
                ious = box_iou(boxes, [near])[:, 0]
                k = int(np.argmax(ious))
                chosen = boxes[k] if ious[k] > 0.0 else None
            else:
                h, w = rgb.shape[:2]
                chosen = min(boxes, key=lambda b: np.hypot((b[0] + b[2]) / 2 - w / 2, (b[1] + b[3]) / 2 - h / 2))
        if chosen is not None:
            return JudgedFace(self.descriptor(rgb, chosen), chosen, True)
        if fallback is not None:
            fb = tuple(float(v) for v in fallback[:4])
            return JudgedFace(self.descriptor(rgb, fb), fb, False)  # type: ignore[arg-type]
        return None

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))

    def same(self, a: np.ndarray, b: np.ndarray) -> bool:
        """True when the judge calls the two descriptors the same person."""
        return self.distance(a, b) < self.threshold
