"""Loads the compiled ``anonface._C`` module and checks that it matches the running torch.

The kernels register themselves with torch's dispatcher when the module is loaded; Python reaches
them as ``torch.ops.anonface.*`` through the wrappers in :mod:`anonface.ops`.
"""

from __future__ import annotations

import torch  # must be imported before the extension so its libraries are loaded

_REBUILD = (
    "Rebuild anonface against the installed torch: "
    "`pip install --no-build-isolation --force-reinstall --no-deps -e .` "
    "(or `make build`) from the anonface source tree."
)

try:
    from anonface import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"anonface's compiled kernels (anonface._C) could not be loaded: {exc}. {_REBUILD}"
    ) from exc


def _base(version: str) -> str:
    return version.split("+")[0]


if _base(_C.torch_version) != _base(torch.__version__):  # pragma: no cover
    raise ImportError(
        f"anonface._C was built against torch {_C.torch_version} but torch {torch.__version__} "
        f"is installed; compiled kernels only work with the torch they were built for. {_REBUILD}"
    )

HAS_CUDA: bool = bool(_C.has_cuda)
TORCH_VERSION: str = str(_C.torch_version)
CUDA_VERSION: str = str(_C.cuda_version)


def build_info() -> dict[str, object]:
    """Facts about the compiled kernels: whether CUDA kernels were built, and against what."""
    return {
        "has_cuda": HAS_CUDA,
        "torch_version": TORCH_VERSION,
        "cuda_version": CUDA_VERSION or None,
        "sanitized": bool(_C.sanitized),
    }
