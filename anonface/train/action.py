"""Train and evaluate the action detector A alone (for utility measurements and tests).

``train_action_detector(data, steps=...)`` fits a Faster R-CNN on an :class:`ActionSet` (frames
optionally passed through an anonymization function first); ``detect`` runs it; ``evaluate_detector``
gives frame-mAP at IoU 0.5.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from anonface.data.actions import ActionSet
from anonface.models.action.detector import ActionDetector, DetectorConfig
from anonface.models.action.frame_map import frame_map

logger = logging.getLogger(__name__)

__all__ = ["train_action_detector", "detect", "evaluate_detector", "small_detector_config"]


def small_detector_config(num_classes: int) -> DetectorConfig:
    """A detector small enough to train in seconds on CPU (for ~160 px frames)."""
    return DetectorConfig(num_classes=num_classes, widths=[16, 32, 64], depth=1, anchor_sizes=[32.0, 64.0, 128.0],
                          rpn_pre_nms=300, rpn_post_nms=50, rpn_batch=64, roi_batch=32, hidden=128)


def _batch(data: ActionSet, idx: list[int], device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    frames = data.frames[idx].permute(0, 3, 1, 2).float().div(255).contiguous().to(device)
    targets = [{"boxes": data.person_boxes[i].to(device), "labels": data.labels[i].to(device)} for i in idx]
    return frames, targets


def train_action_detector(data: ActionSet, *, steps: int = 200, seed: int = 0, config: DetectorConfig | None = None,
                          lr: float = 0.01, batch_size: int = 2, device: str | torch.device = "cpu",
                          anonymize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          log_every: int = 50) -> ActionDetector:
    """Fit A on ``data`` with SGD (momentum 0.9, lr warm-up over the first 10% of steps).

    Args:
        data: frames and person boxes with action labels.
        anonymize: optional function applied to the uint8 frames ``[T, H, W, 3]`` first (e.g. a method
            under evaluation); its output must have the same shape and dtype.
    """
    if anonymize is not None:
        frames = anonymize(data.frames)
        if frames.shape != data.frames.shape or frames.dtype != torch.uint8:
            raise ValueError(f"anonymize must return uint8 {tuple(data.frames.shape)}, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        data = ActionSet(frames, data.person_boxes, data.labels, data.face_boxes, data.classes)
    dev = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    det = ActionDetector(config or small_detector_config(max(data.num_classes, 1))).to(dev)
    opt = torch.optim.SGD(det.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    warm = max(1, steps // 10)
    det.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warm)
        idx = torch.randint(0, len(data), (batch_size,), generator=gen).tolist()
        frames, targets = _batch(data, idx, dev)
        losses = det(frames, targets, gen)
        assert isinstance(losses, dict)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(det.parameters(), 10.0)
        opt.step()
        if log_every and (step + 1) % log_every == 0:
            logger.info("detector step %d/%d loss %.4f", step + 1, steps, float(loss))
    det.eval()
    return det


@torch.no_grad()
def detect(det: ActionDetector, data: ActionSet, batch_size: int = 4) -> list[dict[str, torch.Tensor]]:
    det.eval()
    dev = next(det.parameters()).device
    out: list[dict[str, torch.Tensor]] = []
    for s in range(0, len(data), batch_size):
        frames, _ = _batch(data, list(range(s, min(len(data), s + batch_size))), dev)
        res = det(frames)
        assert isinstance(res, list)
        out.extend({k: v.cpu() for k, v in r.items()} for r in res)
    return out


def evaluate_detector(det: ActionDetector, data: ActionSet, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Frame-mAP of ``det`` on ``data``."""
    dets = detect(det, data)
    gts = [{"boxes": b, "labels": lab} for b, lab in zip(data.person_boxes, data.labels)]
    return frame_map(dets, gts, iou_threshold)
