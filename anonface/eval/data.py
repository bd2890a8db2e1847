"""Evaluation data: LFW-layout pair folders and video clips.

LFW layout: ``root/<Name>/<Name>_NNNN.jpg`` (NNNN = the 1-based LFW image number, 4 digits) and a
``pairs.txt`` whose header is ``<folds>\\t<n>``, followed, fold by fold, by ``n`` same-person lines
``name i j`` and ``n`` different-person lines ``name1 i name2 j``.

Images are returned as ``numpy`` ``uint8`` RGB arrays ``[H, W, 3]``; grayscale files get three equal
channels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anonface.data.lfw import data_root
from anonface.data.lfw import read_image as read_rgb  # the one dataset image reader
from anonface.data.lfw import read_pairs as _read_lfw_pairs

logger = logging.getLogger(__name__)

__all__ = [
    "ImageRef",
    "Pair",
    "data_root",
    "read_pairs",
    "select_pairs",
    "find_lfw_images",
    "read_rgb",
    "read_clip_frames",
]


@dataclass(frozen=True, order=True)
class ImageRef:
    """One LFW image: a person's name and the 1-based LFW image number."""

    name: str
    index: int

    def path(self, root: Path) -> Path:
        return Path(root) / self.name / f"{self.name}_{self.index:04d}.jpg"

    def __str__(self) -> str:
        return f"{self.name}_{self.index:04d}"


@dataclass(frozen=True)
class Pair:
    """One line of ``pairs.txt``. In the privacy protocol ``first`` is the image that gets anonymized."""

    first: ImageRef
    second: ImageRef
    fold: int

    @property
    def same(self) -> bool:
        return self.first.name == self.second.name


def read_pairs(path: str | Path) -> list[Pair]:
    """Parse an LFW ``pairs.txt`` (folds numbered from 1) into the protocol's pairs.

    The parsing is :func:`anonface.data.lfw.read_pairs`'s.

    Raises:
        ValueError: the header or a line does not have the LFW form.
    """
    return [Pair(ImageRef(p.name1, p.index1), ImageRef(p.name2, p.index2), p.fold) for p in _read_lfw_pairs(path)]


def select_pairs(pairs: Sequence[Pair], *, folds: Iterable[int] | None = None,
                 limit: int | None = None) -> list[Pair]:
    """Pairs of the given folds; with ``limit``, the first ``limit`` same-person and the first
    ``limit`` different-person pairs of them (kept in file order)."""
    fold_set = None if folds is None else set(folds)
    chosen = [p for p in pairs if fold_set is None or p.fold in fold_set]
    if limit is None:
        return chosen
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    same = [p for p in chosen if p.same][:limit]
    diff = [p for p in chosen if not p.same][:limit]
    keep = set(map(id, same + diff))
    return [p for p in chosen if id(p) in keep]


def find_lfw_images(lfw_dir: str | Path) -> Path:
    """The image folder of an LFW-layout directory.

    ``lfw_dir`` may itself hold ``<Name>/`` folders, or hold ``images_250_gray/`` (the shared layout),
    ``lfw/`` or ``images/``.
    """
    lfw_dir = Path(lfw_dir)
    for sub in ("images_250_gray", "lfw", "images", "lfw_funneled", "lfw-deepfunneled"):
        if (lfw_dir / sub).is_dir():
            return lfw_dir / sub
    return lfw_dir


def read_clip_frames(path: str | Path, max_frames: int) -> np.ndarray:
    """The first ``max_frames`` frames of a video as ``uint8`` RGB ``[N, H, W, 3]``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    frames = []
    try:
        while len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame[:, :, ::-1])
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"video {path} gave no frames")
    return np.ascontiguousarray(np.stack(frames))
