#!/usr/bin/env python
"""Every op refusing a bad argument on one device: the error must reach Python as an exception.

A C++ exception that cannot unwind through a backend's entry point takes the process down instead
(the first CUDA run of the test suite died this way, in test_crop_bad_input[cuda]). Each case runs
in this process, so a crash names its case in the output; run it once per device:

    python tools/cuda_error_case.py cpu
    python tools/cuda_error_case.py cuda
"""

from __future__ import annotations

import sys

import torch

from anonface.ops import face_crop, face_modify, face_modify_, face_paste, roi_align, roi_pool


def main(dev: str) -> int:
    frames = torch.randint(0, 256, (2, 10, 12, 3), dtype=torch.uint8, device=dev)
    bad = torch.tensor([[2.0, 1.0, 1.0, 5.0, 5.0]], device=dev)  # frame 2 of 2
    faces = torch.rand(1, 3, 4, 4, device=dev)
    x = torch.rand(2, 3, 9, 11, device=dev)
    cases = {
        "face_crop frame index": lambda: face_crop(frames, bad, 4),
        "face_crop op frame index": lambda: torch.ops.anonface.face_crop(frames, bad, [4, 4], [0.5] * 3,
                                                                          [0.5] * 3, True),
        "face_paste frame index": lambda: face_paste(frames, faces, bad),
        "face_modify frame index": lambda: face_modify(frames, bad, "pixelate"),
        "face_modify_ frame index": lambda: face_modify_(frames, bad, "blur"),
        "face_modify method": lambda: face_modify(frames, bad[:, :] * 0, "melt"),
        "roi_align rois shape": lambda: roi_align(x, bad[:, :4], 2),
        "roi_pool rois shape": lambda: roi_pool(x, bad[:, :4], 2),
        "roi_align sampling_ratio": lambda: roi_align(x, bad * 0, 2, 1.0, 1000),
    }
    failed = 0
    for name, call in cases.items():
        print(f"{dev} {name}: ", end="", flush=True)
        try:
            call()
        except (ValueError, RuntimeError, TypeError) as e:
            print(f"raised {type(e).__name__}", flush=True)
        else:
            print("NOT REFUSED", flush=True)
            failed += 1
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"error case {dev}: {'ok' if not failed else f'{failed} not refused'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
