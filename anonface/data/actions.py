"""Action detection data: JHMDB clips and a simple JSON format.

An :class:`ActionSet` holds decoded frames and, per frame, person boxes with action labels and face
boxes. Boxes are pixel-corner ``(x1, y1, x2, y2)`` floats; labels are ``1..num_classes`` (0 is the
detector's background).

JSON format (``load_action_json`` / ``save_action_json``)::

    {
      "classes": ["catch", "run", ...],          # label k is classes[k - 1]
      "frames": [
        {"image": "frames/00001.png",            # path relative to the JSON file (or absolute)
         "persons": [{"box": [x1, y1, x2, y2], "label": "catch"}],   # label: class name or 1-based int
         "faces": [[x1, y1, x2, y2]]},           # optional; default: derived from the person boxes
        ...
      ]
    }

JHMDB layout (``load_jhmdb``): a clip ``<name>.avi`` with ``joint_positions.mat`` (``pos_img``:
``[2, 15, T]`` x/y in 1-based MATLAB pixels). The person box is the min/max over the 15 joints plus
padding; the face box is a square centred between joint 2 ("face", near the top of the head in the puppet) and
joint 0 (neck), 1.4 times their distance wide.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = [
    "ActionSet",
    "JHMDB_CLASSES",
    "load_jhmdb",
    "jhmdb_boxes",
    "load_action_json",
    "save_action_json",
    "read_video_frames",
    "face_box_from_person",
]

JHMDB_CLASSES = [
    "brush_hair", "catch", "clap", "climb_stairs", "golf", "jump", "kick_ball", "pick", "pour", "pullup", "push",
    "run", "shoot_ball", "shoot_bow", "shoot_gun", "sit", "stand", "swing_baseball", "throw", "walk", "wave",
]


@dataclass
class ActionSet:
    """Frames ``uint8 [T, H, W, 3]`` RGB with per-frame annotations."""

    frames: Tensor
    person_boxes: list[Tensor]
    """per frame ``Tensor[P, 4]`` float"""
    labels: list[Tensor]
    """per frame ``Tensor[P]`` int64 in 1..num_classes"""
    face_boxes: list[Tensor]
    """per frame ``Tensor[F, 4]`` float"""
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        t = self.frames.shape[0]
        if self.frames.dtype != torch.uint8 or self.frames.dim() != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {self.frames.dtype} {tuple(self.frames.shape)}")
        for name in ("person_boxes", "labels", "face_boxes"):
            if len(getattr(self, name)) != t:
                raise ValueError(f"{name} must have one entry per frame ({t}), got {len(getattr(self, name))}")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def resized(self, longer_side: int) -> ActionSet:
        """A copy with frames resized so the longer side is ``longer_side`` px (boxes scaled)."""
        import torch.nn.functional as F

        t, h, w, _ = self.frames.shape
        s = longer_side / max(h, w)
        if abs(s - 1) < 1e-9:
            return self
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        x = self.frames.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=s < 1)
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        sx, sy = nw / w, nh / h
        scale = torch.tensor([sx, sy, sx, sy])
        return ActionSet(frames, [b * scale for b in self.person_boxes], list(self.labels),
                         [b * scale for b in self.face_boxes], list(self.classes))

    def subset(self, idx: Sequence[int]) -> ActionSet:
        idx = list(idx)
        return ActionSet(self.frames[idx], [self.person_boxes[i] for i in idx], [self.labels[i] for i in idx],
                         [self.face_boxes[i] for i in idx], list(self.classes))


def read_video_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """All frames of a video as RGB ``uint8 [T, H, W, 3]`` (OpenCV)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    out = []
    while max_frames is None or len(out) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f[:, :, ::-1])
    cap.release()
    if not out:
        raise ValueError(f"no frames decoded from {path}")
    return np.ascontiguousarray(np.stack(out))


def face_box_from_person(box: Tensor) -> Tensor:
    """A face box guessed from a person box: a square of 1/6 of its height at the top centre."""
    x1, y1, x2, y2 = box.unbind(-1)
    side = (y2 - y1) / 6
    cx = (x1 + x2) / 2
    return torch.stack([cx - side / 2, y1, cx + side / 2, y1 + side], -1)


def jhmdb_boxes(pos_img: np.ndarray, height: int, width: int, pad: float = 0.1) -> tuple[Tensor, Tensor]:
    """Person and face boxes ``[T, 4]`` from JHMDB joints ``pos_img [2, 15, T]`` (1-based pixels; ``pad`` is
    the person box padding as a fraction of its size, plus 4 px)."""
    xy = torch.from_numpy(np.asarray(pos_img, dtype=np.float64)).float() - 0.5  # 1-based centres -> corners
    x, y = xy[0], xy[1]  # [15, T]
    x1, x2 = x.min(0).values, x.max(0).values
    y1, y2 = y.min(0).values, y.max(0).values
    pw, ph = x2 - x1, y2 - y1
    padx = pad * pw + 4
    pady = pad * ph + 4
    person = torch.stack([(x1 - padx).clamp(0, width), (y1 - pady).clamp(0, height),
                          (x2 + padx).clamp(0, width), (y2 + pady).clamp(0, height)], 1)
    # joint 2 ("face") of the JHMDB puppet sits near the top of the head and joint 0 (neck) near the
    # chin: the face is centred between them; the box is generous (privacy fails closed).
    fx, fy = (x[2] + x[0]) / 2, (y[2] + y[0]) / 2
    dist = torch.stack([x[2] - x[0], y[2] - y[0]]).norm(dim=0)
    side = torch.maximum(1.4 * dist, 0.08 * ph).clamp(min=4)
    face = torch.stack([fx - side / 2, fy - side / 2, fx + side / 2, fy + side / 2], 1)
    return person, face


