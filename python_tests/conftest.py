from __future__ import annotations

import os
import secrets
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    """The development script ``tools/<name>.py`` as a module (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shared_data() -> Path:
    """The shared research data (``$ANONFACE_DATA`` or ``../shared/data``; see anonface.data.lfw's
    data_root). Tests that need it skip with a reason when a path below it is missing."""
    from anonface.data.lfw import data_root

    return data_root() or REPO_ROOT.parent / "shared" / "data"


def logit_change(model, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """What a residual anonymizer M added to its base for crops ``x`` (and codes ``z``), in the logit
    space where it adds it. Give float64 models and crops: the logits then read back to ~1e-12 where
    the faces are far from saturating."""
    with torch.no_grad():
        return torch.atanh(model(x, z)) - torch.atanh(model.base_image(x, z).clamp(-0.995, 0.995))


# -- devices -----------------------------------------------------------------------------------------
# One parametrisation for every test that runs on both devices: the CUDA case carries the `cuda`
# mark, which the collection hook below turns into a skip (with the reason) where there is no GPU or
# the kernels were built without CUDA. Tests that only make sense on a GPU carry the mark themselves.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def cuda_unavailable() -> str | None:
    """Why the CUDA cases cannot run here, or None."""
    if not torch.cuda.is_available():
        return "needs a CUDA device"
    import anonface

    if not anonface.build_info()["has_cuda"]:
        return "anonface was built without CUDA kernels"
    return None


@pytest.fixture(params=DEVICES)
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
    no_cuda = cuda_unavailable()
    for item in items:
        if no_cuda and item.get_closest_marker("cuda") is not None:
            item.add_marker(pytest.mark.skip(reason=no_cuda))
        try:
            top = Path(str(item.fspath)).resolve().relative_to(here).parts[0]
        except ValueError:
            continue
        if top in ONE_THREAD_DIRS:
            item.fixturenames.insert(0, "one_torch_thread")


# -- reproducible randomness -----------------------------------------------------------------------
# Tests draw fresh random inputs each run, from one session seed that the header prints; a failure
# is reproduced with ANONFACE_TEST_SEED=<that seed>. Each test's streams derive from the seed and its
# node id, so a test gets the same inputs whether it runs alone or in the whole suite.
SESSION_SEED = int(os.environ.get("ANONFACE_TEST_SEED") or secrets.randbelow(2**31))


def pytest_report_header(config) -> str:
    return f"anonface test seed: {SESSION_SEED} (reproduce a run with ANONFACE_TEST_SEED={SESSION_SEED})"


@pytest.fixture(autouse=True)
def _seeded_randomness(request, monkeypatch) -> Iterator[None]:
    seed = (zlib.crc32(request.node.nodeid.encode()) ^ SESSION_SEED) % 2**31
    torch.manual_seed(seed)
    np.random.seed(seed)
    seq = np.random.SeedSequence(seed)
    unseeded = np.random.default_rng

    def default_rng(s=None):  # np.random.default_rng() without a seed: a stream of this test's seed
        return unseeded(seq.spawn(1)[0] if s is None else s)

    monkeypatch.setattr(np.random, "default_rng", default_rng)
    yield


def pytest_runtest_makereport(item, call) -> None:
    if call.excinfo is not None and call.when == "call":
        item.add_report_section("call", "seed", f"ANONFACE_TEST_SEED={SESSION_SEED}")
