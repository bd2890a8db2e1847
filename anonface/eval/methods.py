"""The anonymization methods the evaluation compares, and how each is applied through the project's API.

Every method/strength pair is one row of the results. Hand-crafted methods go through the fused
``anonface.ops.face_modify`` (crop + modify + paste in one pass); ``learned`` crops with
``anonface.ops.face_crop``, runs the trained anonymizer M (``anonface.models.anonymizer.load_pretrained``)
and pastes with ``anonface.ops.face_paste``. All of them blend through the same feathered ellipse
inscribed in the (enlarged) face box.

Strength conventions are those of ``face_modify``: ``blur`` is the Gaussian sigma as a fraction of the
box size, ``pixelate`` the number of cells across the box, ``noise`` the sigma of the additive noise in
0-255 grey levels, ``solid`` the grey level of the fill (no strength: 0, black).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "MethodSpec",
    "MethodUnavailable",
    "METHOD_NAMES",
    "DEFAULT_STRENGTHS",
    "parse_methods",
    "default_methods",
    "make_anonymizer",
    "AnonymizeFn",
]

METHOD_NAMES = ("none", "blur", "pixelate", "solid", "noise", "learned")

# blur 0.016 and 0.03 are about what cv2.GaussianBlur with k=15 and k=31 (sigma 2.6 and 5 px) does to
# an LFW face box of ~165 px, the settings whose re-identification DESIGN.md reports.
DEFAULT_STRENGTHS: dict[str, tuple[float | None, ...]] = {
    "none": (None,),
    "blur": (0.016, 0.03, 0.06, 0.1),
    "pixelate": (8.0, 16.0, 24.0, 32.0),
    "solid": (None,),
    "noise": (25.0, 50.0, 100.0),
    "learned": (None,),
}

AnonymizeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(frames, rois) -> frames``: ``frames`` uint8 ``[B, H, W, 3]`` RGB, ``rois`` float ``[K, 5]`` =
``(frame_index, x1, y1, x2, y2)``; returns new frames of the same shape and dtype."""


class MethodUnavailable(RuntimeError):
    """A method cannot run here (its op is not built, its checkpoint is missing); the row says why."""


@dataclass(frozen=True)
class MethodSpec:
    """One row: a method and its strength (None for methods without one); ``checkpoint`` for ``learned``."""

    method: str
    strength: float | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise ValueError(f"method must be one of {', '.join(METHOD_NAMES)}, got {self.method!r}")

    @property
    def label(self) -> str:
        if self.strength is None:
            return self.method
        s = self.strength
        return f"{self.method} {int(s)}" if float(s).is_integer() and self.method == "pixelate" else f"{self.method} {s:g}"


def default_methods() -> list[MethodSpec]:
    """Every method at its default strengths."""
    return [MethodSpec(m, s) for m in METHOD_NAMES for s in DEFAULT_STRENGTHS[m]]


def parse_methods(items: Sequence[str]) -> list[MethodSpec]:
    """Parse ``--methods`` items: ``name`` (default strengths), ``name=s1,s2`` (given strengths) or
    ``learned=PATH`` (a checkpoint). Comma-separated names in one item are allowed: ``none,solid``.

    Raises:
        ValueError: an unknown method or a strength that is not a number.
    """
    out: list[MethodSpec] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            name, _, rest = item.partition("=")
            name = name.strip()
            if name not in METHOD_NAMES:
                raise ValueError(f"--methods: unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}")
            if name == "learned":
                out.append(MethodSpec("learned", None, rest.strip() or None))
                continue
            if name in ("none",):
                raise ValueError(f"--methods: {name} takes no strength, got {item!r}")
            for tok in rest.split(","):
                try:
                    out.append(MethodSpec(name, float(tok)))
                except ValueError:
                    raise ValueError(f"--methods: strength of {name} must be a number, got {tok!r}") from None
        else:
            for name in item.split(","):
                name = name.strip()
                if name not in METHOD_NAMES:
                    raise ValueError(
                        f"--methods: unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}"
                    )
                out.extend(MethodSpec(name, s) for s in DEFAULT_STRENGTHS[name])
    seen: set[MethodSpec] = set()
    unique = []
    for m in out:
        if m not in seen:
            seen.add(m)
            unique.append(m)
    return unique


def _ops():
    try:
        from anonface import ops
    except ImportError as e:  # pragma: no cover - the package itself is broken
        raise MethodUnavailable(f"anonface.ops cannot be imported: {e}") from e
    return ops


def make_anonymizer(spec: MethodSpec, *, feather: float = 0.05, seed: int = 0,
                    device: str | torch.device = "cpu") -> AnonymizeFn:
    """A function that applies ``spec`` to frames given the face rois (see :data:`AnonymizeFn`).

    ``feather`` (the soft edge of the ellipse, as a fraction of the box) is the pipeline's default, the
    same for every method, so that rows differ only in what fills the face.

    Raises:
        MethodUnavailable: the op or the checkpoint the method needs is not available.
    """
    dev = torch.device(device)
    if spec.method == "none":
        return lambda frames, rois: frames.clone()

    ops = _ops()
    extra = {"feather": float(feather)}

    if spec.method == "learned":
        for name in ("face_crop", "face_paste"):
            if not hasattr(ops, name):
                raise MethodUnavailable(f"anonface.ops.{name} is not available in this build")
        try:
            from anonface.models.anonymizer import load_pretrained
        except ImportError as e:
            raise MethodUnavailable(f"the learned anonymizer is not part of this build ({e})") from e
        try:
            model = load_pretrained(spec.checkpoint, map_location=dev) if spec.checkpoint else load_pretrained(
                map_location=dev)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            raise MethodUnavailable(f"no usable learned anonymizer checkpoint: {e}") from e
        size = int(getattr(model, "crop_size", 128))

        def learned(frames: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
            if rois.shape[0] == 0:
                return frames.clone()
            with torch.no_grad():
                crops = ops.face_crop(frames, rois, size, mean=0.5, std=0.5)
                faces = model(crops.to(dev)).float().clamp(-1.0, 1.0).to(crops.device)
                return ops.face_paste(frames, faces, rois, mean=0.5, std=0.5, mask="ellipse", **extra)

        return learned

    if not hasattr(ops, "face_modify"):
        raise MethodUnavailable("anonface.ops.face_modify is not available in this build")
    # solid without a strength is a black mask; the others always carry one (see DEFAULT_STRENGTHS)
    strength = 0.0 if spec.strength is None else float(spec.strength)

    def modify(frames: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if rois.shape[0] == 0:
            return frames.clone()
        with torch.no_grad():
            return ops.face_modify(frames, rois, spec.method, strength, mask="ellipse", seed=seed, **extra)

    return modify
