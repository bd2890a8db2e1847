"""Recall against ground truth: which faces each configuration hides, by face size and time on screen.

Every coverage figure of ``bench_video.py`` is measured against deface's own detections, so a face that
both tools miss counts as covered there. This benchmark measures against faces whose boxes are known.

**Composites** (the main measurement). LFW faces are pasted, with known boxes, into frames of the shared
action clips (``action_videos``, decoded with PyAV and resized to ``--width`` x ``--height``, 1280x720 by
default): 8 segments of 40 frames from the four clips (``SEGMENTS``; the two 320x240/340x256 clips are
upscaled, so their backgrounds are soft). Each segment is one stream (the tracker starts afresh on it), with
~10 pasted faces per frame and a fixed seed. Every face is a *track*:

* the face: a deep-funneled 250x250 LFW image, colour (``faces_color_context``) or grayscale
  (``lfw_identities_extra``); images whose pasted region holds the alignment's black wedges are skipped;
* **true box**: the face region of the LFW image, ``x 76-176, y 64-190`` (100 x 126 px: the median
  CenterFace box on 150 colour LFW images was 96 x 125 centred at (126, 127)), scaled to the face's
  size. The **face size** is that box's height in frame pixels (12-200 px, drawn evenly over the size
  buckets, log-uniform within one). The pasted region is the true box enlarged 1.5x (hair, ears, neck and
  some of the photo's background) under an alpha mask that is 1 over the box and its corners and falls
  smoothly (raised cosine) to 0 at the region's edge, so there is no seam for a detector to find;
* motion: a straight path at 0.5-6 px/frame, the size changing by up to -20%/+25% over the track;
* duration: 1, 2, 3-5, 6-10 or 11-40 frames (short tracks are drawn more often, so every bucket has
  enough faces); a track starts anywhere in its segment. Tracks are placed largest first, so that size and
  duration stay independent. Face-frames of one track are not independent samples: the JSON gives the
  number of tracks behind every bucket;
* turns: ``flip`` (mirrored), ``roll`` (in-plane rotation of 15-40 degrees, turning by up to 2 degrees per
  frame; the true box is then the axis-aligned box of the rotated ellipse inscribed in the face box),
  ``yaw`` (the face squeezed horizontally to 0.55-0.75 of its width: a crude stand-in for a turned head,
  LFW holds few profiles), ``occluded`` (a band of 25-45% of the box on its left, right or bottom side
  covered by a patch of the same frame's background; the true box is then the visible rest);
* pasted faces do not overlap each other; the frames are clipped to 230 grey levels at most before any
  tool sees them (see "anonymized pixels").

**Real annotations**: PoseTrack 2018 ``bbox_head`` boxes (``posetrack18_sample``, 2 frames at 1080p, 3
heads). The annotation flags every nose as visible, but one head (the man lying on the mat) shows its back
and one ear: it is reported apart as "from behind", by eye (``POSETRACK_BEHIND``). And the JHMDB clip of
``jhmdb_sample`` (40 frames, 320x240, one goalkeeper). JHMDB annotates joints, not boxes; its "face"
joint (index 2) sits at the top of the head and the neck joint (0) below the chin, so the head box is
centred between the two, ``1.1 d`` tall and ``0.85`` of that wide, where ``d`` is the face-neck distance
(checked by drawing it on the frames; the ball covers the face on a few frames and those still count).
A head box holds hair and ears, more than the face a detector boxes: heads are reported both at >= 90%
and at >= 50% of the box anonymized.

**Covered**: >= 90% of the true box's area (pixel-exact) lies inside anonymized pixels of that frame.

**Anonymized pixels** are pixels the tool changed, read from its output:

* anonface runs with ``method="solid", strength=255`` (a white fill; detection, tracking, mask shape and
  feathering are those of the configuration, whatever the method): a pixel's blend weight is
  ``sum_c |out - in| / sum_c |255 - in|`` and it counts when the weight is >= 0.5 (the feathered edge is
  inside the ellipse). The input frames are clipped to <= 230, so the weight is defined everywhere;
* deface runs its CenterFace (``cv2.dnn``, full resolution, threshold 0.2) on the frame and then its own
  ``anonymize_frame`` with its defaults (blur, ellipse, mask scale 1.3) on a checkerboard frame: the
  pixels its blur changed there are the pixels it would anonymize.

**False-positive area** per frame, as a share of the frame: ``fp_outside_boxes``, anonymized pixels
outside every true box (includes the margin that both tools add around a face on purpose, mask scale
1.3); ``fp_spurious``, anonymized pixels farther than that from any face: outside every true box
enlarged 2x and outside the background clips' own (unannotated) faces, which are the boxes deface's
detector finds on the clean background frames, enlarged 2x. A composite face vanishes from one frame to
the next, and anonface's tracker keeps covering a face for a few frames after its last detection (on
purpose): those frames count in both. ``fp_unexplained`` also leaves out where each face's straight path
puts it in the 8 frames before it appears and after it vanishes: what is left are detections of nothing.

Recall by time on screen is reported for all faces and for faces >= 32 px (where size alone costs
recall little, so the effect of duration shows).

**Rows**: anonface defaults, ``--fast`` (``anonface.cli.FAST_PRESET``), each option of that preset alone,
and deface, on the same frames. Recall does not depend on timing; no fps are measured here.

Usage: ``python benchmarks/bench_recall.py [--quick] [--rows default,fast,...] [--out FILE]``;
writes ``benchmarks/results/recall_cpu.json`` (``recall_cpu_quick.json`` with ``--quick``) and the plot
``recall_vs_size.png`` beside it. The data folder is ``$ANONFACE_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANONFACE_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"

SIZE_BUCKETS = [(12, 16), (16, 20), (20, 32), (32, 64), (64, 128), (128, 200)]
DURATION_BUCKETS = [(1, 1), (2, 2), (3, 5), (6, 10), (11, 1000)]
COVERED = 0.9  # share of the true box that must be anonymized
MIN_WEIGHT = 0.5  # a feathered pixel counts as anonymized from this blend weight on
CLIP_MAX = 230  # input frames are clipped to this so a white fill changes every pixel
FILL = 255

# LFW deep-funneled 250x250: the face box (x1, y1, x2, y2) and the pasted region around it.
LFW_FACE_BOX = (76.0, 64.0, 176.0, 190.0)
PATCH_SCALE = 1.5

# (clip, first frame) of each composite segment; --quick uses the first three, shorter.
SEGMENTS = [
    ("opera_arcade_pedestrians_walk.mp4", 0),
    ("two_people_hugging_1080p.mp4", 0),
    ("kinetics400_arm_wrestling.mp4", 0),
    ("opera_arcade_pedestrians_walk.mp4", 60),
    ("ucf101_apply_eye_makeup.avi", 0),
    ("two_people_hugging_1080p.mp4", 30),
    ("kinetics400_arm_wrestling.mp4", 120),
    ("kinetics400_arm_wrestling.mp4", 220),
]


def size_bucket(s: float) -> str | None:
    for lo, hi in SIZE_BUCKETS:
        if lo <= s < hi or (hi == SIZE_BUCKETS[-1][1] and s == hi):
            return f"{lo}-{hi}"
    return None


def duration_bucket(n: int) -> str:
    for lo, hi in DURATION_BUCKETS:
        if lo <= n <= hi:
            return str(lo) if lo == hi else (f">{lo - 1}" if hi >= 1000 else f"{lo}-{hi}")
    raise ValueError(n)


# -- the metric ------------------------------------------------------------------------------------
def box_fraction_inside(mask: np.ndarray, box) -> float:
    """Share of the area of ``box`` (x1, y1, x2, y2, pixel-corner coordinates, pixel i spans [i, i+1))
    that lies on True pixels of ``mask`` [H, W]; pixels cut by the box edge count by their overlap.
    Parts of the box outside the frame count as not anonymized."""
    h, w = mask.shape
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    area = (x2 - x1) * (y2 - y1)
    if area <= 0:
        raise ValueError(f"empty box {box}")
    c0, c1 = max(int(math.floor(x1)), 0), min(int(math.ceil(x2)), w)
    r0, r1 = max(int(math.floor(y1)), 0), min(int(math.ceil(y2)), h)
    if c1 <= c0 or r1 <= r0:
        return 0.0
    cols = np.arange(c0, c1, dtype=np.float64)
    rows = np.arange(r0, r1, dtype=np.float64)
    wx = np.clip(np.minimum(cols + 1, x2) - np.maximum(cols, x1), 0, 1)
    wy = np.clip(np.minimum(rows + 1, y2) - np.maximum(rows, y1), 0, 1)
    inside = mask[r0:r1, c0:c1].astype(np.float64)
    return float(wy @ inside @ wx / area)


def is_covered(mask: np.ndarray, box, need: float = COVERED) -> bool:
    return box_fraction_inside(mask, box) >= need - 1e-9


def fill_weight(inp: np.ndarray, out: np.ndarray, fill: int = FILL) -> np.ndarray:
    """Per-pixel blend weight of a solid ``fill`` in ``out = w * fill + (1 - w) * inp`` ([H, W], float).

    Summed over the channels, so it is defined wherever some channel of ``inp`` differs from ``fill``
    (everywhere, once the input is clipped away from the fill value)."""
    a = inp.astype(np.int16)
    num = np.abs(out.astype(np.int16) - a).sum(axis=2, dtype=np.int32)
    den = np.abs(fill - a).sum(axis=2, dtype=np.int32)
    return num / np.maximum(den, 1)


def anonymized_mask_fill(inp: np.ndarray, out: np.ndarray, fill: int = FILL, min_weight: float = MIN_WEIGHT) -> np.ndarray:
    return fill_weight(inp, out, fill) >= min_weight


def checkerboard(h: int, w: int) -> np.ndarray:
    """A marker frame: any blur over two or more pixels changes every pixel it touches."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def changed_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def boxes_mask(boxes, h: int, w: int, scale: float = 1.0) -> np.ndarray:
    """Pixels whose centre lies in any of the boxes, each enlarged ``scale`` x about its centre."""
    m = np.zeros((h, w), bool)
    for b in boxes:
        x1, y1, x2, y2 = (float(v) for v in b[:4])
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
        c0, c1 = max(int(math.ceil(cx - hw - 0.5)), 0), min(int(math.floor(cx + hw - 0.5)) + 1, w)
        r0, r1 = max(int(math.ceil(cy - hh - 0.5)), 0), min(int(math.floor(cy + hh - 0.5)) + 1, h)
        if c1 > c0 and r1 > r0:
            m[r0:r1, c0:c1] = True
    return m


