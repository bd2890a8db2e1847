"""Face identity folders in the LFW layout and LFW ``pairs.txt``.

Layout: ``root/<Name>/<Name>_NNNN.jpg`` (NNNN = the LFW image number, 1-based, 4 digits).
``pairs.txt``: a header ``<folds>\t<n>``, then per fold ``n`` same-person lines ``name i j`` and
``n`` different-person lines ``name1 i name2 j``.

Images are returned as ``uint8`` RGB ``numpy`` arrays ``[H, W, 3]``; grayscale files are replicated to
three channels. Face crops for training M are taken with a fixed box per image kind, chosen by
:func:`lfw_face_box` / :func:`aligned_face_box`: the ``legacy`` geometry (:func:`face_box_250`, a box that
covers the face of a 250x250 LFW image as a detector box enlarged ~1.3x would; pre-aligned crops whole)
or the ``pipeline`` geometry (CenterFace's median detection enlarged like
``anonface.pipeline.scale_boxes(boxes, mask_scale=1.3)``, i.e. 1.6x: the box the inference pipeline
crops, measured with ``python tools/measure_face_box.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    "FACE_BOX_GEOMETRIES",
    "lfw_face_box",
    "aligned_face_box",
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
    """Parse an LFW ``pairs.txt`` (folds numbered from 1); the one parser of the project
    (:func:`anonface.eval.data.read_pairs` builds on it).

    The header is ``<folds> <n>`` (View 2) or ``<n>`` (View 1: one fold); each fold then has
    ``n`` same-person lines ``name i j`` and ``n`` different-person lines ``name1 i name2 j``.
    Blank lines are ignored.

    Raises:
        ValueError: the header or a line does not have the LFW form.
    """
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"pairs file {path} is empty")
    head = lines[0].split()
    if len(head) == 2:
        folds, n = int(head[0]), int(head[1])
    elif len(head) == 1:
        folds, n = 1, int(head[0])
    else:
        raise ValueError(f"pairs file {path}: expected a header '<folds> <n>', got {lines[0]!r}")
    body = lines[1:]
    if len(body) != folds * 2 * n:
        raise ValueError(
            f"pairs file {path}: header says {folds} folds x {2 * n} lines, the file has {len(body)} lines"
        )
    out: list[Pair] = []
    for k, line in enumerate(body):
        f = k // (2 * n) + 1
        parts = line.split()
        if len(parts) == 3:
            out.append(Pair(parts[0], int(parts[1]), parts[0], int(parts[2]), f))
        elif len(parts) == 4:
            out.append(Pair(parts[0], int(parts[1]), parts[2], int(parts[3]), f))
        else:
            raise ValueError(f"pairs file {path}, line {k + 2}: expected 3 or 4 fields, got {line!r}")
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


FACE_BOX_GEOMETRIES = ("legacy", "pipeline")
"""Crop geometries for training M: ``legacy`` (the box M v1 was trained on, ~1.3x a detector box) and
``pipeline`` (the box ``anonface.pipeline`` crops at inference: CenterFace's box enlarged 1.6x)."""

# Median CenterFace detection (threshold 0.2, most central face) on 400 random training images of each
# kind (LFW pairs folds 1-4, held-out identities of folds 5-6 excluded; every image had a detection),
# enlarged with mask_scale 1.3 (each side out by 0.3 box sizes). Measured with
# ``python tools/measure_face_box.py --n 400 --seed 0``:
#   images_250_gray  : detection centre (126.5, 127.0), 100.2 x 131.2 -> enlarged 160.2 x 210.0
#                      (10th-90th percentile of the enlarged width 149-174, height 194-225)
#   aligned_112_color: detection centre (57.4, 64.2), 80.9 x 95.0 -> enlarged 129.4 x 152.0
#                      (reaches outside the 112x112 crop; crop_boxes repeats the border there)
_PIPELINE_250 = (126.5, 127.0, 160.2, 210.0)  # cx, cy, w, h in the 250x250 frame
_PIPELINE_ALIGNED_112 = (57.4, 64.2, 129.4, 152.0)  # cx, cy, w, h in the 112x112 frame


def _check_geometry(geometry: str) -> None:
    if geometry not in FACE_BOX_GEOMETRIES:
        raise ValueError(f"geometry must be one of {FACE_BOX_GEOMETRIES}, got {geometry!r}")


def _cwh(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def lfw_face_box(geometry: str = "legacy") -> tuple[float, float, float, float]:
    """The training crop box ``(x1, y1, x2, y2)`` in a 250x250 LFW image for ``geometry``.

    ``legacy``: :func:`face_box_250` (140x160). ``pipeline``: CenterFace's median box on LFW enlarged
    like ``scale_boxes(..., mask_scale=1.3)`` (160x210, see the measurement above).
    """
    _check_geometry(geometry)
    if geometry == "legacy":
        return face_box_250()
    return _cwh(*_PIPELINE_250)


def aligned_face_box(geometry: str = "legacy", width: int = 112, height: int = 112) -> tuple[float, float, float, float]:
    """The training crop box in a pre-aligned ``height x width`` face crop (LFW's 112x112 colour crops).

    ``legacy``: the whole image. ``pipeline``: CenterFace's median box on the 112x112 aligned crops
    enlarged 1.6x, scaled to ``width x height`` (it reaches outside the image).
    """
    _check_geometry(geometry)
    if geometry == "legacy":
        return (0.0, 0.0, float(width), float(height))
    cx, cy, w, h = _PIPELINE_ALIGNED_112
    sx, sy = width / 112.0, height / 112.0
    return _cwh(cx * sx, cy * sy, w * sx, h * sy)


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
