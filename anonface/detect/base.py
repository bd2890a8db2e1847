"""The face detector protocol.

A detector takes a batch of RGB frames and returns, for each frame, the faces it found as an
array ``[K, 5]`` float32 ``(x1, y1, x2, y2, score)`` in the frame's pixel-corner coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["FaceDetector", "FrameBatch", "empty_dets", "as_numpy_frames"]

FrameBatch = np.ndarray | torch.Tensor


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(frames, frame_indices) -> list of [K, 5] arrays`` is a detector.

    ``frames`` is ``[N, H, W, 3]`` RGB uint8 (numpy, or a torch tensor on any device);
    ``frame_indices`` are the frames' positions in the stream (detectors that hold per-frame
    boxes, like :class:`anonface.detect.BoxesDetector`, use them; others ignore them).
    """

    def detect(
        self, frames: FrameBatch, frame_indices: Sequence[int] | None = None
    ) -> list[np.ndarray]: ...


def empty_dets() -> np.ndarray:
    """A ``[0, 5]`` float32 array: no faces."""
    return np.zeros((0, 5), dtype=np.float32)


def as_numpy_frames(frames: FrameBatch) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 numpy view/copy of a frame batch (tensors are moved to the CPU)."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3], got shape {tuple(frames.shape)}")
    return frames
