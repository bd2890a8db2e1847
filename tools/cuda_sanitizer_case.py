#!/usr/bin/env python
"""Small CUDA workload for compute-sanitizer (memcheck / racecheck): every op forward and backward on
tiny random inputs, including boxes partly and fully outside the map, degenerate and NaN boxes.

    compute-sanitizer --tool memcheck python tools/cuda_sanitizer_case.py
"""

from __future__ import annotations

import torch

import anonface
from anonface.ops import roi_align, roi_pool


def main() -> None:
    assert torch.cuda.is_available() and anonface.build_info()["has_cuda"], "needs a CUDA build and a GPU"
    dev = "cuda"
    x = torch.randn(2, 3, 9, 11, device=dev, requires_grad=True)
    rois = torch.tensor(
        [
            [0, 1.0, 1.0, 7.0, 6.0],
            [1, -4.0, -3.0, 5.0, 20.0],  # partly outside
            [0, 30.0, 30.0, 40.0, 40.0],  # fully outside
            [1, 3.0, 3.0, 3.0, 3.0],  # zero size
            [0, 6.0, 6.0, 2.0, 2.0],  # inverted
            [1, float("nan"), 1.0, 4.0, 4.0],  # NaN
        ],
        device=dev,
    )
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        xd = x.detach().to(dtype).requires_grad_(True)
        for aligned in (True, False):
            out = roi_align(xd, rois, (3, 4), 0.5, -1, aligned)
            out.float().sum().backward()
        out = roi_pool(xd, rois, (2, 3), 0.5)
        out.float().sum().backward()
    empty = torch.zeros(0, 5, device=dev)
    roi_align(x, empty, 2).sum().backward()
    # fused face ops: both layouts, uint8/float/double, odd boxes (zero-size, inverted, NaN, infinite,
    # sub-pixel, outside), forward and backward
    from anonface.ops import face_crop, face_modify, face_paste

    g = torch.Generator().manual_seed(0)
    inf = float("inf")
    face_rois = torch.tensor(
        [
            [0, 3, 4, 30, 33],
            [1, -10, -10, 70, 60],
            [2, 50, 30, 60, 45],
            [0, 5, 5, 5, 9],
            [1, 8, 8, 3, 2],
            [2, float("nan"), 1, 5, 5],
            [0, -inf, -inf, inf, inf],
            [2, 52.5, 36.2, 52.7, 36.4],
        ],
        device=dev,
    )
    for channels_last in (True, False):
        f = torch.randint(0, 256, (3, 37, 53, 3), generator=g, dtype=torch.uint8)
        f = (f if channels_last else f.permute(0, 3, 1, 2).contiguous()).to(dev)
        c = face_crop(f, face_rois, 17)
        face_paste(f, c, face_rois)
        for method in ("pixelate", "blur", "solid", "noise"):
            face_modify(f, face_rois, method)
        ff = (f.float() / 255).requires_grad_()
        faces = c.clone().requires_grad_()
        (face_crop(ff, face_rois, 9).sum() + face_paste(ff, faces, face_rois).square().sum()).backward()
        fd = f.double() / 255
        face_crop(fd, face_rois, (5, 7))
        face_paste(fd, c.double(), face_rois, mask="box")
    torch.cuda.synchronize()
    print("sanitizer case: done")


if __name__ == "__main__":
    main()
