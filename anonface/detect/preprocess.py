"""CenterFace's network input, shared by every backend (a leaf of :mod:`anonface.detect`)."""

from __future__ import annotations

import numpy as np

__all__ = ["network_input"]


def network_input(
    frame: np.ndarray, size_hw: tuple[int, int], swap_rb: bool = False, out: np.ndarray | None = None
) -> np.ndarray:
    """CenterFace's input ``[1, 3, h, w]`` float32 for one ``[H, W, 3]`` uint8 frame.

    What ``cv2.dnn.blobFromImage(frame, 1.0, (w, h), 0, swapRB=swap_rb, crop=False)`` computes
    (bilinear resize, then planar float32), in about half its time: the resize runs on uint8 and
    each plane is converted once. ``out`` is filled and returned when given.
    """
    import cv2

    ih, iw = size_hw
    img = np.ascontiguousarray(frame)
    if img.shape[:2] != (ih, iw):
        img = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_LINEAR)
    blob = out if out is not None else np.empty((1, 3, ih, iw), np.float32)
    for c in range(3):
        blob[0, c] = img[:, :, 2 - c if swap_rb else c]
    return blob
