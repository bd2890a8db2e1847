"""The anonymization methods the evaluation compares, and how each is applied through the project's API.

Every method/strength pair is one row of the results. Hand-crafted methods go through the fused
``anonface.ops.face_modify`` (crop + modify + paste in one pass); ``learned`` crops with
``anonface.ops.face_crop``, runs the trained anonymizer M (``anonface.models.anonymizer.load_pretrained``)
and pastes with ``anonface.ops.face_paste``. All of them blend through the same feathered ellipse
inscribed in the (enlarged) face box.

Strength conventions are those of ``face_modify``: ``blur`` is the Gaussian sigma as a fraction of the
box size, ``pixelate`` the number of cells across the box, ``noise`` the sigma of the additive noise in
0-255 grey levels, ``solid`` the grey level of the fill (no strength: 0, black).

``smooth-mosaic`` is an evaluation-only baseline, not a tool method: exactly the input the learned
anonymizer M reads through its pixelation bottleneck (the face crop averaged to ``degrade_cells x
degrade_cells`` cells, 12 for the shipped model), up-sampled bilinearly to the crop and pasted, with no
network: M's own code (``FaceAnonymizer.degrade``, the smooth base its residual output corrects) on M's
crop, through the same ``face_crop`` -> model -> ``face_paste`` rendering as ``learned``. Its row shows
what the learning adds to the information M is allowed to see. ``smooth-mosaic=PATH`` takes the
bottleneck of another checkpoint.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from anonface.models.anonymizer import SmoothMosaic
from anonface.render import METHODS

logger = logging.getLogger(__name__)

#: Methods only the evaluation has (baselines, not choices of ``anonface run``).
EVAL_ONLY_METHODS = ("smooth-mosaic",)

#: The methods in report order: the untouched reference first.
METHOD_NAMES = ("none", *(m for m in METHODS if m != "none"), *EVAL_ONLY_METHODS)

#: Methods whose ``=`` value is a checkpoint path, not strengths.
CHECKPOINT_METHODS = ("learned", "composite", "smooth-mosaic")

__all__ = [
    "MethodSpec",
    "MethodUnavailable",
    "METHOD_NAMES",
    "EVAL_ONLY_METHODS",
    "DEFAULT_STRENGTHS",
    "SmoothMosaic",
    "build_pipeline",
    "parse_methods",
    "default_methods",
    "make_anonymizer",
    "AnonymizeFn",
]


# blur 0.016 and 0.03 are about what cv2.GaussianBlur with k=15 and k=31 (sigma 2.6 and 5 px) does to
# an LFW face box of ~165 px: the weak blurs people use, measured to show what they leak.
DEFAULT_STRENGTHS: dict[str, tuple[float | None, ...]] = {
    "none": (None,),
    "blur": (0.016, 0.03, 0.06, 0.1),
    "pixelate": (8.0, 16.0, 24.0, 32.0),
    "solid": (None,),
    "noise": (25.0, 50.0, 100.0),
    "learned": (None,),
    "composite": (None,),
    "smooth-mosaic": (None,),
}

AnonymizeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(frames, rois) -> frames``: ``frames`` uint8 ``[B, H, W, 3]`` RGB, ``rois`` float ``[K, 15]`` =
``(frame_index, x1, y1, x2, y2)``, the face boxes as found (the function enlarges them by its
``mask_scale``), then the face's five landmarks ``(x, y)`` (NaN when unknown; the model methods draw
their face onto them); returns new frames of the same shape and dtype."""


class MethodUnavailable(RuntimeError):
    """A method cannot run here (its op is not built, its checkpoint is missing); the row says why."""


@dataclass(frozen=True)
class MethodSpec:
    """One row: a method and its strength (None for methods without one); ``checkpoint`` for ``learned``
    and ``smooth-mosaic`` (None: the shipped model)."""

    method: str
    strength: float | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise ValueError(f"method must be one of {', '.join(METHOD_NAMES)}, got {self.method!r}")

    @property
    def label(self) -> str:
        """The row's name in reports, unique per spec: ``learned=PATH`` for a checkpoint given (the
        shipped model's row is plain ``learned``), so an experiment's row never lands on, or merges
        into, another model's (``--update``, utility results keyed by label)."""
        if self.checkpoint is not None:
            return f"{self.method}={self.checkpoint}"
        if self.strength is None:
            return self.method
        s = self.strength
        return f"{self.method} {int(s)}" if float(s).is_integer() and self.method == "pixelate" else f"{self.method} {s:g}"


