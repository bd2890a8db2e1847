"""Build a face detector from its name and settings (as detectron2's ``build_*`` functions do).

:class:`anonface.Anonymizer` calls :func:`build_detector` for ``detector="centerface"``; callers
that want to share, configure or replace a detector build it here (or write their own class with
``detect(frames, frame_indices)``, see :class:`anonface.detect.FaceDetector`) and pass the object.
"""

from __future__ import annotations

from typing import Any

import torch

from anonface.detect.base import FaceDetector

__all__ = ["DETECTORS", "build_detector"]

#: The detectors :func:`build_detector` knows by name.
DETECTORS = ("centerface",)


def build_detector(name: str = "centerface", *, device: str | torch.device = "cpu", **settings: Any) -> FaceDetector:
    """A face detector by name.

    Args:
        name: one of :data:`DETECTORS`.
        device: where it runs (the CenterFace backend follows it: onnxruntime on the CPU, the
            PyTorch port on a GPU).
        **settings: the detector's own options, e.g. for ``"centerface"``: ``threshold``,
            ``scale``, ``max_side``, ``upscale``, ``backend``, ``precision``, ``threads``,
            ``batch_size`` (see :class:`anonface.detect.CenterFace`).

    Raises:
        ValueError: an unknown name or an invalid setting.
    """
    if name == "centerface":
        from anonface.detect.centerface import CenterFace

        return CenterFace(device=device, **settings)
    raise ValueError(f"detector must be one of {DETECTORS} or a detector object, got {name!r}")