# -- composites ------------------------------------------------------------------------------------
def face_patch(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pasted region of a 250x250 LFW image (RGB) and its alpha mask (float32, 1 over the true box)."""
    x1, y1, x2, y2 = LFW_FACE_BOX
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    px0, px1 = int(round(cx - PATCH_SCALE * hw)), int(round(cx + PATCH_SCALE * hw))
    py0, py1 = int(round(cy - PATCH_SCALE * hh)), int(round(cy + PATCH_SCALE * hh))
    patch = np.ascontiguousarray(img[py0:py1, px0:px1])
    yy, xx = np.mgrid[py0:py1, px0:px1].astype(np.float32) + 0.5
    # Superellipse radius: 1 on the box edges, 2^(1/4) = 1.19 at its corners, 1.5 at the region's edge.
    r = (((xx - cx) / hw) ** 4 + ((yy - cy) / hh) ** 4) ** 0.25
    t = np.clip((r - 1.2) / (PATCH_SCALE - 1.2), 0, 1)
    alpha = (0.5 + 0.5 * np.cos(np.pi * t)).astype(np.float32)
    return patch, alpha


def patch_origin() -> tuple[float, float]:
    """Centre of the true box in the pasted region's coordinates (continuous, pixel-corner)."""
    x1, y1, x2, y2 = LFW_FACE_BOX
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return cx - int(round(cx - PATCH_SCALE * hw)), cy - int(round(cy - PATCH_SCALE * hh))


@dataclass
class FaceTrack:
    face: int  # index into the face list
    start: int
    length: int
    size0: float  # face size (true box height, px) at the first and last frame
    size1: float
    c0: tuple[float, float]  # true box centre at the first frame
    vel: tuple[float, float]
    angle0: float = 0.0  # degrees, counter-clockwise in the image
    spin: float = 0.0  # degrees per frame
    squeeze: float = 1.0
    flip: bool = False
    occlude: tuple[str, float] | None = None  # side, share of the box
    tags: list[str] = field(default_factory=list)

    def at(self, f: int) -> tuple[float, float, float, float]:
        """(cx, cy, size, angle) at segment frame ``f``."""
        t = f - self.start
        u = t / max(self.length - 1, 1)
        s = self.size0 + (self.size1 - self.size0) * u
        return self.c0[0] + self.vel[0] * t, self.c0[1] + self.vel[1] * t, s, self.angle0 + self.spin * t

    def half_extent(self, size: float, angle: float) -> tuple[float, float]:
        """Half width/height of the pasted region (rotated) at this size and angle."""
        k = size / (LFW_FACE_BOX[3] - LFW_FACE_BOX[1])
        a = PATCH_SCALE * (LFW_FACE_BOX[2] - LFW_FACE_BOX[0]) / 2 * k * self.squeeze
        b = PATCH_SCALE * (LFW_FACE_BOX[3] - LFW_FACE_BOX[1]) / 2 * k
        c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
        return c * a + s * b, s * a + c * b


def true_box(cx: float, cy: float, size: float, angle: float, squeeze: float) -> np.ndarray:
    """The face's box in the frame: the face box, or for a rotated face the axis-aligned box of the
    rotated ellipse inscribed in it."""
    k = size / (LFW_FACE_BOX[3] - LFW_FACE_BOX[1])
    a = (LFW_FACE_BOX[2] - LFW_FACE_BOX[0]) / 2 * k * squeeze
    b = (LFW_FACE_BOX[3] - LFW_FACE_BOX[1]) / 2 * k
    if angle % 360:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        a, b = math.hypot(a * c, b * s), math.hypot(a * s, b * c)
    return np.array([cx - a, cy - b, cx + a, cy + b], np.float64)


def paste_face(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, cx: float, cy: float, size: float,
               angle: float = 0.0, squeeze: float = 1.0, flip: bool = False) -> np.ndarray:
    """Blend the face into ``frame`` (in place) with its true box centred at (cx, cy); returns the box."""
    import cv2

    h, w = frame.shape[:2]
    if flip:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]
    if patch.ndim == 2:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    k = size / (LFW_FACE_BOX[3] - LFW_FACE_BOX[1])
    kx, ky = k * squeeze, k
    ph, pw = patch.shape[:2]
    # Shrink with area averaging first (no aliasing), then place with one sub-pixel affine warp.
    tw, th = max(int(round(pw * kx)), 2), max(int(round(ph * ky)), 2)
    interp = cv2.INTER_AREA if tw < pw else cv2.INTER_LINEAR
    src = np.dstack([patch.astype(np.float32), alpha * 255.0])
    src = cv2.resize(src, (tw, th), interpolation=interp)
    sx, sy = pw * kx / tw, ph * ky / th  # what the warp still scales
    ox, oy = patch_origin()
    if flip:
        ox = pw - ox
    ocx, ocy = ox * tw / pw, oy * th / ph  # true box centre in the resized region (continuous)
    rad = math.radians(angle)
    c, s = math.cos(rad), math.sin(rad)
    # Image y points down: a counter-clockwise turn on screen.
    rot = np.array([[c, s], [-s, c]]) @ np.diag([sx, sy])
    ex = abs(rot[0, 0]) * tw / 2 + abs(rot[0, 1]) * th / 2 + 2
    ey = abs(rot[1, 0]) * tw / 2 + abs(rot[1, 1]) * th / 2 + 2
    ex += abs(ocx - tw / 2) * sx + abs(ocy - th / 2) * sy
    ey += abs(ocx - tw / 2) * sx + abs(ocy - th / 2) * sy
    x0, x1 = max(int(math.floor(cx - ex)), 0), min(int(math.ceil(cx + ex)), w)
    y0, y1 = max(int(math.floor(cy - ey)), 0), min(int(math.ceil(cy + ey)), h)
    if x1 > x0 and y1 > y0:
        # dst (pixel-centre indices in the ROI) = rot @ (src_idx + 0.5 - oc) + (c - roi0) - 0.5
        t = np.array([cx - x0 - 0.5, cy - y0 - 0.5]) - rot @ np.array([ocx - 0.5, ocy - 0.5])
        m = np.concatenate([rot, t[:, None]], axis=1)
        warped = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        a = np.clip(warped[:, :, 3:4] / 255.0, 0, 1)
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(a * warped[:, :, :3] + (1 - a) * roi + 0.5, 0, 255).astype(np.uint8)
    return true_box(cx, cy, size, angle, squeeze)


