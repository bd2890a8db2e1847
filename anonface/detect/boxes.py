"""User-supplied face boxes as a detector backend."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from anonface.detect.base import FrameBatch, empty_dets

__all__ = ["BoxesDetector", "as_dets"]


def as_dets(boxes: object, name: str = "boxes") -> np.ndarray:
    """Validate one frame's boxes: ``[K, 4]`` (score 1 is added) or ``[K, 5]`` -> float32 ``[K, 5]``."""
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return empty_dets()
    if arr.ndim == 1 and arr.shape[0] in (4, 5):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise ValueError(
            f"{name} must be [K, 4] (x1, y1, x2, y2) or [K, 5] (x1, y1, x2, y2, score), "
            f"got shape {tuple(arr.shape)}"
        )
    if not np.all(np.isfinite(arr[:, :4])):
        raise ValueError(f"{name} must be finite, got {arr[:, :4]}")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((len(arr), 1), np.float32)], axis=1)
    return np.ascontiguousarray(arr)


class BoxesDetector:
    """Returns boxes the caller already has instead of running a network.

    Args:
        boxes: either one ``[K, 4|5]`` array used for every frame, a sequence with one array per
            frame (indexed by the frame's position in the stream), a mapping
            ``frame_index -> array`` (frames not in it have no faces), or a callable
            ``frame_index -> array``.

    Boxes are pixel-corner ``(x1, y1, x2, y2[, score])`` in the frame's coordinates.
    """

    def __init__(
        self,
        boxes: np.ndarray
        | Sequence[object]
        | Mapping[int, object]
        | Callable[[int], object],
    ) -> None:
        self._boxes = boxes
        self._static: np.ndarray | None = None
        if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
            self._static = as_dets(boxes)

    def _for(self, index: int) -> np.ndarray:
        b = self._boxes
        if self._static is not None:
            return self._static
        if callable(b):
            return as_dets(b(index), f"boxes({index})")
        if isinstance(b, Mapping):
            return as_dets(b[index], f"boxes[{index}]") if index in b else empty_dets()
        if index >= len(b):  # type: ignore[arg-type]
            raise ValueError(
                f"boxes has entries for {len(b)} frames but frame {index} was requested"  # type: ignore[arg-type]
            )
        return as_dets(b[index], f"boxes[{index}]")  # type: ignore[index]

    def detect(
        self, frames: FrameBatch, frame_indices: Sequence[int] | None = None
    ) -> list[np.ndarray]:
        n = int(frames.shape[0])
        idx = list(frame_indices) if frame_indices is not None else list(range(n))
        if len(idx) != n:
            raise ValueError(f"frame_indices has {len(idx)} entries for {n} frames")
        return [self._for(int(i)) for i in idx]
