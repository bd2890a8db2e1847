"""Vectorised decoding of CenterFace outputs and greedy non-maximum suppression.

Convention: boxes are pixel-corner coordinates ``(x1, y1, x2, y2)`` as float32 in the frame the
detector looked at; pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from anonface.boxes import box_iou

if TYPE_CHECKING:
    import torch

__all__ = ["decode_centerface", "decode_centerface_torch", "nms", "box_iou"]

# CenterFace predicts on a grid 4x coarser than its input.
_STRIDE = 4.0


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3) -> np.ndarray:
    """Greedy NMS: keep the best-scoring box, drop those overlapping it by IoU >= threshold, repeat.

    Each kept box is compared only with the boxes still alive after it (a low threshold gives a
    few thousand candidates on a crowded frame, of which a few hundred are kept: the full IoU
    matrix would cost ten times more).

    Args:
        boxes: ``[K, 4]`` boxes.
        scores: ``[K]`` scores.
        iou_threshold: boxes overlapping a kept one by at least this are suppressed.

    Returns:
        ``[K']`` int64 indices of the kept boxes, best score first.
    """
    k = len(boxes)
    if k == 0:
        return np.zeros((0,), dtype=np.int64)
    order = np.argsort(-np.asarray(scores), kind="stable")
    ordered = np.asarray(boxes, dtype=np.float64)[order]
    alive = np.ones(k, dtype=bool)
    keep = []
    for i in range(k):
        if not alive[i]:
            continue
        keep.append(i)
        rest = np.flatnonzero(alive[i + 1 :]) + (i + 1)
        if rest.size:
            alive[rest] &= box_iou(ordered[i : i + 1], ordered[rest])[0] < iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def decode_centerface(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray | None,
    threshold: float,
    nms_threshold: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn one image's CenterFace maps into boxes.

    Args:
        heatmap: ``[1, h, w]`` or ``[h, w]`` face-centre probabilities.
        scale: ``[2, h, w]`` log box size / 4 (height, width).
        offset: ``[2, h, w]`` sub-cell centre offset (y, x).
        landmarks: ``[10, h, w]`` five points as (y, x) pairs relative to the box, or ``None``.
        threshold: minimum heatmap score.
        nms_threshold: IoU above which overlapping boxes are merged.

    Returns:
        ``dets [K, 5]`` float32 ``(x1, y1, x2, y2, score)`` in the network input's pixels,
        ``lms [K, 10]`` float32 ``(x, y)`` pairs (zeros when ``landmarks`` is None).
    """
    heat = np.asarray(heatmap).reshape(heatmap.shape[-2:])
    h, w = heat.shape
    ys, xs = np.nonzero(heat > threshold)
    if len(ys) == 0:
        return np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32)
    sc = heat[ys, xs]
    bh = np.exp(scale[0, ys, xs]) * _STRIDE
    bw = np.exp(scale[1, ys, xs]) * _STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
    x1, y1 = cx - bw / 2, cy - bh / 2
    dets = np.stack([x1, y1, x1 + bw, y1 + bh, sc], axis=1).astype(np.float32)
    limit_w, limit_h = w * _STRIDE, h * _STRIDE
    dets[:, 0:4:2] = np.clip(dets[:, 0:4:2], 0, limit_w)
    dets[:, 1:4:2] = np.clip(dets[:, 1:4:2], 0, limit_h)
    lms = np.zeros((len(ys), 10), np.float32)
    if landmarks is not None:
        lm = landmarks[:, ys, xs]  # [10, K]
        lms[:, 0::2] = (lm[1::2] * bw + x1).T
        lms[:, 1::2] = (lm[0::2] * bh + y1).T
    keep = nms(dets[:, :4], dets[:, 4], nms_threshold)
    return dets[keep], lms[keep]


def decode_centerface_torch(
    heatmap: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    threshold: float,
    nms_threshold: float = 0.3,
) -> list[np.ndarray]:
    """:func:`decode_centerface` for a batch of maps on any torch device (boxes only).

    The thresholding, gathering and box arithmetic run where the maps are (on a GPU: no copy of
    the full maps), and only the candidate boxes, ``[K, 6]`` for the whole batch, cross to the
    host in one copy, where greedy NMS runs per image as in :func:`decode_centerface`.

    Args:
        heatmap: ``[B, 1, h, w]`` face-centre probabilities.
        scale: ``[B, 2, h, w]``; offset: ``[B, 2, h, w]`` (see :func:`decode_centerface`).

    Returns:
        B arrays ``[K_i, 5]`` float32 ``(x1, y1, x2, y2, score)`` in network-input pixels.
    """
    import torch

    b, _, h, w = heatmap.shape
    heat = heatmap[:, 0].float()
    idx = torch.nonzero(heat > threshold)  # [K, 3] (image, y, x); one device sync per batch
    bi, ys, xs = idx[:, 0], idx[:, 1], idx[:, 2]
    sc = heat[bi, ys, xs]
    s, o = scale.float(), offset.float()
    bh = torch.exp(s[bi, 0, ys, xs]) * _STRIDE
    bw = torch.exp(s[bi, 1, ys, xs]) * _STRIDE
    cy = (ys.float() + o[bi, 0, ys, xs] + 0.5) * _STRIDE
    cx = (xs.float() + o[bi, 1, ys, xs] + 0.5) * _STRIDE
    x1, y1 = cx - bw / 2, cy - bh / 2
    x2, y2 = x1 + bw, y1 + bh
    lw, lh = w * _STRIDE, h * _STRIDE
    cand = torch.stack(
        [bi.float(), x1.clamp(0, lw), y1.clamp(0, lh), x2.clamp(0, lw), y2.clamp(0, lh), sc], dim=1
    ).cpu().numpy()
    out = []
    for i in range(b):
        d = np.ascontiguousarray(cand[cand[:, 0] == i, 1:], dtype=np.float32)
        keep = nms(d[:, :4], d[:, 4], nms_threshold) if len(d) else np.zeros((0,), np.int64)
        out.append(d[keep])
    return out
