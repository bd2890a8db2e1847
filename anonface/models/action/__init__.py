"""A, the action detector (Faster R-CNN): backbone, RPN, RoI heads, detector."""

from __future__ import annotations

from anonface.models.action.boxes import BoxCoder, batched_nms, box_iou, nms
from anonface.models.action.detector import ActionDetector, DetectorConfig, build_detector

build_action_detector = build_detector

__all__ = ["ActionDetector", "DetectorConfig", "build_detector", "build_action_detector", "BoxCoder", "box_iou", "nms", "batched_nms"]
