from __future__ import annotations

from pathlib import Path
from typing import Iterator

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


# Test folders that run on one torch thread: on the shared 2-core machines oversubscribed OpenMP
# threads made their training tests ~10x slower.
ONE_THREAD_DIRS = ("data", "models", "train")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            top = Path(str(item.fspath)).resolve().relative_to(here).parts[0]
        except ValueError:
            continue
        if top in ONE_THREAD_DIRS:
            item.fixturenames.insert(0, "one_torch_thread")
