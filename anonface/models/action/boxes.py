"""Box utilities for the detector: IoU, box coding, NMS, clipping (vectorised torch, no torchvision).

Convention: boxes are ``Tensor[N, 4]`` of pixel-corner coordinates ``(x1, y1, x2, y2)`` (floats),
width = x2 - x1. Box deltas follow Faster R-CNN: ``(dx, dy, dw, dh)`` with centre offsets relative to
the reference box size and log size ratios, each divided by ``weights``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["box_area", "box_iou", "BoxCoder", "nms", "batched_nms", "clip_boxes", "remove_small_boxes"]


def box_area(b: Tensor) -> Tensor:
    return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU matrix ``[N, M]`` of boxes ``a [N, 4]`` and ``b [M, 4]`` (0 where the union is empty)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


class BoxCoder:
    """Encode boxes as deltas from reference boxes and back."""

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 clamp: float = math.log(1000.0 / 16)) -> None:
        self.weights = weights
        self.clamp = clamp

    def encode(self, ref: Tensor, target: Tensor) -> Tensor:
        """Deltas ``[N, 4]`` that turn ``ref [N, 4]`` into ``target [N, 4]``."""
        wx, wy, ww, wh = self.weights
        rw = (ref[:, 2] - ref[:, 0]).clamp(min=1e-6)
        rh = (ref[:, 3] - ref[:, 1]).clamp(min=1e-6)
        rx = ref[:, 0] + 0.5 * rw
        ry = ref[:, 1] + 0.5 * rh
        tw = (target[:, 2] - target[:, 0]).clamp(min=1e-6)
        th = (target[:, 3] - target[:, 1]).clamp(min=1e-6)
        tx = target[:, 0] + 0.5 * tw
        ty = target[:, 1] + 0.5 * th
        return torch.stack([wx * (tx - rx) / rw, wy * (ty - ry) / rh, ww * torch.log(tw / rw),
                            wh * torch.log(th / rh)], dim=1)

    def decode(self, ref: Tensor, deltas: Tensor) -> Tensor:
        """Boxes from ``deltas [N, 4k]`` applied to ``ref [N, 4]``; returns ``[N, 4k]``."""
        wx, wy, ww, wh = self.weights
        ref = ref.to(deltas.dtype)
        rw = ref[:, 2] - ref[:, 0]
        rh = ref[:, 3] - ref[:, 1]
        rx = ref[:, 0] + 0.5 * rw
        ry = ref[:, 1] + 0.5 * rh
        d = deltas.reshape(deltas.shape[0], -1, 4)
        dx, dy = d[..., 0] / wx, d[..., 1] / wy
        dw = (d[..., 2] / ww).clamp(max=self.clamp)
        dh = (d[..., 3] / wh).clamp(max=self.clamp)
        cx = dx * rw[:, None] + rx[:, None]
        cy = dy * rh[:, None] + ry[:, None]
        w = torch.exp(dw) * rw[:, None]
        h = torch.exp(dh) * rh[:, None]
        out = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        return out.reshape(deltas.shape[0], -1)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, by decreasing score.

    Exact greedy NMS on a precomputed IoU matrix: a box is dropped when it overlaps a kept,
    higher-scoring box with IoU > ``iou_threshold``.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    over = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    n = order.shape[0]
    removed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS applied independently within each group (class or image)."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = groups.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clip ``[..., 4k]`` boxes to the image ``[0, width] x [0, height]``."""
    b = boxes.reshape(-1, 4)
    out = torch.stack([b[:, 0].clamp(0, width), b[:, 1].clamp(0, height), b[:, 2].clamp(0, width),
                       b[:, 3].clamp(0, height)], dim=1)
    return out.reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes whose width and height are both >= ``min_size``."""
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((ws >= min_size) & (hs >= min_size)).flatten()
