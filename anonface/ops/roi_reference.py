"""Pure-PyTorch RoI pooling: the test oracle and benchmark baseline of the compiled ops.

Same contract as :func:`anonface.ops.roi_align` / :func:`anonface.ops.roi_pool` (and
``torchvision.ops``): rois are ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in input
coordinates before ``spatial_scale``. Written for clarity and vectorised over rois; not for speed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["roi_align_reference", "roi_pool_reference"]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _valid_rois(rois: Tensor, batch_size: int) -> Tensor:
    finite = torch.isfinite(rois).all(dim=1)
    idx = torch.nan_to_num(rois[:, 0], nan=-1.0, posinf=-1.0, neginf=-1.0).trunc()
    return finite & (idx >= 0) & (idx < batch_size)


def _axis_weights(start: Tensor, bin_size: Tensor, grid: Tensor, grid_max: int, pooled: int, size: int) -> Tensor:
    """Per-roi matrix ``[K, pooled, size]``: how much each map row (or column) contributes to each
    output bin, summed over the bin's samples along this axis.

    Bilinear interpolation and the "outside [-1, size]" rule are separable, so RoIAlign of a plane
    ``v [H, W]`` is ``Wy @ v @ Wx^T / count``.
    """
    K = start.shape[0]
    dtype = start.dtype
    p = torch.arange(pooled, dtype=dtype, device=start.device)
    i = torch.arange(grid_max, dtype=dtype, device=start.device)
    pos = start[:, None, None] + p[None, :, None] * bin_size[:, None, None] + (i[None, None, :] + 0.5) * (
        bin_size / grid
    )[:, None, None]  # [K, pooled, grid_max]
    used = (i[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    lo = pos.floor()
    top = lo >= size - 1
    lo = torch.where(top, torch.full_like(lo, size - 1), lo)
    hi = torch.where(top, lo, lo + 1)
    pos = torch.where(top, lo, pos)
    frac = pos - lo
    w_lo = torch.where(used, 1.0 - frac, torch.zeros_like(frac))
    w_hi = torch.where(used, frac, torch.zeros_like(frac))
    weights = torch.zeros(K, pooled, size, dtype=dtype, device=start.device)
    weights.scatter_add_(2, lo.long().clamp(0, size - 1), w_lo)
    weights.scatter_add_(2, hi.long().clamp(0, size - 1), w_hi)
    return weights


def roi_align_reference(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign in plain PyTorch (differentiable through autograd). Returns ``[K, C, pooled_h, pooled_w]``.

    Rois are processed in chunks so that the gathered samples stay within a few hundred MB.
    """
    K = rois.shape[0]
    chunk = 64
    if K <= chunk:
        return _roi_align_chunk(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)
    parts = [
        _roi_align_chunk(input, rois[i : i + chunk], spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)
        for i in range(0, K, chunk)
    ]
    return torch.cat(parts, dim=0)


def _roi_align_chunk(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    N, C, H, W = input.shape
    K = rois.shape[0]
    acc = _acc_dtype(input.dtype)
    out = input.new_zeros((K, C, pooled_h, pooled_w), dtype=acc)
    if K == 0 or H == 0 or W == 0:
        return out.to(input.dtype)
    rois = rois.to(acc)
    valid = _valid_rois(rois, N)
    r = torch.where(valid.unsqueeze(1), rois, torch.zeros_like(rois))
    b = r[:, 0].long()
    offset = 0.5 if aligned else 0.0
    x1 = r[:, 1] * spatial_scale - offset
    y1 = r[:, 2] * spatial_scale - offset
    x2 = r[:, 3] * spatial_scale - offset
    y2 = r[:, 4] * spatial_scale - offset
    roi_w = x2 - x1
    roi_h = y2 - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, float(sampling_ratio))
        grid_w = torch.full_like(roi_w, float(sampling_ratio))
    else:
        grid_h = torch.ceil(roi_h / pooled_h)
        grid_w = torch.ceil(roi_w / pooled_w)
        valid = valid & (grid_h >= 1) & (grid_w >= 1)
    grid_h = grid_h.clamp(1, 4096)
    grid_w = grid_w.clamp(1, 4096)
    gh_max = int(grid_h[valid].max().item()) if valid.any() else 1
    gw_max = int(grid_w[valid].max().item()) if valid.any() else 1
    wy = _axis_weights(y1, bin_h, grid_h, gh_max, pooled_h, H)  # [K, PH, H]
    wx = _axis_weights(x1, bin_w, grid_w, gw_max, pooled_w, W)  # [K, PW, W]
    plane = input.to(acc)[b]  # [K, C, H, W]
    summed = torch.einsum("kph,kchw,kqw->kcpq", wy, plane, wx)
    count = (grid_h * grid_w)[:, None, None, None]
    out = torch.where(valid[:, None, None, None], summed / count, torch.zeros_like(summed))
    return out.to(input.dtype)


def roi_pool_reference(
    input: Tensor, rois: Tensor, spatial_scale: float, pooled_h: int, pooled_w: int
) -> tuple[Tensor, Tensor]:
    """RoIPool (max per bin) in plain PyTorch. Returns ``(output [K, C, PH, PW], argmax int32)``.

    ``argmax`` is the flat ``h * W + w`` index of the maximum inside its bin, -1 for an empty bin.
    A per-roi, per-bin loop: an oracle for tests, not a fast path.
    """
    N, C, H, W = input.shape
    K = rois.shape[0]
    acc = _acc_dtype(input.dtype)
    out = input.new_zeros((K, C, pooled_h, pooled_w))
    arg = torch.full((K, C, pooled_h, pooled_w), -1, dtype=torch.int32, device=input.device)
    rois = rois.to(acc)
    valid = _valid_rois(rois, N).tolist()
    rows = rois.tolist()
    for k in range(K):
        if not valid[k]:
            continue
        b, x1, y1, x2, y2 = rows[k]
        sw, sh = _round_half_away(x1 * spatial_scale), _round_half_away(y1 * spatial_scale)
        ew, eh = _round_half_away(x2 * spatial_scale), _round_half_away(y2 * spatial_scale)
        roi_w = max(ew - sw + 1, 1)
        roi_h = max(eh - sh + 1, 1)
        bh = roi_h / pooled_h
        bw = roi_w / pooled_w
        plane = input[int(b)]
        for i in range(pooled_h):
            h0 = min(max(math.floor(i * bh) + sh, 0), H)
            h1 = min(max(math.ceil((i + 1) * bh) + sh, 0), H)
            for j in range(pooled_w):
                w0 = min(max(math.floor(j * bw) + sw, 0), W)
                w1 = min(max(math.ceil((j + 1) * bw) + sw, 0), W)
                if h1 <= h0 or w1 <= w0:
                    continue
                region = plane[:, h0:h1, w0:w1].reshape(C, -1)
                val, pos = region.max(dim=1)
                out[k, :, i, j] = val
                rw = w1 - w0
                arg[k, :, i, j] = ((pos // rw + h0) * W + (pos % rw + w0)).to(torch.int32)
    return out, arg


def _round_half_away(v: float) -> int:
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))