def load_jhmdb(clip: str | Path, mat: str | Path | None = None, label: str | int | None = None,
               classes: Sequence[str] = JHMDB_CLASSES) -> ActionSet:
    """One JHMDB clip with its ``joint_positions.mat``.

    Args:
        clip: the ``.avi``.
        mat: the joints file; default ``<clip stem>_joint_positions.mat`` or ``joint_positions.mat`` beside it.
        label: class name or 1-based index; default: guessed from the clip name (a JHMDB class name it contains).
        classes: the class list (JHMDB's 21 by default).
    """
    from scipy.io import loadmat

    clip = Path(clip)
    if mat is None:
        cands = [clip.with_name(clip.stem + "_joint_positions.mat"), clip.with_name("joint_positions.mat")]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise FileNotFoundError(f"no joint_positions.mat found beside {clip}")
        mat = found[0]
    frames = read_video_frames(clip)
    pos = loadmat(str(mat))["pos_img"]
    t = min(frames.shape[0], pos.shape[2])
    if frames.shape[0] != pos.shape[2]:
        logger.warning("%s: %d frames decoded, %d annotated; using %d", clip, frames.shape[0], pos.shape[2], t)
    frames, pos = frames[:t], pos[:, :, :t]
    h, w = frames.shape[1:3]
    person, face = jhmdb_boxes(pos, h, w)
    if label is None:
        name = clip.stem.lower()
        hits = [c for c in classes if f"_{c}_" in f"_{name}_"]
        if not hits:
            raise ValueError(f"cannot guess the action of {clip.name}; pass label=")
        label = hits[0]
    lab = classes.index(label) + 1 if isinstance(label, str) else int(label)
    if not 1 <= lab <= len(classes):
        raise ValueError(f"label must be in 1..{len(classes)}, got {lab}")
    return ActionSet(torch.from_numpy(frames), [person[i:i + 1] for i in range(t)],
                     [torch.tensor([lab]) for _ in range(t)], [face[i:i + 1] for i in range(t)], list(classes))


def load_action_json(path: str | Path) -> ActionSet:
    """Read the JSON format described in this module's docstring."""
    import cv2

    path = Path(path)
    spec = json.loads(path.read_text())
    classes = list(spec.get("classes", []))
    if not classes:
        raise ValueError(f"{path}: 'classes' must be a non-empty list")
    frames, pboxes, labels, fboxes = [], [], [], []
    for k, fr in enumerate(spec.get("frames", [])):
        p = Path(fr["image"])
        p = p if p.is_absolute() else path.parent / p
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{path}: frame {k}: cannot read {p}")
        frames.append(img[:, :, ::-1])
        persons = fr.get("persons", [])
        pb = torch.tensor([q["box"] for q in persons], dtype=torch.float32).reshape(-1, 4)
        lab = []
        for q in persons:
            lv = q["label"]
            lab.append(classes.index(lv) + 1 if isinstance(lv, str) else int(lv))
        pboxes.append(pb)
        labels.append(torch.tensor(lab, dtype=torch.long))
        if "faces" in fr:
            fboxes.append(torch.tensor(fr["faces"], dtype=torch.float32).reshape(-1, 4))
        else:
            fboxes.append(face_box_from_person(pb))
    if not frames:
        raise ValueError(f"{path}: no frames")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{path}: all frames must have one size, got {sorted(shapes)}")
    return ActionSet(torch.from_numpy(np.ascontiguousarray(np.stack(frames))), pboxes, labels, fboxes, classes)


def save_action_json(data: ActionSet, path: str | Path, image_dir: str = "frames") -> None:
    """Write frames as PNGs beside ``path`` and the annotations as JSON."""
    import cv2

    path = Path(path)
    (path.parent / image_dir).mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(len(data)):
        rel = f"{image_dir}/{i:05d}.png"
        cv2.imwrite(str(path.parent / rel), data.frames[i].numpy()[:, :, ::-1])
        out.append({
            "image": rel,
            "persons": [{"box": b.tolist(), "label": data.classes[int(lab) - 1]}
                        for b, lab in zip(data.person_boxes[i], data.labels[i])],
            "faces": data.face_boxes[i].tolist(),
        })
    path.write_text(json.dumps({"classes": data.classes, "frames": out}, indent=1))
