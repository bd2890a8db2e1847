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


#: Most candidates per image for which :func:`decode_centerface_torch` builds the pairwise
#: suppression matrix on the device (its float64 IoU takes ``8 * K**2`` bytes per image); more fall
#: back to :func:`nms` on the host.
DEVICE_NMS_MAX_CANDIDATES = 2048
#: Candidate pairs per chunk of images in the device NMS (bounds its memory).
_NMS_PAIRS_PER_CHUNK = 2**24


def _suppression_scan(sup: np.ndarray, k: int) -> np.ndarray:
    """Greedy NMS over a precomputed ``[>=k, >=k]`` bool matrix of candidates in score order
    (``sup[a, b]``: keeping ``a`` suppresses ``b``); returns the kept positions."""
    alive = np.ones(k, dtype=bool)
    keep = []
    for a in range(k):
        if alive[a]:
            keep.append(a)
            alive &= ~sup[a, :k]
    return np.asarray(keep, dtype=np.int64)


def _nms_on_device(cand: torch.Tensor, counts: torch.Tensor, nms_threshold: float) -> list[np.ndarray]:
    """Per-image greedy NMS of candidates ``[K, 6]`` ``(image, x1, y1, x2, y2, score)`` (``counts``:
    candidates per image) with the IoU of every pair computed where the candidates are; only the
    boolean suppression matrices and the candidates cross to the host. Same order, same float64 IoU,
    same comparisons as :func:`nms`, so the same boxes are kept. Images go in chunks of at most
    ``_NMS_PAIRS_PER_CHUNK`` pairs, which bounds the device memory (~130 MB per float64 temporary)."""
    import torch

    n_images = len(counts)
    img = cand[:, 0].long()
    by_score = torch.sort(-cand[:, 5], stable=True).indices  # ties keep their order, as in nms
    order = by_score[torch.sort(img[by_score], stable=True).indices]  # grouped by image
    cand, img = cand[order], img[order]
    kmax = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(cand), device=cand.device) - starts[img]
    boxes = torch.zeros(n_images, kmax, 4, dtype=torch.float64, device=cand.device)  # padding: empty boxes
    boxes[img, pos] = cand[:, 1:5].double()
    sup = []
    per_chunk = max(1, _NMS_PAIRS_PER_CHUNK // max(kmax * kmax, 1))
    for c in range(0, n_images, per_chunk):
        bx = boxes[c : c + per_chunk]
        lt = torch.maximum(bx[:, :, None, :2], bx[:, None, :, :2])
        rb = torch.minimum(bx[:, :, None, 2:], bx[:, None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        area = (bx[..., 2] - bx[..., 0]).clamp(min=0) * (bx[..., 3] - bx[..., 1]).clamp(min=0)
        union = area[:, :, None] + area[:, None, :] - inter
        iou = torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), 0.0)
        sup.append((iou >= nms_threshold).cpu().numpy())
    sup_h = np.concatenate(sup)
    host = cand.cpu().numpy()
    counts_h, starts_h = counts.cpu().numpy(), starts.cpu().numpy()
    out = []
    for i in range(n_images):
        d = np.ascontiguousarray(host[starts_h[i] : starts_h[i] + counts_h[i], 1:], dtype=np.float32)
        out.append(d[_suppression_scan(sup_h[i], len(d))] if len(d) else d.reshape(0, host.shape[1] - 1))
    return out


def decode_centerface_torch(
    heatmap: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    threshold: float,
    nms_threshold: float = 0.3,
    nms_on_device: bool | None = None,
    landmarks: torch.Tensor | None = None,
) -> list[np.ndarray]:
    """:func:`decode_centerface` for a batch of maps on any torch device.

    The thresholding, gathering and box arithmetic run where the maps are (on a GPU: no copy of
    the full maps), and only the candidate boxes, ``[K, 6]`` for the whole batch (``[K, 16]`` with
    landmarks), cross to the host. Greedy NMS per image then keeps the boxes :func:`decode_centerface` keeps: with
    ``nms_on_device`` (default: on a GPU, up to :data:`DEVICE_NMS_MAX_CANDIDATES` candidates per
    image) the IoU of every pair is computed on the device and only the scan runs on the host;
    otherwise :func:`nms` runs on the host.

    Args:
        heatmap: ``[B, 1, h, w]`` face-centre probabilities.
        scale: ``[B, 2, h, w]``; offset: ``[B, 2, h, w]`` (see :func:`decode_centerface`).
        landmarks: ``[B, 10, h, w]`` or None (boxes only).

    Returns:
        B arrays ``[K_i, 5]`` float32 ``(x1, y1, x2, y2, score)`` in network-input pixels; with
        ``landmarks``, ``[K_i, 15]``: the five points' ``(x, y)`` pairs follow the score.
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
    )
    if landmarks is not None:
        lm = landmarks.float()[bi, :, ys, xs]  # [K, 10] (y, x) pairs relative to the box
        pts = torch.stack([lm[:, 1::2] * bw[:, None] + x1[:, None], lm[:, 0::2] * bh[:, None] + y1[:, None]], 2)
        cand = torch.cat([cand, pts.reshape(-1, 10)], 1)
    if nms_on_device is None:
        nms_on_device = heat.device.type == "cuda"
    if nms_on_device and len(cand):
        counts = torch.bincount(bi, minlength=b)
        if int(counts.max()) <= DEVICE_NMS_MAX_CANDIDATES:
            return _nms_on_device(cand, counts, nms_threshold)
    cand = cand.cpu().numpy()
    out = []
    for i in range(b):
        d = np.ascontiguousarray(cand[cand[:, 0] == i, 1:], dtype=np.float32)
        keep = nms(d[:, :4], d[:, 4], nms_threshold) if len(d) else np.zeros((0,), np.int64)
        out.append(d[keep])
    return out