def occlude(frame: np.ndarray, clean: np.ndarray, box: np.ndarray, side: str, share: float,
            reach: tuple[float, float], rng_shift: tuple[int, int]) -> np.ndarray:
    """Cover ``share`` of ``box`` from ``side`` with a patch of the clean background taken elsewhere in the
    frame (a soft 2 px inner edge, reaching ``reach`` px past the box on the other sides); returns the
    visible rest of the box."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    rx, ry = reach
    if side == "bottom":
        occ = (x1 - rx, y2 - share * bh, x2 + rx, y2 + ry)
        vis = np.array([x1, y1, x2, y2 - share * bh])
    elif side == "left":
        occ = (x1 - rx, y1 - ry, x1 + share * bw, y2 + ry)
        vis = np.array([x1 + share * bw, y1, x2, y2])
    else:
        occ = (x2 - share * bw, y1 - ry, x2 + rx, y2 + ry)
        vis = np.array([x1, y1, x2 - share * bw, y2])
    c0, c1 = max(int(math.floor(occ[0])), 0), min(int(math.ceil(occ[2])), w)
    r0, r1 = max(int(math.floor(occ[1])), 0), min(int(math.ceil(occ[3])), h)
    if c1 <= c0 or r1 <= r0:
        return vis
    dy, dx = rng_shift
    rows = (np.arange(r0, r1) + dy) % h
    cols = (np.arange(c0, c1) + dx) % w
    src = clean[rows][:, cols].astype(np.float32)
    # Alpha: 1 inside the occluder, ramping to 0 over 2 px outside its inner edge (never inside vis).
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
    if side == "bottom":
        d = yy - occ[1]
    elif side == "left":
        d = occ[2] - xx
    else:
        d = xx - occ[0]
    a = np.clip((d + 2.0) / 2.0, 0, 1)[:, :, None]
    if side == "bottom":
        a = np.where(yy[:, :, None] < occ[1], 0.0, a)
    elif side == "left":
        a = np.where(xx[:, :, None] > occ[2], 0.0, a)
    else:
        a = np.where(xx[:, :, None] < occ[0], 0.0, a)
    roi = frame[r0:r1, c0:c1].astype(np.float32)
    frame[r0:r1, c0:c1] = np.clip(a * src + (1 - a) * roi + 0.5, 0, 255).astype(np.uint8)
    return vis


def _pick(rng: np.random.Generator, buckets: list[tuple[int, int]], probs: list[float]) -> tuple[int, int]:
    return buckets[int(rng.choice(len(buckets), p=probs))]


def make_tracks(rng: np.random.Generator, n_frames: int, width: int, height: int, n_faces: int,
                density: float = 10.0, placements: int = 40) -> list[FaceTrack]:
    """Face tracks for one segment: ~``density`` faces per frame, no two pasted regions overlapping.

    The tracks are drawn first (duration, size, turns), then placed largest first, each at up to
    ``placements`` random positions and headings: placing small ones first would leave no room for large,
    long tracks and tie size to duration. A track that finds no room is dropped."""
    dur_probs = [0.35, 0.25, 0.2, 0.12, 0.08]
    specs: list[FaceTrack] = []
    face_frames = 0
    while face_frames < density * n_frames:
        lo, hi = _pick(rng, DURATION_BUCKETS, dur_probs)
        length = int(rng.integers(lo, min(hi, n_frames) + 1)) if lo <= n_frames else n_frames
        start = int(rng.integers(0, n_frames - length + 1))
        slo, shi = SIZE_BUCKETS[int(rng.integers(len(SIZE_BUCKETS)))]
        size0 = float(math.exp(rng.uniform(math.log(slo), math.log(shi))))
        size1 = size0 * float(rng.uniform(0.8, 1.25)) if length > 1 else size0
        size1 = float(np.clip(size1, SIZE_BUCKETS[0][0], SIZE_BUCKETS[-1][1]))
        tr = FaceTrack(face=int(rng.integers(n_faces)), start=start, length=length, size0=size0, size1=size1,
                       c0=(0.0, 0.0), vel=(0.0, 0.0))
        u = rng.random()
        if u < 0.2:
            tr.angle0 = float(rng.choice([-1, 1]) * rng.uniform(15, 40))
            tr.spin = float(rng.uniform(-2, 2)) if length > 1 else 0.0
            tr.tags.append("roll")
        elif u < 0.35:
            tr.squeeze = float(rng.uniform(0.55, 0.75))
            tr.tags.append("yaw")
        if rng.random() < 0.5:
            tr.flip = True
            tr.tags.append("flip")
        if rng.random() < 0.2:
            tr.occlude = (str(rng.choice(["bottom", "left", "right"])), float(rng.uniform(0.25, 0.45)))
            tr.tags.append("occluded")
        if not tr.tags or tr.tags == ["flip"]:
            tr.tags.insert(0, "frontal")
        specs.append(tr)
        face_frames += length
    order = sorted(range(len(specs)), key=lambda i: -max(specs[i].size0, specs[i].size1))
    # Occupied pasted regions per frame: (x0, y0, x1, y1).
    occupied: list[list[tuple[float, float, float, float]]] = [[] for _ in range(n_frames)]
    placed: list[int] = []
    for i in order:
        tr = specs[i]
        frames = range(tr.start, tr.start + tr.length)
        for _ in range(placements):
            speed = float(rng.uniform(0.5, 6.0))
            heading = float(rng.uniform(0, 2 * math.pi))
            tr.vel = (speed * math.cos(heading), speed * math.sin(heading))
            # Where the whole path stays inside the frame: the start centre's allowed range.
            ext = [tr.half_extent(tr.at(f)[2], tr.at(f)[3]) for f in frames]
            offs = [(tr.vel[0] * t, tr.vel[1] * t) for t in range(tr.length)]
            xlo = max(e[0] - o[0] for e, o in zip(ext, offs)) + 1
            xhi = min(width - e[0] - o[0] for e, o in zip(ext, offs)) - 1
            ylo = max(e[1] - o[1] for e, o in zip(ext, offs)) + 1
            yhi = min(height - e[1] - o[1] for e, o in zip(ext, offs)) - 1
            if xhi <= xlo or yhi <= ylo:
                continue
            tr.c0 = (float(rng.uniform(xlo, xhi)), float(rng.uniform(ylo, yhi)))
            regions = []
            for f, (ex, ey) in zip(frames, ext):
                cx, cy, _, _ = tr.at(f)
                regions.append((cx - ex - 2, cy - ey - 2, cx + ex + 2, cy + ey + 2))
            if any(r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3]
                   for f, r in zip(frames, regions) for o in occupied[f]):
                continue
            for f, r in zip(frames, regions):
                occupied[f].append(r)
            placed.append(i)
            break
    return [specs[i] for i in sorted(placed)]


def nearby_boxes(tracks: list[FaceTrack], f: int, window: int) -> list[np.ndarray]:
    """True boxes of the tracks visible within ``window`` frames of ``f``, where their straight path
    puts them at ``f`` (a tracker that keeps covering a face after it vanished, or before it appears)."""
    out = []
    for tr in tracks:
        if tr.start - window <= f < tr.start + tr.length + window:
            g = min(max(f, tr.start), tr.start + tr.length - 1)
            for ff in {f, g}:
                cx, cy, s, ang = tr.at(ff)
                out.append(true_box(cx, cy, tr.at(g)[2], ang, tr.squeeze))
    return out


@dataclass
class GroundTruth:
    """One visible face in one frame."""

    frame: int  # frame index in the segment
    track: int
    box: np.ndarray
    size: float
    duration: int
    tags: list[str]


def composite_segment(background: list[np.ndarray], tracks: list[FaceTrack], faces: list[tuple[np.ndarray, np.ndarray]],
                      seed: int) -> tuple[list[np.ndarray], list[list[GroundTruth]]]:
    """Paste the tracks into copies of the background frames; returns the frames (clipped to CLIP_MAX)
    and each frame's ground truth."""
    rng = np.random.default_rng(seed)
    frames, gts = [], []
    h, w = background[0].shape[:2]
    shifts = [(int(rng.integers(h // 4, 3 * h // 4)), int(rng.integers(w // 4, 3 * w // 4))) for _ in tracks]
    for f, bg in enumerate(background):
        fr = bg.copy()
        gt = []
        for ti, tr in enumerate(tracks):
            if not tr.start <= f < tr.start + tr.length:
                continue
            cx, cy, s, ang = tr.at(f)
            patch, alpha = faces[tr.face]
            box = paste_face(fr, patch, alpha, cx, cy, s, ang, tr.squeeze, tr.flip)
            if tr.occlude is not None:
                ex, ey = tr.half_extent(s, ang)
                reach = (ex - (box[2] - box[0]) / 2 + 2, ey - (box[3] - box[1]) / 2 + 2)
                box = occlude(fr, bg, box, tr.occlude[0], tr.occlude[1], reach, shifts[ti])
            gt.append(GroundTruth(f, ti, box, s, tr.length, list(tr.tags)))
        frames.append(np.minimum(fr, CLIP_MAX))
        gts.append(gt)
    return frames, gts


def load_faces(data: Path, n: int, rng: np.random.Generator, gray_share: float = 0.3) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` face patches (colour and grayscale LFW), skipping images with black wedges in the region."""
    import cv2

    color = sorted((data / "faces_color_context" / "lfw_250_color").glob("*/*.jpg"))
    gray = sorted((data / "lfw_identities_extra").glob("*/*.jpg"))
    if not color and not gray:
        raise FileNotFoundError(f"no LFW images under {data}")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        pool = gray if (gray and (rng.random() < gray_share or not color)) else color
        path = pool[int(rng.integers(len(pool)))]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or img.shape[:2] != (250, 250):
            continue
        patch, alpha = face_patch(np.ascontiguousarray(img[:, :, ::-1]))
        black = (patch.max(axis=2) < 8) & (alpha > 0.05)
        if black.mean() > 0.005:
            continue
        out.append((patch, alpha))
    return out


def read_clip(path: Path, start: int, count: int, width: int, height: int) -> list[np.ndarray]:
    import av
    import cv2

    frames = []
    with av.open(str(path)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if i < start:
                continue
            img = fr.to_ndarray(format="rgb24")
            interp = cv2.INTER_AREA if img.shape[1] > width else cv2.INTER_LINEAR
            frames.append(cv2.resize(img, (width, height), interpolation=interp))
            if len(frames) == count:
                break
    if len(frames) < count:
        raise ValueError(f"{path.name}: only {len(frames)} frames from frame {start}")
    return frames


# -- the tools -------------------------------------------------------------------------------------
def row_configs() -> dict[str, dict | None]:
    """Row name -> Anonymizer options on top of the defaults (None: deface)."""
    from anonface.cli import FAST_PRESET

    rows: dict[str, dict | None] = {"default": {}, "fast": dict(FAST_PRESET)}
    # the earlier defaults: int8 at threshold 0.1, and before that float32 CenterFace at deface's 0.2
    rows["t0.1"] = {"threshold": 0.1}
    rows["fp32+t0.2"] = {"precision": "fp32", "threshold": 0.2}
    # each option of the preset that differs from the defaults, alone
    rows["detect_every=6"] = {"detect_every": FAST_PRESET["detect_every"]}
    rows["detect_every=2"] = {"detect_every": 2}
    rows["deface"] = None
    return rows


class AnonfaceRow:
    def __init__(self, cfg: dict):
        from _common import anonymizer_kwargs

        from anonface import Anonymizer

        self.anon = Anonymizer(method="solid", strength=FILL, device="cpu", **anonymizer_kwargs(cfg))

    def masks(self, frames: list[np.ndarray]):
        """Anonymized-pixel masks of one stream (the tracker starts afresh)."""
        self.anon.reset()
        for inp, out in zip(frames, self.anon.stream(iter(frames))):
            yield anonymized_mask_fill(inp, np.asarray(out))


class DefaceRow:
    """deface 1.5's CenterFace (cv2.dnn, full resolution, threshold 0.2) and its default anonymization."""

    def __init__(self, threshold: float = 0.2, mask_scale: float = 1.3):
        from deface.centerface import CenterFace

        self.cf = CenterFace(in_shape=None, backend="opencv")
        self.threshold, self.mask_scale = threshold, mask_scale
        self._marker: np.ndarray | None = None

    def detect(self, frame: np.ndarray) -> np.ndarray:
        dets, _ = self.cf(frame, threshold=self.threshold)
        return dets

    def masks(self, frames: list[np.ndarray]):
        from deface.deface import anonymize_frame

        for fr in frames:
            dets = self.detect(fr)
            h, w = fr.shape[:2]
            if self._marker is None or self._marker.shape[:2] != (h, w):
                self._marker = checkerboard(h, w)
            out = self._marker.copy()
            anonymize_frame(dets, out, mask_scale=self.mask_scale, replacewith="blur", ellipse=True,
                            draw_scores=False, replaceimg=None, mosaicsize=20)
            yield changed_mask(self._marker, out)


def make_row(cfg: dict | None):
    return DefaceRow() if cfg is None else AnonfaceRow(cfg)


# -- real annotations ------------------------------------------------------------------------------
# PoseTrack heads whose face is turned away, judged by eye (the annotation's nose flag says "visible"
# for all three): (sequence, image index, annotation index within the image).
POSETRACK_BEHIND = {("003418_mpii_test", 0, 0)}


def posetrack_heads(data: Path) -> list[tuple[np.ndarray, list[tuple[np.ndarray, bool]]]]:
    """(frame RGB, [(head box x1y1x2y2, seen from behind)]) per annotated PoseTrack frame."""
    import cv2

    root = data / "posetrack18_sample"
    out = []
    for ann in sorted((root / "annotations").glob("*/*.json")):
        d = json.loads(ann.read_text())
        for ii, im in enumerate(d["images"]):
            heads = []
            for a in [a for a in d["annotations"] if a["image_id"] == im["id"] and a.get("bbox_head")]:
                x, y, w, h = a["bbox_head"]
                behind = a["keypoints"][2] == 0 or (ann.stem, ii, len(heads)) in POSETRACK_BEHIND
                heads.append((np.array([x, y, x + w, y + h], np.float64), behind))
            if heads:
                img = cv2.imread(str(root / im["file_name"]), cv2.IMREAD_COLOR)
                out.append((np.minimum(img[:, :, ::-1], CLIP_MAX), heads))
    return out


def jhmdb_heads(data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The JHMDB clip's frames and one head box per frame, derived from the face and neck joints."""
    import cv2
    import scipy.io as sio

    root = data / "jhmdb_sample"
    mat = next(root.glob("*_joint_positions.mat"))
    pos = sio.loadmat(str(mat))["pos_img"]  # (2, 15, T), 1-based pixel centres
    cap = cv2.VideoCapture(str(next(root.glob("*.avi"))))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(np.minimum(f[:, :, ::-1], CLIP_MAX))
    cap.release()
    n = min(len(frames), pos.shape[2])
    boxes = []
    for k in range(n):
        face = pos[:, 2, k] - 0.5  # 1-based centres -> pixel-corner coordinates
        neck = pos[:, 0, k] - 0.5
        d = float(np.hypot(*(face - neck)))
        cx, cy = (face + neck) / 2
        hh = 1.1 * d / 2
        hw = 0.85 * hh
        boxes.append(np.array([cx - hw, cy - hh, cx + hw, cy + hh]))
    return frames[:n], boxes


# -- running and summarising -----------------------------------------------------------------------
def recall_table(records: list[dict], key: str, order: list[str]) -> dict[str, dict]:
    out = {}
    for b in order:
        sel = [r for r in records if r[key] == b]
        n = len(sel)
        hit = sum(r["covered"] for r in sel)
        # recall50: >= 50% of the box anonymized (found, but maybe not covered enough), for diagnosis.
        out[b] = {"n": n, "tracks": len({(r["segment"], r["track"]) for r in sel}), "covered": hit,
                  "recall": hit / n if n else None,
                  "recall50": sum(r["fraction"] >= 0.5 for r in sel) / n if n else None}
    return out


def summarise(records: list[dict], fp: list[tuple[float, ...]]) -> dict:
    durs = [duration_bucket(lo) for lo, _ in DURATION_BUCKETS]
    n = len(records)
    hit = sum(r["covered"] for r in records)
    ge20 = [r for r in records if r["size"] >= 20]
    tags = sorted({t for r in records for t in r["tags"]})
    by_tag = {}
    for t in tags:
        sel = [r for r in records if t in r["tags"]]
        by_tag[t] = {"n": len(sel), "covered": sum(r["covered"] for r in sel),
                     "recall": sum(r["covered"] for r in sel) / len(sel)}
    return {
        "faces": n,
        "recall": hit / n if n else None,
        "recall_ge20": sum(r["covered"] for r in ge20) / len(ge20) if ge20 else None,
        "mean_covered_fraction": float(np.mean([r["fraction"] for r in records])) if records else None,
        "by_size": recall_table(records, "size_bucket", [f"{a}-{b}" for a, b in SIZE_BUCKETS]),
        "by_duration": recall_table(records, "duration_bucket", durs),
        "by_duration_ge20": recall_table([r for r in records if r["size"] >= 20], "duration_bucket", durs),
        "by_duration_ge32": recall_table([r for r in records if r["size"] >= 32], "duration_bucket", durs),
        "by_variant": by_tag,
        "fp_outside_boxes": float(np.mean([x[0] for x in fp])) if fp else None,
        "fp_spurious": float(np.mean([x[1] for x in fp])) if fp else None,
        "fp_unexplained": float(np.mean([x[-1] for x in fp])) if fp else None,
    }


LINGER_WINDOW = 8  # frames around a face's visible span in which covering its path is not spurious


def run_composites(row, segments, ignore) -> tuple[list[dict], list[tuple[float, float, float]]]:
    """Per face-frame records and per-frame false-positive shares of one row.

    ``segments``: ``(frames, ground truth[, tracks])`` per segment; ``ignore``: per segment and frame, the
    background's own face boxes (don't-care for ``fp_spurious`` and ``fp_unexplained``)."""
    records, fp = [], []
    for si, seg in enumerate(segments):
        frames, gts = seg[0], seg[1]
        tracks = seg[2] if len(seg) > 2 else None
        h, w = frames[0].shape[:2]
        for f, mask in enumerate(row.masks(frames)):
            gt = gts[f]
            for g in gt:
                frac = box_fraction_inside(mask, g.box)
                records.append({"segment": si, "frame": f, "track": g.track, "size": g.size,
                                "size_bucket": size_bucket(g.size), "duration": g.duration,
                                "duration_bucket": duration_bucket(g.duration), "tags": g.tags,
                                "fraction": frac, "covered": bool(frac >= COVERED - 1e-9)})
            boxes = [g.box for g in gt]
            out1 = mask & ~boxes_mask(boxes, h, w)
            out2 = out1 & ~boxes_mask(boxes, h, w, 2.0) & ~boxes_mask(ignore[si][f], h, w, 2.0)
            out3 = out2 & ~boxes_mask(nearby_boxes(tracks, f, LINGER_WINDOW), h, w, 2.0) if tracks else out2
            fp.append((float(out1.mean()), float(out2.mean()), float(out3.mean())))
    return records, fp


def _head_summary(fracs: list[float]) -> dict:
    """Head boxes hold hair and ears, more than a face: besides >= 90% of the box, report >= 50%."""
    return {"n": len(fracs), "covered90": int(sum(x >= COVERED - 1e-9 for x in fracs)),
            "covered50": int(sum(x >= 0.5 for x in fracs)),
            "mean_fraction": round(float(np.mean(fracs)), 3) if fracs else None}


def run_real(row, posetrack, jhmdb) -> dict:
    res: dict = {}
    if posetrack:
        heads: dict[str, list[float]] = {"face_visible": [], "from_behind": []}
        for img, hs in posetrack:
            mask = next(row.masks([img]))
            for box, behind in hs:
                heads["from_behind" if behind else "face_visible"].append(box_fraction_inside(mask, box))
        res["posetrack_heads"] = {k: {**_head_summary(v), "fractions": [round(x, 3) for x in v]}
                                  for k, v in heads.items()}
    if jhmdb:
        frames, boxes = jhmdb
        fr = [box_fraction_inside(m, b) for m, b in zip(row.masks(frames), boxes)]
        res["jhmdb_head"] = {**_head_summary(fr),
                             "median_head_height_px": round(float(np.median([b[3] - b[1] for b in boxes])), 1)}
    return res


def _commit() -> str:
    from _common import git_commit

    return git_commit()


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    sizes = [f"{a}-{b}" for a, b in SIZE_BUCKETS]
    xs = [math.sqrt(a * b) for a, b in SIZE_BUCKETS]
    durs = [duration_bucket(lo) for lo, _ in DURATION_BUCKETS]
    styles = {"default": ("C0", "o", "-"), "fast": ("C3", "s", "-"), "deface": ("k", "D", "--")}
    for i, r in enumerate(out["rows"]):
        c = r["composite"]
        color, marker, ls = styles.get(r["name"], (f"C{i + 2}", "^", ":"))
        ys = [c["by_size"][b]["recall"] for b in sizes]
        ax1.plot(xs, [100 * y if y is not None else np.nan for y in ys], color=color, marker=marker, ls=ls,
                 label=r["name"])
        ys = [c["by_duration_ge32"][b]["recall"] for b in durs]
        ax2.plot(range(len(durs)), [100 * y if y is not None else np.nan for y in ys], color=color,
                 marker=marker, ls=ls, label=r["name"])
    ax1.set_xscale("log")
    ax1.set_xticks(xs)
    ax1.set_xticklabels(sizes)
    ax1.minorticks_off()
    ax1.set_xlabel("face size (true box height, px; bucket)")
    ax1.set_ylabel("recall (%): >= 90% of the true box anonymized")
    ax1.set_title("Recall vs face size (composites)")
    ax2.set_xticks(range(len(durs)))
    ax2.set_xticklabels(durs)
    ax2.set_xlabel("frames the face is visible")
    ax2.set_title("Recall vs time on screen (composite faces >= 32 px)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_ylim(-2, 102)
    ax2.legend(loc="lower right", fontsize=8)
    n = out["composites"]
    fig.suptitle(f"{n['faces']} face-frames, {n['tracks']} tracks, {n['frames']} frames at {n['size'][0]}x{n['size'][1]}"
                 f" (seed {out['seed']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 segments of 24 frames (~1.5 minutes)")
    p.add_argument("--rows", default=None, help="comma list of rows (default: all)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--frames", type=int, default=None, help="frames per segment (40; 24 with --quick)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--no-real", action="store_true", help="skip PoseTrack and JHMDB")
    p.add_argument("--thresholds", default=None,
                   help="comma list of extra rows: the defaults at these CenterFace thresholds (rows 't<T>')")
    p.add_argument("--out", default=None)
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    extra = []
    for t in args.thresholds.split(",") if args.thresholds else []:
        try:
            value = float(t)
        except ValueError:
            p.error(f"--thresholds: {t!r} is not a number")
        if not 0.0 < value <= 1.0:  # also refuses NaN
            p.error(f"--thresholds: {t} is not a score threshold in (0, 1]")
        extra.append(f"t{value:g}")
    suffix = "_quick" if args.quick else ""
    out_path = Path(args.out or RESULTS / f"recall_cpu{suffix}.json")
    plot_path = Path(args.plot or out_path.with_name(f"recall_vs_size{suffix}.png"))
    if out_path.resolve() == plot_path.resolve():
        p.error(f"--out and --plot are the same file {out_path}")
    if not (DATA / "action_videos").is_dir():
        print(f"skipped: the shared data folder {DATA} (or $ANONFACE_DATA) with action_videos/ is absent", file=sys.stderr)
        return 0
    n_frames = args.frames or (24 if args.quick else 40)
    width = args.width or 1280
    height = args.height or 720
    segs = SEGMENTS[:3] if args.quick else SEGMENTS
    all_rows = row_configs()
    for name in extra:
        all_rows.setdefault(name, {"threshold": float(name[1:])})
    names = args.rows.split(",") if args.rows else list(all_rows)
    names += [n for n in extra if n not in names]
    for n in names:
        if n not in all_rows:
            p.error(f"unknown row {n!r}; rows: {', '.join(all_rows)}")

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    faces = load_faces(DATA, 400, rng)
    segments, backgrounds, n_tracks = [], [], 0
    for si, (clip, start) in enumerate(segs):
        bg = read_clip(DATA / "action_videos" / clip, start, n_frames, width, height)
        tracks = make_tracks(np.random.default_rng([args.seed, si]), n_frames, width, height, len(faces))
        frames, gts = composite_segment(bg, tracks, faces, seed=args.seed * 1000 + si)
        segments.append((frames, gts, tracks))
        backgrounds.append(bg)
        n_tracks += len(tracks)
    # Don't-care regions for fp_spurious: the background clips' own faces (deface's detector, 2x).
    ref = DefaceRow()
    ignore = [[ref.detect(np.minimum(b, CLIP_MAX)) for b in bg] for bg in backgrounds]
    del backgrounds
    n_faces = sum(len(g) for _, gts, _ in segments for g in gts)
    print(f"composites: {len(segments)} segments x {n_frames} frames at {width}x{height}, {n_tracks} tracks, "
          f"{n_faces} face-frames ({time.perf_counter() - t0:.0f} s)", flush=True)
    posetrack = jhmdb = None
    if not args.no_real:
        if (DATA / "posetrack18_sample").is_dir():
            posetrack = posetrack_heads(DATA)
        if (DATA / "jhmdb_sample").is_dir():
            jhmdb = jhmdb_heads(DATA)

    rows, per_face = [], {}
    for name in names:
        t1 = time.perf_counter()
        cfg = all_rows[name]
        row = make_row(cfg)
        records, fp = run_composites(row, segments, ignore)
        per_face[name] = [r["covered"] for r in records]
        res = {"name": name, "config": cfg if cfg is not None else
               {"tool": "deface", "detector": "CenterFace cv2.dnn, full resolution", "threshold": 0.2,
                "mask_scale": 1.3, "mask": "ellipse (blur)"},
               "composite": summarise(records, fp)}
        res.update(run_real(row, posetrack, jhmdb))
        res["seconds_wall"] = round(time.perf_counter() - t1, 1)
        rows.append(res)
        c = res["composite"]
        print(f"  {name:22s} recall {100 * c['recall']:5.1f}%  >=20px {100 * c['recall_ge20']:5.1f}%  "
              f"fp {100 * c['fp_outside_boxes']:.2f}% / {100 * c['fp_spurious']:.2f}% / {100 * c['fp_unexplained']:.2f}%"
              f"  ({res['seconds_wall']:.0f} s)",
              flush=True)

    # Faces every row missed, by size and duration bucket.
    missed_all = {}
    if per_face:
        covered_any = np.any(np.array(list(per_face.values())), axis=0)
        # The records' order is the same for every row (same segments, same frames).
        template = []
        for si, (_frames, gts, _) in enumerate(segments):
            for f, gt in enumerate(gts):
                for g in gt:
                    template.append({"segment": si, "frame": f, "track": g.track, "size": round(g.size, 1),
                                     "box": [round(float(v), 1) for v in g.box], "size_bucket": size_bucket(g.size),
                                     "duration_bucket": duration_bucket(g.duration), "tags": g.tags})
        miss = [t for t, c in zip(template, covered_any) if not c]
        missed_all = {
            "n": len(miss),
            "by_size": {b: sum(m["size_bucket"] == b for m in miss) for b in [f"{a}-{b}" for a, b in SIZE_BUCKETS]},
            "by_duration": {b: sum(m["duration_bucket"] == b for m in miss)
                            for b in [duration_bucket(lo) for lo, _ in DURATION_BUCKETS]},
            "by_variant": {t: sum(t in m["tags"] for m in miss) for t in sorted({t for m in template for t in m["tags"]})},
            "examples_ge32px": [{k: m[k] for k in ("segment", "frame", "track", "size", "box", "tags")}
                                for m in miss if m["size"] >= 32],
        }

    # The table.
    sizes = [f"{a}-{b}" for a, b in SIZE_BUCKETS]
    durs = [duration_bucket(lo) for lo, _ in DURATION_BUCKETS]
    first = rows[0]["composite"]
    print()
    print("recall (%) by face size (px); n =", ", ".join(f"{b}: {first['by_size'][b]['n']}" for b in sizes))
    print(f"{'row':22s} " + " ".join(f"{b:>7s}" for b in sizes) + f" {'all':>6s} {'>=20':>6s} {'fp out':>7s} "
          f"{'fp spur':>7s} {'fp unex':>7s}")
    for r in rows:
        c = r["composite"]
        cells = " ".join(f"{100 * c['by_size'][b]['recall']:7.1f}" if c["by_size"][b]["recall"] is not None else f"{'-':>7s}"
                         for b in sizes)
        print(f"{r['name']:22s} {cells} {100 * c['recall']:6.1f} {100 * c['recall_ge20']:6.1f} "
              f"{100 * c['fp_outside_boxes']:6.2f}% {100 * c['fp_spurious']:6.2f}% {100 * c['fp_unexplained']:6.2f}%")
    print()
    for key, what in (("by_duration", "all faces"), ("by_duration_ge32", "faces >= 32 px")):
        print(f"recall (%) by frames visible, {what}; n =", ", ".join(f"{b}: {first[key][b]['n']}" for b in durs))
        print(f"{'row':22s} " + " ".join(f"{b:>6s}" for b in durs) +
              ("   " + " ".join(f"{t:>9s}" for t in first["by_variant"]) if key == "by_duration" else ""))
        for r in rows:
            c = r["composite"]
            cells = " ".join(f"{100 * c[key][b]['recall']:6.1f}" if c[key][b]["recall"] is not None else f"{'-':>6s}"
                             for b in durs)
            tags = " ".join(f"{100 * c['by_variant'][t]['recall']:9.1f}" for t in first["by_variant"])
            print(f"{r['name']:22s} {cells}" + (f"   {tags}" if key == "by_duration" else ""))
        print()
    if not args.no_real and (posetrack or jhmdb):
        print()
        print("real annotations: heads covered >= 90% / >= 50% of their box")
        print(f"{'row':22s} {'PoseTrack face visible':>22s} {'PoseTrack from behind':>22s} {'JHMDB head frames':>18s}")
        for r in rows:
            cells = []
            for d in (r.get("posetrack_heads", {}).get("face_visible"), r.get("posetrack_heads", {}).get("from_behind"),
                      r.get("jhmdb_head")):
                cells.append(f"{d['covered90']}/{d['covered50']} of {d['n']}" if d else "-")
            print(f"{r['name']:22s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>18s}")
    if missed_all:
        print(f"\nface-frames every row missed: {missed_all['n']} of {n_faces}; by size {missed_all['by_size']}")

    import cv2
    import deface

    import anonface

    out = {
        "benchmark": "bench_recall",
        "seed": args.seed,
        "quick": args.quick,
        "composites": {"segments": [{"clip": c, "first_frame": s, "frames": n_frames} for c, s in segs],
                       "size": [width, height], "frames": n_frames * len(segs), "tracks": n_tracks,
                       "faces": n_faces, "lfw_face_box": LFW_FACE_BOX, "patch_scale": PATCH_SCALE,
                       "covered_if_inside": COVERED, "min_blend_weight": MIN_WEIGHT, "input_clipped_to": CLIP_MAX},
        "missed_by_every_row": missed_all,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "note": "recall only; no timing is measured (the CPU was shared with other jobs)"},
        "versions": {"anonface": anonface.__version__, "deface": deface.__version__, "opencv": cv2.__version__},
        "commit": _commit(),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2, default=float))
    plot(out, plot_path)
    print(f"wrote {out_path} and {plot_path} ({out['seconds_total']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
