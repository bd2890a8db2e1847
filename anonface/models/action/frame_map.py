"""Frame-mAP: VOC-style average precision of per-frame action detections, averaged over classes.

A detection is a true positive when its class matches and its IoU with a not-yet-matched ground-truth
box of the same frame and class is >= ``iou_threshold`` (0.5 in the paper); detections are visited in
order of decreasing score (over all frames), each matched to the unmatched ground truth of highest IoU.
AP is the area under the precision envelope (all-point interpolation, PASCAL VOC 2010+). Classes
without ground truth are left out of the mean.

Convention:
    boxes ``Tensor[N, 4]`` (or arrays) of pixel-corner ``(x1, y1, x2, y2)``; labels are integers (any
    ids, e.g. 1..C); one entry per frame in both lists, in the same frame order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from anonface.boxes import box_iou

__all__ = ["frame_map", "average_precision"]


def average_precision(tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP from true-positive flags sorted by decreasing score."""
    if num_gt <= 0:
        raise ValueError("num_gt must be > 0")
    tp = np.asarray(tp, dtype=np.float64)
    if tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - tp)
    rec = ctp / num_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def frame_map(detections: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]],
              iou_threshold: float = 0.5, classes: Sequence[int] | None = None) -> dict[str, Any]:
    """Frame-mAP of ``detections`` against ``ground_truth``.

    Args:
        detections: per frame ``{"boxes": [N, 4], "scores": [N], "labels": [N]}``.
        ground_truth: per frame ``{"boxes": [G, 4], "labels": [G]}``.
        iou_threshold: IoU needed for a match (0.5).
        classes: the classes to average over; default: every class with ground truth.

    Returns:
        ``{"map": float, "ap": {class: float}, "num_gt": {class: int}}``; ``map`` is NaN when no
        class has ground truth.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"detections and ground_truth must have one entry per frame, got "
                         f"{len(detections)} and {len(ground_truth)}")
    gts = [(_np(g["boxes"]).reshape(-1, 4), _np(g["labels"], np.int64).reshape(-1)) for g in ground_truth]
    dets = []
    for d in detections:
        b = _np(d["boxes"]).reshape(-1, 4)
        s = _np(d["scores"]).reshape(-1)
        lab = _np(d["labels"], np.int64).reshape(-1)
        if not (b.shape[0] == s.shape[0] == lab.shape[0]):
            raise ValueError(f"a detection entry has {b.shape[0]} boxes, {s.shape[0]} scores, {lab.shape[0]} labels")
        dets.append((b, s, lab))
    gt_classes = sorted({int(c) for _, lab in gts for c in lab})
    cls_list = list(classes) if classes is not None else gt_classes
    ap: dict[int, float] = {}
    num_gt: dict[int, int] = {}
    for c in cls_list:
        n = sum(int((lab == c).sum()) for _, lab in gts)
        num_gt[int(c)] = n
        if n == 0:
            continue
        rows = [(float(s[i]), f, i) for f, (b, s, lab) in enumerate(dets) for i in np.nonzero(lab == c)[0]]
        rows.sort(key=lambda r: -r[0])
        used = [np.zeros(int((lab == c).sum()), dtype=bool) for _, lab in gts]
        tp = np.zeros(len(rows))
        for k, (_, f, i) in enumerate(rows):
            gb = gts[f][0][gts[f][1] == c]
            if gb.shape[0] == 0:
                continue
            iou = box_iou(dets[f][0][i:i + 1], gb)[0]
            iou[used[f]] = -1.0
            j = int(np.argmax(iou))
            if iou[j] >= iou_threshold:
                used[f][j] = True
                tp[k] = 1.0
        ap[int(c)] = average_precision(tp, n)
    m = float(np.mean(list(ap.values()))) if ap else float("nan")
    return {"map": m, "ap": ap, "num_gt": num_gt}
