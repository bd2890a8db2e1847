#!/usr/bin/env python
"""Small CUDA workload for compute-sanitizer (memcheck / racecheck): every op forward and backward on
tiny random inputs, including boxes partly and fully outside the map, degenerate and NaN boxes.

    compute-sanitizer --tool memcheck python benchmarks/cuda_sanitizer_case.py
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
    ops = getattr(anonface, "ops")
    if hasattr(ops, "face_crop") and hasattr(ops, "face_paste") and hasattr(ops, "face_modify"):
        frames = torch.randint(0, 256, (2, 40, 50, 3), dtype=torch.uint8, device=dev)
        boxes = rois.detach().clone()
        boxes[:, 1:] *= 4
        crops = ops.face_crop(frames, boxes, 16)
        ops.face_paste(frames, crops, boxes)
        for method in ("pixelate", "blur", "solid", "noise"):
            ops.face_modify(frames, boxes, method=method)
        ff = frames.float().requires_grad_(True)
        c = ops.face_crop(ff, boxes, 16)
        ops.face_paste(ff, c, boxes).sum().backward()
    torch.cuda.synchronize()
    print("sanitizer case: done")


if __name__ == "__main__":
    main()
