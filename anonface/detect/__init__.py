"""Face detection: a small protocol, CenterFace (cv2.dnn / PyTorch), and user-supplied boxes."""

from __future__ import annotations

from anonface.detect.base import FaceDetector, empty_dets
from anonface.detect.boxes import BoxesDetector, as_dets
from anonface.detect.centerface import CenterFace, default_onnx_path, detection_size
from anonface.detect.decode import box_iou, decode_centerface, decode_centerface_torch, nms
from anonface.detect.factory import (
    DEFAULT_OPTIONS,
    DEFAULT_THRESHOLD,
    DETECTORS,
    build_detector,
    check_detector_options,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_THRESHOLD",
    "DETECTORS",
    "build_detector",
    "check_detector_options",
    "FaceDetector",
    "BoxesDetector",
    "CenterFace",
    "as_dets",
    "box_iou",
    "decode_centerface",
    "decode_centerface_torch",
    "default_onnx_path",
    "detection_size",
    "empty_dets",
    "nms",
]
