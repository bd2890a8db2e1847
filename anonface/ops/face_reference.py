"""Pure-PyTorch versions of the fused face ops: the test oracle and the benchmark baseline.

They follow the contracts of ``face_crop``, ``face_paste`` and ``face_modify`` (see
:mod:`anonface.ops.face` and the README, Fused face kernels) step by step, written for clarity rather than
speed (a Python loop over boxes). The compiled kernels must agree with them to within float
rounding (uint8 results: within one grey level where a value lies on a rounding boundary).

Convention (shared with the kernels):

* ``rois`` is ``Tensor[K, 5]`` = ``(frame_index, x1, y1, x2, y2)`` in pixel-corner coordinates;
  pixel ``(i, j)`` (row, column) has its centre at ``(j + 0.5, i + 0.5)``.
* Box geometry is evaluated in float64 (crop sample positions and weights) or float32 (paste
  positions and the alpha mask), exactly as written below, so that the CPU and CUDA kernels can
  reproduce it; pixel values are accumulated in float32 (float64 for float64 frames).
* Coordinates are clamped to ``[-2**24, 2**24]`` (so +-inf behaves as a huge box); a box with a
  NaN coordinate is ignored (zero crop, nothing pasted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "face_crop_reference",
    "face_paste_reference",
    "face_modify_reference",
    "noise_normal_reference",
    "blur_grid_size",
]

COORD_LIMIT = float(2**24)
MASKS = ("ellipse", "box")
METHODS = ("pixelate", "blur", "solid", "noise")
# Largest blur working grid side (cells) and smallest.
BLUR_GRID_MIN = 4
BLUR_GRID_MAX = 128
# Pixelate cells per side are clamped to this range.
PIXELATE_MAX_CELLS = 4096


def _acc_dtype(frames: torch.Tensor) -> torch.dtype:
    return torch.float64 if frames.dtype == torch.float64 else torch.float32


def _nchw(frames: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2) if channels_last else frames


def _box(roi: torch.Tensor) -> tuple[int, float, float, float, float] | None:
    """(frame, x1, y1, x2, y2) as Python floats with coordinates clamped; None for a NaN box."""
    vals = [float(v) for v in roi.double().tolist()]
    coords = vals[1:]
    if any(math.isnan(c) for c in coords):
        return None
    x1, y1, x2, y2 = (min(max(c, -COORD_LIMIT), COORD_LIMIT) for c in coords)
    return int(vals[0]), x1, y1, x2, y2


def _check_index(rois: torch.Tensor, n_frames: int) -> None:
    if rois.numel() == 0:
        return
    idx = rois[:, 0].double()
    ok = (idx >= 0) & (idx < n_frames) & (idx == torch.floor(idx))
    if not bool(ok.all()):
        bad = idx[~ok][0].item()
        raise ValueError(
            f"rois[:, 0] must hold integral frame indices in [0, {n_frames}), got {bad}"
        )


# ----------------------------------------------------------------------------------------------
# face_crop: roi_align(aligned=True, sampling_ratio=-1) weights, separable per axis
# ----------------------------------------------------------------------------------------------
def _axis_weights(
    lo: float, hi: float, out: int, length: int, replicate: bool = False
) -> torch.Tensor:
    """Dense ``[out, length]`` float64 matrix: roi_align's averaged bilinear weights on one axis.

    Output index ``p`` averages ``g = ceil((hi - lo) / out)`` samples at
    ``start + p * bin + (t + 0.5) * bin / g`` with ``start = lo - 0.5`` (aligned=True);
    samples outside ``[-1, length]`` count as zero, samples in ``[-1, 0]`` read index 0 and
    samples past ``length - 1`` read the last index (torchvision's rules). With ``replicate``
    every sample is clamped into ``[0, length - 1]`` instead (the nearest edge pixel; the blur
    grid of ``face_modify``, so boxes partly outside the frame are not darkened).
    """
    w = torch.zeros(out, max(length, 0), dtype=torch.float64)
    start = lo - 0.5
    end = hi - 0.5
    size = end - start
    if not (size > 0) or length <= 0 or out <= 0:
        return w
    bin_size = size / out
    g = max(int(math.ceil(size / out)), 1)
    step = bin_size / g
    p = torch.arange(out, dtype=torch.float64)
    base = start + p * bin_size
    if replicate:
        t = torch.arange(g, dtype=torch.float64)[None, :].expand(out, g)
        y = (base[:, None] + (t + 0.5) * bin_size / g).clamp(0.0, float(length - 1))
        valid = torch.ones_like(y, dtype=torch.bool)
    else:
        # Only samples that can land inside [-1, length] matter; find their index range per
        # output (with a margin; the exact test below decides).
        t_lo = torch.ceil((-1.0 - base) / step - 0.5) - 1
        t_hi = torch.floor((length - base) / step - 0.5) + 1
        t_lo = t_lo.clamp(0, g - 1)
        t_hi = t_hi.clamp(-1, g - 1)
        count = int((t_hi - t_lo + 1).clamp(min=0).max().item())
        if count <= 0:
            return w
        t = t_lo[:, None] + torch.arange(count, dtype=torch.float64)[None, :]
        in_range = t <= t_hi[:, None]
        y = base[:, None] + (t + 0.5) * bin_size / g
        valid = in_range & (y >= -1.0) & (y <= float(length))
    y = torch.where(y <= 0, torch.zeros_like(y), y)
    low = torch.floor(y)
    clamp_hi = low >= length - 1
    low = torch.where(clamp_hi, torch.full_like(low, length - 1), low)
    high = torch.where(clamp_hi, low, low + 1)
    frac = torch.where(clamp_hi, torch.zeros_like(y), y - low)
    pp = p[:, None].expand_as(y)
    vw_low = torch.where(valid, (1.0 - frac) / g, torch.zeros_like(y))
    vw_high = torch.where(valid, frac / g, torch.zeros_like(y))
    low = torch.where(valid, low, torch.zeros_like(low)).long()
    high = torch.where(valid, high, torch.zeros_like(high)).long()
    w.index_put_((pp.long().reshape(-1), low.reshape(-1)), vw_low.reshape(-1), accumulate=True)
    w.index_put_((pp.long().reshape(-1), high.reshape(-1)), vw_high.reshape(-1), accumulate=True)
    return w


def _crop_raw(
    frames_nchw: torch.Tensor,
    box: tuple[int, float, float, float, float],
    sh: int,
    sw: int,
    replicate: bool = False,
) -> torch.Tensor:
    """roi_align of one box on frames in their own units, ``[3, sh, sw]`` float64."""
    n, x1, y1, x2, y2 = box
    h, w = frames_nchw.shape[-2:]
    wy = _axis_weights(y1, y2, sh, h, replicate)
    wx = _axis_weights(x1, x2, sw, w, replicate)
    rows = torch.nonzero(wy.abs().sum(0)).flatten()
    cols = torch.nonzero(wx.abs().sum(0)).flatten()
    if rows.numel() == 0 or cols.numel() == 0:
        return torch.zeros(3, sh, sw, dtype=torch.float64)
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    f = frames_nchw[n, :, r0:r1, c0:c1].double()
    return torch.einsum("ph,chw,qw->cpq", wy[:, r0:r1], f, wx[:, c0:c1])


def face_crop_reference(
    frames: torch.Tensor,
    rois: torch.Tensor,
    size: int | Sequence[int],
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    channels_last: bool = True,
) -> torch.Tensor:
    """Reference ``face_crop``: ``((roi_align(frames) [/ 255]) - mean) / std``, ``[K, 3, Sh, Sw]``.

    Output dtype: float32 for uint8 and float32 frames, float64 for float64 frames.
    """
    sh, sw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    nchw = _nchw(frames, channels_last)
    _check_index(rois, nchw.shape[0])
    out_dtype = _acc_dtype(frames)
    k = rois.shape[0]
    out = torch.zeros(k, 3, sh, sw, dtype=torch.float64)
    for i in range(k):
        box = _box(rois[i])
        if box is None:
            continue
        out[i] = _crop_raw(nchw, box, sh, sw)
    if frames.dtype == torch.uint8:
        out = out / 255.0
    m = torch.tensor(list(mean), dtype=torch.float64).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float64).view(1, 3, 1, 1)
    return ((out - m) / s).to(out_dtype).to(frames.device)


# ----------------------------------------------------------------------------------------------
# face_paste: geometry in float32, blend in the accumulation dtype
# ----------------------------------------------------------------------------------------------
def _pixel_range(lo: float, hi: float, length: int) -> tuple[int, int]:
    """Indices whose pixel centre ``idx + 0.5`` lies in ``[lo, hi)``, clipped to the frame."""
    a = min(max(int(math.ceil(lo - 0.5)), 0), length)
    b = min(max(int(math.ceil(hi - 0.5)), 0), length)
    return a, max(a, b)


def _f32(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


def _alpha(
    box: tuple[int, float, float, float, float],
    rows: torch.Tensor,
    cols: torch.Tensor,
    mask: str,
    feather: float,
) -> torch.Tensor:
    """Float32 alpha ``[len(rows), len(cols)]`` of the ellipse/box mask inscribed in ``box``."""
    _, x1, y1, x2, y2 = box
    cx, cy = _f32((x1 + x2) / 2), _f32((y1 + y2) / 2)
    ia, ib = _f32(2.0 / (x2 - x1)), _f32(2.0 / (y2 - y1))
    nx = (cols.float() + 0.5 - cx) * ia
    ny = (rows.float() + 0.5 - cy) * ib
    if mask == "ellipse":
        # sqrt through float64 is the correctly rounded float32 sqrt (torch's vectorised float32
        # sqrt may differ by one ulp), as sqrtf in the kernels.
        r = torch.sqrt((ny[:, None] * ny[:, None] + nx[None, :] * nx[None, :]).double()).float()
    else:
        r = torch.maximum(ny.abs()[:, None], nx.abs()[None, :])
    if feather > 0:
        inv_band = _f32(1.0 / (2.0 * feather))
        return ((1.0 - r) * inv_band).clamp(0.0, 1.0)
    return (r <= 1.0).float()


def _sample_axis(
    lo: float, hi: float, idx: torch.Tensor, out: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps (i0, i1, frac) on a face axis of ``out`` texels for frame indices ``idx``."""
    scale = _f32(out / (hi - lo))
    pos = (idx.float() + 0.5 - _f32(lo)) * scale - 0.5
    pos = pos.clamp(0.0, float(out - 1))
    i0 = pos.long().clamp(max=out - 1)
    i1 = (i0 + 1).clamp(max=out - 1)
    frac = pos - i0.float()
    return i0, i1, frac


def _blend_box(
    work: torch.Tensor,
    box: tuple[int, float, float, float, float],
    value_fn,
    mask: str,
    feather: float,
) -> None:
    """Blend ``value_fn(rows, cols) -> [3, h, w]`` into ``work[n]`` (NCHW, acc dtype) in place."""
    n, x1, y1, x2, y2 = box
    height, width = work.shape[-2:]
    i0, i1 = _pixel_range(y1, y2, height)
    j0, j1 = _pixel_range(x1, x2, width)
    if i1 <= i0 or j1 <= j0:
        return
    rows = torch.arange(i0, i1)
    cols = torch.arange(j0, j1)
    alpha = _alpha(box, rows, cols, mask, feather).to(work.dtype)
    value = value_fn(rows, cols)
    prev = work[n, :, i0:i1, j0:j1]
    # Pixels outside the mask (alpha 0) are left exactly as they are, whatever the value.
    work[n, :, i0:i1, j0:j1] = torch.where(alpha > 0, alpha * value + (1.0 - alpha) * prev, prev)


def _bilinear_value(
    face: torch.Tensor, box: tuple[int, float, float, float, float], rows, cols
) -> torch.Tensor:
    """Face ``[3, S, S]`` (acc dtype) sampled at the pixels ``rows x cols`` of ``box``."""
    _, x1, y1, x2, y2 = box
    sh, sw = face.shape[-2:]
    u0, u1, fu = _sample_axis(y1, y2, rows, sh)
    v0, v1, fv = _sample_axis(x1, x2, cols, sw)
    fu = fu.to(face.dtype)[:, None]
    fv = fv.to(face.dtype)[None, :]
    f00 = face[:, u0][:, :, v0]
    f01 = face[:, u0][:, :, v1]
    f10 = face[:, u1][:, :, v0]
    f11 = face[:, u1][:, :, v1]
    top = (1.0 - fv) * f00 + fv * f01
    bot = (1.0 - fv) * f10 + fv * f11
    return (1.0 - fu) * top + fu * bot


def _finish(work: torch.Tensor, frames: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if frames.dtype == torch.uint8:
        work = torch.round(work.clamp(0.0, 255.0))
    out = work.to(frames.dtype)
    return out.permute(0, 2, 3, 1).contiguous() if channels_last else out.contiguous()


def face_paste_reference(
    frames: torch.Tensor,
    faces: torch.Tensor,
    rois: torch.Tensor,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    mask: str = "ellipse",
    feather: float = 0.1,
    channels_last: bool = True,
) -> torch.Tensor:
    """Reference ``face_paste``; differentiable (plain autograd) for floating frames and faces."""
    nchw = _nchw(frames, channels_last)
    _check_index(rois, nchw.shape[0])
    acc = _acc_dtype(frames)
    scale = 255.0 if frames.dtype == torch.uint8 else 1.0
    work = nchw.to(acc).clone()
    m = torch.tensor(list(mean), dtype=acc).view(3, 1, 1)
    s = torch.tensor(list(std), dtype=acc).view(3, 1, 1)
    faces = faces.to(acc)
    for k in range(rois.shape[0]):
        box = _box(rois[k])
        if box is None:
            continue
        face = faces[k]

        def value(rows, cols, face=face, box=box):
            return (_bilinear_value(face, box, rows, cols) * s + m) * scale

        _blend_box(work, box, value, mask, feather)
    return _finish(work, frames, channels_last)


# ----------------------------------------------------------------------------------------------
# face_modify
# ----------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _i64(x: int) -> int:
    x &= _MASK64
    return x - (1 << 64) if x >= (1 << 63) else x


_GOLDEN = _i64(0x9E3779B97F4A7C15)
_MIX1 = _i64(0xBF58476D1CE4E5B9)
_MIX2 = _i64(0x94D049BB133111EB)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 holding uint64 bits."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


# Irwin-Hall of four 16-bit uniforms: mean 2 * 65535, sd sqrt(4 * (65536**2 - 1) / 12).
NOISE_SUM_MEAN = 131070
NOISE_INV_SD = 1.0 / math.sqrt(4.0 * (65536.0**2 - 1.0) / 12.0)


def noise_normal_reference(
    seed: int, frame: torch.Tensor, row: torch.Tensor, col: torch.Tensor, channel: torch.Tensor
) -> torch.Tensor:
    """Approximately standard-normal noise keyed by (seed, frame, row, col, channel), float64.

    ``h = splitmix64(splitmix64(splitmix64(seed ^ (golden * (frame + 1))) ^ (row << 32 | col)) + channel)``;
    the sample is the sum of the four 16-bit words of ``h`` minus its mean, as an integer, times
    ``NOISE_INV_SD`` (the kernels convert it to the accumulation dtype the same way).
    Returns the integer sum minus its mean (int64); multiply by ``NOISE_INV_SD`` to get z.
    """
    seed_t = torch.tensor(_i64(int(seed)), dtype=torch.int64)
    h = _splitmix64(seed_t ^ ((frame.long() + 1) * _GOLDEN))
    h = _splitmix64(h ^ ((row.long() << 32) | col.long()))
    h = _splitmix64(h + channel.long())
    s = (h & 0xFFFF) + (_shr(h, 16) & 0xFFFF) + (_shr(h, 32) & 0xFFFF) + _shr(h, 48)
    return s - NOISE_SUM_MEAN


def blur_grid_size(strength: float) -> int:
    """Side of the working grid the blur runs on: ``clamp(ceil(3 / strength), 4, 128)`` cells."""
    return int(min(max(math.ceil(3.0 / strength), BLUR_GRID_MIN), BLUR_GRID_MAX))


def gaussian_taps(sigma: float) -> torch.Tensor:
    """Normalised float64 Gaussian taps of radius ``ceil(3 sigma)`` (at least 1)."""
    radius = max(int(math.ceil(3.0 * sigma)), 1)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _blur_grid(grid: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable blur of ``[3, G, G]`` with replicate border: rows first, then columns."""
    radius = (taps.numel() - 1) // 2
    g = grid.shape[-1]
    idx = (torch.arange(g)[:, None] + torch.arange(-radius, radius + 1)[None, :]).clamp(0, g - 1)
    t = taps.to(grid.dtype)
    tmp = (grid[:, idx, :] * t[None, None, :, None]).sum(2)  # along rows (height)
    return (tmp[:, :, idx] * t[None, None, None, :]).sum(3)  # along columns


def face_modify_reference(
    frames: torch.Tensor,
    rois: torch.Tensor,
    method: str = "pixelate",
    strength: float = 8.0,
    mask: str = "ellipse",
    feather: float = 0.05,
    seed: int = 0,
    channels_last: bool = True,
) -> torch.Tensor:
    """Reference ``face_modify``. Each box's content is computed from the *input* frames and the
    boxes are then blended in order (a later box over an earlier one)."""
    nchw = _nchw(frames, channels_last)
    _check_index(rois, nchw.shape[0])
    acc = _acc_dtype(frames)
    unit = 1.0 if frames.dtype == torch.uint8 else 1.0 / 255.0  # strength is in 0-255 units
    src = nchw.to(acc)
    work = src.clone()
    height, width = nchw.shape[-2:]
    for k in range(rois.shape[0]):
        box = _box(rois[k])
        if box is None:
            continue
        n, x1, y1, x2, y2 = box
        if method == "solid":
            grey = torch.tensor(strength * unit, dtype=acc)

            def value(rows, cols, grey=grey):
                return grey.expand(3, rows.numel(), cols.numel())

        elif method == "noise":
            sigma = torch.tensor(strength * unit, dtype=acc)

            def value(rows, cols, n=n, sigma=sigma):
                ch = torch.arange(3)[:, None, None]
                z = noise_normal_reference(seed, torch.tensor(n), rows[None, :, None], cols[None, None, :], ch)
                zf = z.to(acc) * torch.tensor(NOISE_INV_SD, dtype=acc)
                return src[n, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] + zf * sigma

        elif method == "pixelate":
            cells = int(min(max(round(strength), 1), PIXELATE_MAX_CELLS))

            def value(rows, cols, n=n, box=box, cells=cells):
                _, x1, y1, x2, y2 = box
                cy = ((rows.float() + 0.5 - _f32(y1)) * _f32(cells / (y2 - y1))).floor().long()
                cx = ((cols.float() + 0.5 - _f32(x1)) * _f32(cells / (x2 - x1))).floor().long()
                cy, cx = cy.clamp(0, cells - 1), cx.clamp(0, cells - 1)
                region = src[n, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].double()
                cell_id = (cy[:, None] * cells + cx[None, :]).reshape(-1)
                sums = torch.zeros(3, cells * cells, dtype=torch.float64)
                sums.index_add_(1, cell_id, region.reshape(3, -1))
                cnt = torch.zeros(cells * cells, dtype=torch.float64)
                cnt.index_add_(0, cell_id, torch.ones_like(cell_id, dtype=torch.float64))
                means = (sums / cnt.clamp(min=1)).to(acc)
                return means[:, cell_id].reshape(3, rows.numel(), cols.numel())

        elif method == "blur":
            g = blur_grid_size(strength)
            taps = gaussian_taps(strength * g)
            grid = _crop_raw(nchw, box, g, g, replicate=True).to(acc)
            blurred = _blur_grid(grid, taps)

            def value(rows, cols, box=box, blurred=blurred):
                return _bilinear_value(blurred, box, rows, cols)

        else:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        _blend_box(work, box, value, mask, feather)
    return _finish(work, frames, channels_last)
