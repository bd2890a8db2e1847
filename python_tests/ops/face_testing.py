"""Shared helpers of the face-op tests: devices, random frames and boxes, layouts."""

from __future__ import annotations

import torch
from conftest import DEVICES  # noqa: F401 - re-exported: the one device parametrisation

DTYPES = [torch.uint8, torch.float32, torch.float64]


def random_frames(
    b: int, h: int, w: int, dtype: torch.dtype, channels_last: bool, gen: torch.Generator
) -> torch.Tensor:
    """Random RGB frames (uint8 0-255 or float 0-1) in the asked layout; never constant."""
    x = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=gen)
    if dtype != torch.uint8:
        x = x.to(dtype) / 255 + torch.rand(b, h, w, 3, generator=gen, dtype=dtype) * 1e-3
    if not channels_last:
        x = x.permute(0, 3, 1, 2).contiguous()
    return x


def random_rois(
    k: int, b: int, h: int, w: int, gen: torch.Generator, min_size: float = 1.0, max_size: float | None = None,
    outside: float = 0.2,
) -> torch.Tensor:
    """Random boxes, some partly outside the frame, as float32 [K, 5]."""
    max_size = max_size if max_size is not None else 0.8 * max(h, w)
    size = min_size + torch.rand(k, 2, generator=gen, dtype=torch.float64) * (max_size - min_size)
    lo = torch.rand(k, 2, generator=gen, dtype=torch.float64) * torch.tensor([w, h]) * (1 + 2 * outside)
    lo = lo - torch.tensor([w, h]) * outside - size / 2
    idx = torch.randint(0, max(b, 1), (k, 1), generator=gen).double()
    return torch.cat([idx, lo, lo + size], 1).float()


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """[B, H, W, 3] view of frames in either layout."""
    return x if channels_last else x.permute(0, 2, 3, 1)


def covered(rois: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """Bool [B, H, W]: pixels whose centre lies in some (non-NaN) box, computed independently."""
    m = torch.zeros(b, h, w, dtype=torch.bool)
    ys = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    for r in rois.double().tolist():
        n, x1, y1, x2, y2 = r
        m[int(n)] |= (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    return m


def seed_gen() -> torch.Generator:
    """A generator with fresh inputs each run, drawn from torch's global seed, which the root
    conftest sets per test from the session seed (printed in the header; ANONFACE_TEST_SEED=N
    reproduces a run)."""
    g = torch.Generator()
    g.manual_seed(int(torch.randint(0, 2**62, ()).item()))
    return g


def nondet_tol(device: str) -> float:
    """gradcheck's tolerance for a backward that is not bit-reproducible: the CUDA backwards sum
    with atomics, whose order varies between runs, so float64 results differ in the last bits
    (exact on the CPU)."""
    return 1e-10 if device.startswith("cuda") else 0.0
