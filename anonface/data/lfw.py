"""Face identity folders in the LFW layout and LFW ``pairs.txt``.

Layout: ``root/<Name>/<Name>_NNNN.jpg`` (NNNN = the LFW image number, 1-based, 4 digits).
``pairs.txt``: a header ``<folds>\t<n>``, then per fold ``n`` same-person lines ``name i j`` and
``n`` different-person lines ``name1 i name2 j``.

Images are returned as ``uint8`` RGB ``numpy`` arrays ``[H, W, 3]``; grayscale files are replicated to
three channels. Face crops for training M are taken with :func:`face_box_250` (a fixed box that covers
the face of a 250x250 LFW deep-funneled image as a face detector's box enlarged by ~1.3 would) or given
whole for pre-aligned crops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Pair",
    "read_pairs",
    "pair_fold",
    "image_path",
    "list_identities",
    "read_image",
    "IdentityFolder",
    "face_box_250",
    "data_root",
]


def data_root() -> Path | None:
    """The shared data folder: ``$ANONFACE_DATA`` or ``<repo>/../shared/data``; None when absent."""
    import os

    env = os.environ.get("ANONFACE_DATA")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").is_file() and cand.is_dir():
            return cand
    return None


@dataclass(frozen=True)
class Pair:
    """One line of ``pairs.txt``; ``same`` when both images show one person."""

    name1: str
    index1: int
    name2: str
    index2: int
    fold: int

    @property
    def same(self) -> bool:
        return self.name1 == self.name2


def read_pairs(path: str | Path) -> list[Pair]:
    """Parse an LFW ``pairs.txt`` (folds numbered from 1)."""
    lines = Path(path).read_text().strip().splitlines()
    head = lines[0].split()
    if len(head) != 2:
        raise ValueError(f"{path}: expected a header '<folds> <n>', got {lines[0]!r}")
    folds, n = int(head[0]), int(head[1])
    body = lines[1:]
    if len(body) != folds * 2 * n:
        raise ValueError(f"{path}: header says {folds} folds x {2 * n} lines, file has {len(body)} lines")
    out: list[Pair] = []
    for k, line in enumerate(body):
        f = k // (2 * n) + 1
        parts = line.split()
        if len(parts) == 3:
            out.append(Pair(parts[0], int(parts[1]), parts[0], int(parts[2]), f))
        elif len(parts) == 4:
            out.append(Pair(parts[0], int(parts[1]), parts[2], int(parts[3]), f))
        else:
            raise ValueError(f"{path}: line {k + 2} has {len(parts)} fields, expected 3 or 4: {line!r}")
    return out


def pair_fold(pairs: Sequence[Pair], folds: Sequence[int]) -> list[Pair]:
    keep = set(folds)
    return [p for p in pairs if p.fold in keep]


def image_path(root: str | Path, name: str, index: int) -> Path:
    return Path(root) / name / f"{name}_{index:04d}.jpg"


def list_identities(root: str | Path, min_images: int = 1) -> dict[str, list[Path]]:
    """``{name: sorted image paths}`` of an LFW-layout folder (names with >= min_images images)."""
    out: dict[str, list[Path]] = {}
    for d in sorted(Path(root).iterdir()):
        if not d.is_dir():
            continue
        imgs = sorted(d.glob("*.jpg")) + sorted(d.glob("*.png"))
        if len(imgs) >= min_images:
            out[d.name] = imgs
    return out


def read_image(path: str | Path) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]``; grayscale files give three equal channels."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def face_box_250(jitter: float = 0.0, rng: np.random.Generator | None = None) -> tuple[float, float, float, float]:
    """A face box ``(x1, y1, x2, y2)`` in a 250x250 LFW image, like a detector box x1.3.

    ``jitter`` > 0 shifts and scales it randomly by up to that fraction of its size.
    """
    cx, cy, w, h = 125.0, 122.0, 140.0, 160.0
    if jitter > 0:
        r = rng or np.random.default_rng()
        cx += r.uniform(-jitter, jitter) * w
        cy += r.uniform(-jitter, jitter) * h
        s = 1.0 + r.uniform(-jitter, jitter)
        a = 1.0 + r.uniform(-jitter, jitter) * 0.5
        w, h = w * s * a, h * s / a
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class IdentityFolder:
    """Images of an LFW-layout folder with integer labels, optionally loaded into memory.

    Args:
        root: the folder.
        min_images: keep identities with at least this many images.
        names: restrict to these identities.
        exclude: drop these identities (e.g. the ones measured on).
    """

    def __init__(self, root: str | Path, min_images: int = 1, names: Sequence[str] | None = None,
                 exclude: Sequence[str] = ()) -> None:
        ids = list_identities(root, min_images)
        if names is not None:
            keep = set(names)
            ids = {k: v for k, v in ids.items() if k in keep}
        drop = set(exclude)
        ids = {k: v for k, v in ids.items() if k not in drop}
        if not ids:
            raise ValueError(f"no identities found under {root} (min_images={min_images})")
        self.names = sorted(ids)
        self.items: list[tuple[Path, int]] = [(p, i) for i, n in enumerate(self.names) for p in ids[n]]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[Path, int]]:
        return iter(self.items)