def default_methods() -> list[MethodSpec]:
    """Every method at its default strengths."""
    return [MethodSpec(m, s) for m in METHOD_NAMES for s in DEFAULT_STRENGTHS[m]]


def parse_methods(items: Sequence[str]) -> list[MethodSpec]:
    """Parse ``--methods`` items: ``name`` (default strengths), ``name=s1,s2`` (given strengths) or
    ``learned=PATH`` / ``smooth-mosaic=PATH`` (a checkpoint). Comma-separated names in one item are allowed: ``none,solid``.

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
            if name in CHECKPOINT_METHODS:
                out.append(MethodSpec(name, None, rest.strip() or None))
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


def _load_model(spec: MethodSpec, device: str | torch.device) -> torch.nn.Module | None:
    """The module ``anonymize_faces`` runs for ``spec`` (None for the kernel methods)."""
    if spec.method not in CHECKPOINT_METHODS:
        return None
    try:
        from anonface.models.anonymizer import load_pretrained
        from anonface.models.composite import checkpoint_for

        model = load_pretrained(checkpoint_for(spec.method, spec.checkpoint), map_location=torch.device(device))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise MethodUnavailable(f"no usable learned anonymizer checkpoint: {e}") from e
    if spec.method == "smooth-mosaic":
        try:
            return SmoothMosaic(model).eval()
        except ValueError as e:
            raise MethodUnavailable(str(e)) from e
    return model


def _render_method(spec: MethodSpec) -> str:
    """The ``anonymize_faces`` method a row renders with (the smooth mosaic is a model like M)."""
    return "learned" if spec.method == "smooth-mosaic" else spec.method


def make_anonymizer(spec: MethodSpec, *, feather: float = 0.05, seed: int = 0, mask_scale: float = 1.3,
                    device: str | torch.device = "cpu") -> AnonymizeFn:
    """A function that applies ``spec`` to frames given the face boxes (see :data:`AnonymizeFn`), through
    :func:`anonface.render.anonymize_faces`, the function the pipeline renders with: the boxes are
    enlarged by ``mask_scale`` and each box gets the method's settings exactly as in ``anonface run``.

    ``feather`` (the soft edge of the ellipse, as a fraction of the box) is the pipeline's default, the
    same for every method, so that rows differ only in what fills the face. Strengths weaker than the
    tool accepts (e.g. pixelate 24/32) are measured as asked: the evaluation is what sets those limits.
    ``smooth-mosaic`` renders as ``learned`` does, with :class:`SmoothMosaic` in place of M.

    Raises:
        MethodUnavailable: the checkpoint the method needs is not available (or, for
            ``smooth-mosaic``, has no pixelation bottleneck).
    """
    from anonface.render import anonymize_faces, code_dim

    model = _load_model(spec, device)
    method = _render_method(spec)
    calls = itertools.count()

    def anonymize(frames: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        # an anonymizer with a code draws each face as its own track: a new code per face, never one
        # repeated across calls (the same code on both photos of a pair would look like re-identification)
        call_seed = seed * 1_000_003 + next(calls) if code_dim(model) > 0 else seed
        with torch.no_grad():
            return anonymize_faces(frames, rois, method=method, strength=spec.strength,
                                   mask_scale=mask_scale, feather=feather, seed=call_seed, model=model,
                                   max_cells=float("inf"))

    return anonymize


def build_pipeline(spec: MethodSpec, **kwargs: Any) -> Any:
    """``anonface.Anonymizer`` for ``spec`` (keyword arguments are the Anonymizer's).

    ``smooth-mosaic`` is not a pipeline method: it runs as ``Anonymizer("learned")`` given
    :class:`SmoothMosaic` around the loaded M as its model, so detection, tracking and rendering are the
    pipeline's own.

    Raises:
        ValueError: the Anonymizer refuses the settings (e.g. a strength the tool does not allow), or
            the ``smooth-mosaic`` checkpoint has no pixelation bottleneck.
        RuntimeError: the checkpoint is missing.
    """
    from anonface import Anonymizer

    if spec.method in CHECKPOINT_METHODS and spec.checkpoint:
        kwargs.setdefault("checkpoint", spec.checkpoint)
    if spec.method == "smooth-mosaic":
        from anonface.models.anonymizer import load_pretrained

        try:
            kwargs["checkpoint"] = SmoothMosaic(load_pretrained(kwargs.get("checkpoint"))).eval()
        except FileNotFoundError as exc:
            raise RuntimeError(f"smooth-mosaic needs the anonymizer checkpoint: {exc}") from exc
    return Anonymizer(_render_method(spec), strength=spec.strength, **kwargs)
