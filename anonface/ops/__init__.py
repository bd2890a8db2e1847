"""Typed wrappers of the compiled ops in ``torch.ops.anonface``."""

from __future__ import annotations

from anonface.ops.face import (
    FaceCrop,
    FaceModify,
    FacePaste,
    face_crop,
    face_modify,
    face_modify_,
    face_paste,
    face_paste_,
)
from anonface.ops.roi import RoIAlign, RoIPool, convert_boxes_to_rois, roi_align, roi_pool

__all__ = [
    "FaceCrop",
    "FaceModify",
    "FacePaste",
    "RoIAlign",
    "RoIPool",
    "convert_boxes_to_rois",
    "face_crop",
    "face_modify",
    "face_modify_",
    "face_paste",
    "face_paste_",
    "roi_align",
    "roi_pool",
]
