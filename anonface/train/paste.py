"""Crop and paste for the M step, through the fused ops ``anonface.ops.face_crop`` / ``face_paste``.

Frames here are float ``[B, 3, H, W]`` in ``[0, 1]``; faces are normalised with mean = std = 0.5.
Both are differentiable: the detection loss of A reaches M through ``face_paste``.
"""

from __future__ import annotations

from torch import Tensor

from anonface.ops import face_crop, face_paste

__all__ = ["crop_faces", "paste_faces"]

_HALF = (0.5, 0.5, 0.5)


def crop_faces(frames: Tensor, rois: Tensor, size: int) -> Tensor:
    """``[K, 3, size, size]`` crops of ``rois [K, 5]`` from float ``frames [B, 3, H, W]`` in [0, 1]."""
    return face_crop(frames, rois, size, _HALF, _HALF, channels_last=False)


def paste_faces(frames: Tensor, faces: Tensor, rois: Tensor, feather: float = 0.1) -> Tensor:
    """Blend normalised ``faces [K, 3, S, S]`` into ``frames [B, 3, H, W]`` over feathered ellipses."""
    return face_paste(frames, faces, rois, _HALF, _HALF, "ellipse", feather, channels_last=False)
