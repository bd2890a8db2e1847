"""RoI pooling for the action detector: ``roi_align`` and ``roi_pool`` (CPU and CUDA kernels).

Semantics are those of ``torchvision.ops.roi_align`` / ``roi_pool``.

Convention:
    boxes are pixel-corner coordinates ``(x1, y1, x2, y2)`` in the *image* frame; ``spatial_scale``
    maps them onto the feature map (e.g. 1/16 for a stride-16 feature). Pixel ``(i, j)`` of a map
    has its centre at ``(j + 0.5, i + 0.5)`` when ``aligned=True`` (recommended); ``aligned=False``
    reproduces the legacy Detectron behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

import anonface._ext  # noqa: F401  (loads the kernels into torch.ops.anonface)

__all__ = ["roi_align", "roi_pool", "RoIAlign", "RoIPool", "convert_boxes_to_rois"]

BoxesLike = Tensor | Sequence[Tensor]


def convert_boxes_to_rois(boxes: BoxesLike, *, dtype: torch.dtype | None = None) -> Tensor:
    """Turn boxes into the ``Tensor[K, 5]`` rois format.

    Args:
        boxes: ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` (returned as is), or a list
            with one ``Tensor[L_i, 4]`` of ``(x1, y1, x2, y2)`` per image (image ``i`` gets index ``i``).
        dtype: dtype of the result (default: that of the boxes).
    """
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"boxes must be Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list of Tensor[L, 4], "
                f"got a tensor of shape {tuple(boxes.shape)}"
            )
        return boxes if dtype is None else boxes.to(dtype)
    boxes = list(boxes)
    for i, b in enumerate(boxes):
        if not isinstance(b, Tensor) or b.dim() != 2 or b.shape[1] != 4:
            shape = tuple(b.shape) if isinstance(b, Tensor) else type(b).__name__
            raise ValueError(f"boxes[{i}] must be Tensor[L, 4] of (x1, y1, x2, y2), got {shape}")
    if not boxes:
        return torch.zeros((0, 5), dtype=dtype or torch.float32)
    out_dtype = dtype or boxes[0].dtype
    rows = [
        torch.cat([torch.full((b.shape[0], 1), float(i), dtype=out_dtype, device=b.device), b.to(out_dtype)], 1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(rows, 0)


# The compiled ops check their arguments (csrc/roi_ops.cpp, shared by the CPU and CUDA kernels:
# ValueError naming the argument, IndexError for a batch index outside the input; output sides
# above 65536 and an explicit sampling_ratio above 64 are refused). The wrappers only turn Python
# values into the ints the op schemas take.
def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"output_size must be an int or (height, width) ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def _sampling_ratio(sampling_ratio: int) -> int:
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise ValueError(f"sampling_ratio must be an int (-1 or 0: adaptive), got {sampling_ratio!r}")
    return sampling_ratio


def roi_align(
    input: Tensor,
    boxes: BoxesLike,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Bilinear RoI pooling (RoIAlign, Mask R-CNN).

    Args:
        input (Tensor[N, C, H, W]): floating feature map (float16/bfloat16 on CUDA too).
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): ``(batch_index, x1, y1, x2, y2)`` rows, or
            per-image ``(x1, y1, x2, y2)`` boxes; image-frame pixel coordinates.
        output_size: ``(pooled_h, pooled_w)`` or one int.
        spatial_scale: factor from box coordinates to ``input`` coordinates.
        sampling_ratio: samples per bin along each axis; ``<= 0`` picks ``ceil(bin size)``.
        aligned: shift boxes by -0.5 pixel so samples align with pixel centres.

    Returns:
        Tensor[K, C, pooled_h, pooled_w]. Differentiable with respect to ``input``.
        Boxes with non-finite coordinates give zeros; a batch index outside ``[0, N)`` raises
        ``IndexError``.
    """
    ph, pw = _pair(output_size)
    rois = convert_boxes_to_rois(boxes)
    sr = _sampling_ratio(sampling_ratio)
    return torch.ops.anonface.roi_align(input, rois, float(spatial_scale), ph, pw, sr, bool(aligned))


def roi_pool(
    input: Tensor,
    boxes: BoxesLike,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Max RoI pooling (Fast R-CNN). Same arguments as :func:`roi_align`; returns ``[K, C, PH, PW]``.

    Box corners are rounded to the feature grid; an empty bin gives 0. Differentiable with respect
    to ``input`` (the gradient flows to the maximum of each bin).
    """
    ph, pw = _pair(output_size)
    rois = convert_boxes_to_rois(boxes)
    out, _ = torch.ops.anonface.roi_pool(input, rois, float(spatial_scale), ph, pw)
    return out


class RoIAlign(nn.Module):
    """Module twin of :func:`roi_align`."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = -1,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: Tensor, boxes: BoxesLike) -> Tensor:
        return roi_align(input, boxes, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


class RoIPool(nn.Module):
    """Module twin of :func:`roi_pool`."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, input: Tensor, boxes: BoxesLike) -> Tensor:
        return roi_pool(input, boxes, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


# ---- fake (meta) kernels and autograd -------------------------------------------------------


def _check_roi_args(op: str, input: Tensor, rois: Tensor, pooled_height: int, pooled_width: int) -> None:
    """The shape, dtype and device checks of the compiled ops (``check_roi_args``), for the fakes."""
    torch._check_value(
        input.dim() == 4, lambda: f"{op}: input must be a 4-D tensor [N, C, H, W], got shape {list(input.shape)}"
    )
    torch._check_value(input.is_floating_point(), lambda: f"{op}: input must be a floating tensor, got {input.dtype}")
    torch._check_value(
        rois.dim() == 2 and rois.shape[1] == 5,
        lambda: f"{op}: rois must be a 2-D tensor [K, 5] of (batch_index, x1, y1, x2, y2), got shape "
        f"{list(rois.shape)}",
    )
    torch._check_value(rois.is_floating_point(), lambda: f"{op}: rois must be a floating tensor, got {rois.dtype}")
    torch._check_value(
        input.device == rois.device, lambda: f"{op}: rois are on {rois.device} but input is on {input.device}"
    )
    torch._check_value(
        0 < pooled_height <= 1 << 16 and 0 < pooled_width <= 1 << 16,
        lambda: f"{op}: output_size (pooled_height, pooled_width) must be positive and at most {1 << 16} per "
        f"side, got ({pooled_height}, {pooled_width})",
    )


def _check_grad(op: str, grad: Tensor, rois: Tensor, channels: int, pooled_height: int, pooled_width: int) -> None:
    torch._check_value(
        grad.dim() == 4 and grad.shape[0] == rois.shape[0] and grad.shape[1] == channels
        and grad.shape[2] == pooled_height and grad.shape[3] == pooled_width,
        lambda: f"{op}: grad must be [{rois.shape[0]}, {channels}, {pooled_height}, {pooled_width}], "
        f"got {list(grad.shape)}",
    )


@torch.library.register_fake("anonface::roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    _check_roi_args("roi_align", input, rois, pooled_height, pooled_width)
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake("anonface::_roi_align_backward")
def _roi_align_backward_fake(
    grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio, aligned
):
    _check_grad("_roi_align_backward", grad, rois, channels, pooled_height, pooled_width)
    return grad.new_empty((batch_size, channels, height, width))


@torch.library.register_fake("anonface::roi_pool")
def _roi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width):
    _check_roi_args("roi_pool", input, rois, pooled_height, pooled_width)
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)


@torch.library.register_fake("anonface::_roi_pool_backward")
def _roi_pool_backward_fake(
    grad, rois, argmax, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width
):
    _check_grad("_roi_pool_backward", grad, rois, channels, pooled_height, pooled_width)
    torch._check_value(
        argmax.shape == grad.shape and argmax.dtype == torch.int32 and argmax.device == grad.device,
        lambda: f"_roi_pool_backward: argmax must be int32 of grad's shape and device, got {argmax.dtype} "
        f"{list(argmax.shape)} on {argmax.device}",
    )
    return grad.new_empty((batch_size, channels, height, width))


def _roi_align_setup(ctx, inputs, output):
    input, rois, spatial_scale, ph, pw, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = tuple(input.shape)
    ctx.args = (spatial_scale, ph, pw, sampling_ratio, aligned)


def _roi_align_backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    spatial_scale, ph, pw, sampling_ratio, aligned = ctx.args
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.anonface._roi_align_backward(
        grad.contiguous(), rois, spatial_scale, ph, pw, n, c, h, w, sampling_ratio, aligned
    )
    return grad_input, None, None, None, None, None, None


torch.library.register_autograd("anonface::roi_align", _roi_align_backward, setup_context=_roi_align_setup)


def _roi_pool_setup(ctx, inputs, output):
    input, rois, spatial_scale, ph, pw = inputs
    _, argmax = output
    ctx.save_for_backward(rois, argmax)
    ctx.input_shape = tuple(input.shape)
    ctx.args = (spatial_scale, ph, pw)


def _roi_pool_backward(ctx, grad, grad_argmax):
    rois, argmax = ctx.saved_tensors
    spatial_scale, ph, pw = ctx.args
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.anonface._roi_pool_backward(
        grad.contiguous(), rois, argmax, spatial_scale, ph, pw, n, c, h, w
    )
    return grad_input, None, None, None, None


torch.library.register_autograd("anonface::roi_pool", _roi_pool_backward, setup_context=_roi_pool_setup)
