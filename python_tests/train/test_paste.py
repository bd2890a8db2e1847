"""The M step's crop/paste: gradients reach the faces, and paste(crop) leaves a frame unchanged."""

from __future__ import annotations

import torch

from anonface.train.paste import crop_faces, paste_faces


def test_crop_paste_roundtrip_and_grad() -> None:
    frames = torch.rand(2, 3, 40, 52, dtype=torch.float64)
    rois = torch.tensor([[0, 6.0, 4.0, 30.0, 28.0], [1, 20.0, 10.0, 44.0, 34.0]], dtype=torch.float64)
    crops = crop_faces(frames, rois, 24)
    assert crops.shape == (2, 3, 24, 24)
    # crop at the box's own size, paste back: the frame is (nearly) unchanged
    out = paste_faces(frames, crops, rois)
    torch.testing.assert_close(out, frames, atol=1e-6, rtol=0)
    faces = (torch.rand(2, 3, 24, 24, dtype=torch.float64) * 2 - 1).requires_grad_()
    pasted = paste_faces(frames, faces, rois)
    w = torch.rand_like(pasted)
    (pasted * w).sum().backward()
    assert faces.grad is not None and float(faces.grad.abs().sum()) > 0
    # pixels far outside both boxes are untouched
    torch.testing.assert_close(pasted[0, :, 36:, :], frames[0, :, 36:, :])
