"""User-supplied face boxes as a detector backend.

User boxes are facts about the frames: the pipeline asks for them on every frame, whatever the
detection interval, and refuses malformed ones (wrong shape, NaN or infinite coordinates, corners
given in the wrong order, as happens with ``(x, y, w, h)`` boxes taken for corners, boxes smaller
than a pixel or lying outside the frame) with a :class:`ValueError` instead of drawing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from anonface.detect.base import FrameBatch, empty_dets

__all__ = ["BoxesDetector", "DET_WIDTHS", "as_dets", "check_boxes_in_frame", "with_landmarks"]

_FORMAT = "boxes are pixel corners (x1, y1, x2, y2) with x2 > x1 and y2 > y1, not (x, y, w, h)"


#: The widths of a frame's detections: a box, a box and its score, and those with five landmarks.
DET_WIDTHS = (4, 5, 15)


def as_dets(boxes: object, name: str = "boxes", *, strict: bool = False) -> np.ndarray:
    """Validate one frame's boxes: ``[K, 4]`` (score 1 is added) or ``[K, 5]`` -> float32 ``[K, 5]``;
    ``[K, 15]`` (the score followed by five landmarks' ``(x, y)``, as ``CenterFace(landmarks=True)``
    gives them) is kept whole. Landmarks only place the face a model method draws, never what is
    covered: they may be NaN (unknown), which draws that face unaligned.

    Raises ValueError for a wrong shape, a non-finite coordinate or an inverted box (``x2 < x1``
    or ``y2 < y1``). ``strict`` (user boxes) also refuses empty boxes (``x2 == x1`` or
    ``y2 == y1``), which cover nothing; a detector may return those for faces clipped at the
    frame's edge.
    """
    try:
        arr = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array [K, 4] or [K, 5], got {type(boxes).__name__}: {exc}") from None
    if arr.size == 0:
        return empty_dets()
    if arr.ndim == 1 and arr.shape[0] in DET_WIDTHS:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in DET_WIDTHS:
        raise ValueError(
            f"{name} must be [K, 4] (x1, y1, x2, y2), [K, 5] (x1, y1, x2, y2, score) or [K, 15] (the score "
            f"followed by five landmarks' x, y), got shape {tuple(arr.shape)}"
        )
    if not np.all(np.isfinite(arr[:, :4])):
        raise ValueError(f"{name} must be finite, got {arr[:, :4].tolist()}")
    w, h = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
    bad = (w <= 0) | (h <= 0) if strict else (w < 0) | (h < 0)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{name}: box {i} {arr[i, :4].tolist()} is {'empty or ' if strict else ''}inverted: {_FORMAT}")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((len(arr), 1), np.float32)], axis=1)
    return np.ascontiguousarray(arr)


def with_landmarks(dets: np.ndarray) -> np.ndarray:
    """``[K, 15]`` detections: ``[K, 15]`` as they are, ``[K, 5]`` with unknown (NaN) landmarks."""
    arr = np.asarray(dets, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 15:
        return arr
    arr = arr.reshape(-1, 5)
    return np.concatenate([arr, np.full((len(arr), 10), np.nan, np.float32)], axis=1)


def check_boxes_in_frame(boxes: np.ndarray, width: int, height: int, name: str = "boxes") -> None:
    """Refuse user boxes that cannot cover a face in a ``width x height`` frame.

    A box narrower or lower than one pixel (e.g. coordinates normalised to [0, 1]) or lying
    wholly outside the frame (e.g. coordinates of another resolution) would change nothing.
    """
    if len(boxes) == 0:
        return
    b = boxes[:, :4]
    small = ((b[:, 2] - b[:, 0]) < 1) | ((b[:, 3] - b[:, 1]) < 1)
    outside = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= width) | (b[:, 1] >= height)
    for bad, why in ((small, "is smaller than one pixel (boxes are in pixels, not normalised to [0, 1])"),
                     (outside, f"lies outside the {width}x{height} frame (boxes are in the frame's pixels)")):
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise ValueError(f"{name}: box {i} {b[i].tolist()} {why}")


class BoxesDetector:
    """Returns boxes the caller already has instead of running a network.

    Args:
        boxes: either one ``[K, 4|5]`` array used for every frame, a sequence with one array per
            frame (indexed by the frame's position in the stream; e.g. a list, or an ``[N, K, 4|5]``
            array), a mapping ``frame_index -> array`` (frames not in it have no faces), or a
            callable ``frame_index -> array``.

    Boxes are pixel-corner ``(x1, y1, x2, y2[, score])`` in the frame's coordinates. Arrays, sequences
    and mappings are validated here (:func:`as_dets` with ``strict=True``: a ValueError for a wrong
    shape, NaN/inf, or a box with ``x2 <= x1`` or ``y2 <= y1``); a callable's boxes when they are
    asked for. :meth:`check_frame` checks the boxes against the frame size.
    """

    def __init__(
        self,
        boxes: np.ndarray
        | Sequence[object]
        | Mapping[int, object]
        | Callable[[int], object],
    ) -> None:
        self._static: np.ndarray | None = None
        self._per_frame: list[np.ndarray] | None = None
        self._mapping: dict[int, np.ndarray] | None = None
        self._callable: Callable[[int], object] | None = None
        if isinstance(boxes, np.ndarray) and boxes.ndim <= 2:
            self._static = as_dets(boxes, strict=True)
        elif isinstance(boxes, Mapping):
            self._mapping = {}
            for k, v in boxes.items():
                if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
                    raise ValueError(f"boxes keys must be frame indices (integers >= 0), got {k!r}")
                self._mapping[int(k)] = as_dets(v, f"boxes[{k}]", strict=True)
        elif callable(boxes):
            self._callable = boxes
        elif isinstance(boxes, (Sequence, np.ndarray)) and not isinstance(boxes, (str, bytes)):
            self._per_frame = [as_dets(b, f"boxes[{i}]", strict=True) for i, b in enumerate(boxes)]
        else:
            raise ValueError(
                "boxes must be an array [K, 4|5] (every frame), a sequence with one array per frame, "
                f"a mapping frame_index -> array, or a callable frame_index -> array; got {type(boxes).__name__}"
            )

    @property
    def frames(self) -> int | None:
        """How many frames a per-frame sequence has boxes for (None for the other forms)."""
        return None if self._per_frame is None else len(self._per_frame)

    def _known(self) -> list[tuple[str, np.ndarray]]:
        if self._static is not None:
            return [("boxes", self._static)]
        if self._per_frame is not None:
            return [(f"boxes[{i}]", b) for i, b in enumerate(self._per_frame)]
        if self._mapping is not None:
            return [(f"boxes[{k}]", b) for k, b in self._mapping.items()]
        return []

    def check_frame(self, width: int, height: int) -> None:
        """Refuse (ValueError) any known box that cannot cover a face in a ``width x height`` frame."""
        for name, b in self._known():
            check_boxes_in_frame(b, width, height, name)

    def _for(self, index: int) -> np.ndarray:
        if self._static is not None:
            return self._static
        if self._callable is not None:
            return as_dets(self._callable(index), f"boxes({index})", strict=True)
        if self._mapping is not None:
            return self._mapping.get(index, empty_dets())
        assert self._per_frame is not None
        if index >= len(self._per_frame):
            raise ValueError(f"boxes has entries for {len(self._per_frame)} frames but frame {index} was requested")
        return self._per_frame[index]

    def detect(
        self, frames: FrameBatch, frame_indices: Sequence[int] | None = None
    ) -> list[np.ndarray]:
        n = int(frames.shape[0])
        idx = list(frame_indices) if frame_indices is not None else list(range(n))
        if len(idx) != n:
            raise ValueError(f"frame_indices has {len(idx)} entries for {n} frames")
        h, w = int(frames.shape[1]), int(frames.shape[2])
        out = []
        for i in idx:
            b = self._for(int(i))
            check_boxes_in_frame(b, w, h, f"boxes for frame {int(i)}")
            out.append(b.copy())
        return out
