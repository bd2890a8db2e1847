"""Box geometry shared by every layer (a leaf module: numpy only).

Convention: boxes are pixel-corner ``(x1, y1, x2, y2)``; extra columns (scores) are ignored.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "central_index"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union, computed in float64.

    Args:
        a: ``[K, 4+]`` boxes (or anything ``np.asarray`` takes, e.g. a list of tuples).
        b: ``[M, 4+]`` boxes.

    Returns:
        ``[K, M]`` float64 IoU; an empty (zero-area or inverted) box has IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1] if np.size(a) else 4)[:, :4]
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1] if np.size(b) else 4)[:, :4]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def central_index(rows: np.ndarray, height: int, width: int) -> int | None:
    """Index of the box whose centre is nearest the image centre (an LFW photo's subject), ties to
    the higher score (column 4, when there is one); None for no boxes.

    Args:
        rows: ``[N, 4+]`` boxes, e.g. CenterFace's ``[N, 5]`` or ``[N, 15]`` detections.
        height, width: the image's size in pixels.
    """
    r = np.asarray(rows, dtype=np.float64)
    if r.size == 0:
        return None
    r = r.reshape(-1, r.shape[-1])
    dist = np.hypot((r[:, 0] + r[:, 2]) / 2 - width / 2, (r[:, 1] + r[:, 3]) / 2 - height / 2)
    score = r[:, 4] if r.shape[1] > 4 else np.zeros(len(r))
    return int(np.lexsort((-score, dist))[0])
