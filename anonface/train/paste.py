"""Crop and paste for the M step: ``anonface.ops.face_crop`` / ``face_paste`` when the ops exist,
otherwise small differentiable stand-ins with the same conventions (used until the ops land).

Frames here are float ``[B, 3, H, W]`` in ``[0, 1]``; faces are normalised with mean = std = 0.5.
"""

from __future__ import annotations

import torch
from torch import Tensor

from anonface.data.faces import crop_boxes

__all__ = ["crop_faces", "paste_faces"]


def _ops():
    import anonface.ops as ops

    return ops if hasattr(ops, "face_paste") and hasattr(ops, "face_crop") else None


def crop_faces(frames: Tensor, rois: Tensor, size: int) -> Tensor:
    """``[K, 3, size, size]`` crops of ``rois [K, 5]`` from float ``frames [B, 3, H, W]`` in [0, 1]."""
    ops = _ops()
    if ops is not None:
        return ops.face_crop(frames, rois, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    if rois.shape[0] == 0:
        return frames.new_zeros(0, 3, size, size)
    img = frames[rois[:, 0].long()]
    return crop_boxes(img, rois[:, 1:], size) * 2 - 1


def paste_faces(frames: Tensor, faces: Tensor, rois: Tensor, feather: float = 0.1) -> Tensor:
    """Blend normalised ``faces [K, 3, S, S]`` into ``frames [B, 3, H, W]`` over feathered ellipses.

    Differentiable with respect to ``faces`` and ``frames``.
    """
    ops = _ops()
    if ops is not None:
        return ops.face_paste(frames, faces, rois, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "ellipse", feather)
    out = frames
    _, _, h, w = frames.shape
    yy = (torch.arange(h, dtype=frames.dtype, device=frames.device) + 0.5).view(h, 1)
    xx = (torch.arange(w, dtype=frames.dtype, device=frames.device) + 0.5).view(1, w)
    for k in range(rois.shape[0]):
        b = int(rois[k, 0])
        x1, y1, x2, y2 = (float(v) for v in rois[k, 1:])
        bw, bh = x2 - x1, y2 - y1
        if not (bw > 0 and bh > 0):
            continue
        # sample the face at every frame pixel (clamped edges), then mask
        gx = ((xx - x1) / bw * 2 - 1).expand(h, w)
        gy = ((yy - y1) / bh * 2 - 1).expand(h, w)
        grid = torch.stack([gx, gy], -1)[None]
        face = torch.nn.functional.grid_sample(faces[k:k + 1] * 0.5 + 0.5, grid, mode="bilinear",
                                               padding_mode="border", align_corners=False)[0]
        # alpha: 1 inside the ellipse shrunk by the feather band, 0 at the inscribed ellipse
        nx = (xx - (x1 + x2) / 2) / (bw / 2)
        ny = (yy - (y1 + y2) / 2) / (bh / 2)
        r = torch.sqrt(nx * nx + ny * ny)
        band = max(2 * feather, 1e-6)
        alpha = ((1 - r) / band).clamp(0, 1)
        new = out[b] * (1 - alpha) + face * alpha
        out = torch.cat([out[:b], new[None], out[b + 1:]], 0)
    return out
