from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cuda_param(device: str):
    """Mark a device parameter so CUDA cases skip cleanly without a GPU or a CUDA build."""
    marks = []
    if device == "cuda":
        import anonface

        marks.append(pytest.mark.cuda)
        if not anonface.build_info()["has_cuda"]:
            marks.append(pytest.mark.skip(reason="anonface was built without CUDA kernels"))
    return pytest.param(device, marks=marks)


ALL_DEVICES = [cuda_param(d) for d in ["cpu", "cuda"] if d == "cpu" or torch.cuda.is_available()]


@pytest.fixture(params=ALL_DEVICES)
def device(request) -> str:
    return request.param
