"""Typed wrappers of the compiled ops in ``torch.ops.anonface``."""

from __future__ import annotations

from anonface.ops.roi import RoIAlign, RoIPool, convert_boxes_to_rois, roi_align, roi_pool

__all__ = [
    "RoIAlign",
    "RoIPool",
    "convert_boxes_to_rois",
    "roi_align",
    "roi_pool",
]
