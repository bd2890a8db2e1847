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


def _bilinear(plane: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Sample ``plane [K, C, H, W]`` at per-roi points ``y [K, P]``, ``x [K, P]`` -> ``[K, C, P]``."""
    K, C, H, W = plane.shape
    outside = (y < -1.0) | (y > H) | (x < -1.0) | (x > W)
    y = y.clamp(min=0.0)
    x = x.clamp(min=0.0)
    y_lo = y.floor().long()
    x_lo = x.floor().long()
    y_top = y_lo >= H - 1
    x_top = x_lo >= W - 1
    y_lo = torch.where(y_top, H - 1, y_lo)
    x_lo = torch.where(x_top, W - 1, x_lo)
    y_hi = torch.where(y_top, y_lo, y_lo + 1)
    x_hi = torch.where(x_top, x_lo, x_lo + 1)
    y = torch.where(y_top, y_lo.to(y.dtype), y)
    x = torch.where(x_top, x_lo.to(x.dtype), x)
    ly = y - y_lo
    lx = x - x_lo
    hy = 1.0 - ly
    hx = 1.0 - lx
    flat = plane.reshape(K, C, H * W)

    def gather(yy: Tensor, xx: Tensor) -> Tensor:
        index = (yy * W + xx).unsqueeze(1).expand(K, C, yy.shape[1])
        return flat.gather(2, index)

    val = (
        (hy * hx).unsqueeze(1) * gather(y_lo, x_lo)
        + (hy * lx).unsqueeze(1) * gather(y_lo, x_hi)
        + (ly * hx).unsqueeze(1) * gather(y_hi, x_lo)
        + (ly * lx).unsqueeze(1) * gather(y_hi, x_hi)
    )
    return val.masked_fill(outside.unsqueeze(1), 0.0)


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

    # Sample coordinates: y [K, PH, GH], x [K, PW, GW]; samples past a roi's own grid are masked.
    ph = torch.arange(pooled_h, dtype=acc, device=input.device)
    pw = torch.arange(pooled_w, dtype=acc, device=input.device)
    iy = torch.arange(gh_max, dtype=acc, device=input.device)
    ix = torch.arange(gw_max, dtype=acc, device=input.device)
    ys = (
        y1[:, None, None]
        + ph[None, :, None] * bin_h[:, None, None]
        + (iy[None, None, :] + 0.5) * (bin_h / grid_h)[:, None, None]
    )
    xs = (
        x1[:, None, None]
        + pw[None, :, None] * bin_w[:, None, None]
        + (ix[None, None, :] + 0.5) * (bin_w / grid_w)[:, None, None]
    )
    my = (iy[None, :] < grid_h[:, None]).to(acc)  # [K, GH]
    mx = (ix[None, :] < grid_w[:, None]).to(acc)  # [K, GW]
    # All (y, x) pairs: [K, PH, GH, PW, GW]
    Y = ys[:, :, :, None, None].expand(K, pooled_h, gh_max, pooled_w, gw_max)
    X = xs[:, None, None, :, :].expand(K, pooled_h, gh_max, pooled_w, gw_max)
    plane = input.to(acc)[b]  # [K, C, H, W]
    vals = _bilinear(plane, Y.reshape(K, -1), X.reshape(K, -1))
    vals = vals.reshape(K, C, pooled_h, gh_max, pooled_w, gw_max)
    weight = my[:, None, None, :, None, None] * mx[:, None, None, None, None, :]
    summed = (vals * weight).sum(dim=(3, 5))
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
