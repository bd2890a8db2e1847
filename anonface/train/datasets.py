"""Build the training data of a :class:`TrainConfig` (faces for M and D, action frames for A)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anonface.data.actions import ActionSet, load_action_json, load_jhmdb
from anonface.data.faces import FaceBank
from anonface.data.lfw import FACE_BOX_GEOMETRIES, data_root, list_identities, pair_fold, read_pairs
from anonface.data.synthetic import synthetic_actions, synthetic_faces
from anonface.train.config import DataConfig
from anonface.train.trainer import TrainData

logger = logging.getLogger(__name__)

__all__ = ["align_photos", "build_train_data", "load_actions", "photo_landmarks"]


def _resolve(root: Path | None, p: str) -> Path:
    q = Path(p)
    if q.is_absolute() or root is None:
        return q
    return root / q


def load_actions(spec: str, root: Path | None = None) -> ActionSet:
    """A JHMDB clip (``.avi``, joints beside it), a JHMDB folder (first clip in it) or a JSON file."""
    p = _resolve(root, spec)
    if p.is_dir():
        clips = sorted(p.glob("*.avi"))
        if not clips:
            raise FileNotFoundError(f"no .avi clip in {p}")
        p = clips[0]
    if p.suffix.lower() == ".json":
        return load_action_json(p)
    return load_jhmdb(p)


def _without_wedges(imgs: torch.Tensor, boxes: torch.Tensor, max_share: float) -> torch.Tensor:
    """Which images ``[N, C, H, W]`` uint8 hold at most ``max_share`` pure-black pixels (every channel
    < 10) inside their box ``[N, 4]``."""
    keep = torch.ones(len(imgs), dtype=torch.bool)
    h, w = imgs.shape[-2:]
    for i, (img, b) in enumerate(zip(imgs, boxes.tolist())):
        x1, y1 = max(int(b[0]), 0), max(int(b[1]), 0)
        x2, y2 = min(int(round(b[2])), w), min(int(round(b[3])), h)
        region = img[:, y1:y2, x1:x2]
        if region.numel() == 0:
            keep[i] = False
            continue
        black = (region.amax(dim=0) < 10).float().mean().item()
        keep[i] = black <= max_share
    return keep


def photo_landmarks(imgs: torch.Tensor) -> np.ndarray:
    """``[N, 10]``: CenterFace's five landmarks (threshold 0.2, the detection nearest the centre) of
    each photo ``imgs [N, C, H, W]`` uint8 (one grey channel or RGB); NaN where it finds no face."""
    from anonface.boxes import central_index
    from anonface.detect import CenterFace

    det = CenterFace(0.2, backend="opencv", landmarks=True)
    out = np.full((len(imgs), 10), np.nan, np.float32)
    h, w = imgs.shape[-2:]
    for i, im in enumerate(imgs.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()):
        d = det.detect(np.ascontiguousarray(im)[None])[0]
        k = central_index(d, h, w)
        if k is not None:
            out[i] = d[k, 5:15]
    return out


def align_photos(imgs: torch.Tensor, boxes: torch.Tensor,
                 points: np.ndarray | None = None) -> tuple[torch.Tensor, int]:
    """Each photo ``imgs [N, C, H, W]`` uint8 moved (rotation, uniform scale, shift) so that its face's
    five landmarks land, inside its crop box ``boxes [N, 4]``, on
    :data:`anonface.render.CANONICAL_LANDMARKS`: the inverse of the map
    :func:`anonface.render.align_to_landmarks` gives the renderer, so a model trained on these crops
    draws its features where an aligned renderer reads them. ``points [N, 10]`` the landmarks (None:
    :func:`photo_landmarks`). Photos without landmarks, or whose fit is not usable, stay as they are.
    Returns the photos and how many were moved."""
    from anonface.render import align_to_landmarks, inverse_maps

    if points is None:
        points = photo_landmarks(imgs)
    b = boxes.double().numpy()
    rois = np.concatenate([np.zeros((len(b), 1)), b], 1)
    theta, _ = align_to_landmarks(rois, points)
    move = ~np.all(np.isclose(theta, np.eye(2, 3)), axis=(1, 2))
    if not move.any():
        return imgs, 0
    inv = inverse_maps(torch.from_numpy(theta).double()).numpy()
    inv_lin, inv_t = inv[:, :, :2], inv[:, :, 2:]  # canonical -> the photo, in the box's [-1, 1] units
    # in the photo's own [-1, 1] units (affine_grid, align_corners=False): p = c + s * u
    h, w = imgs.shape[-2:]
    c = np.stack([(b[:, 0] + b[:, 2]) / w - 1, (b[:, 1] + b[:, 3]) / h - 1], 1)[:, :, None]
    s = np.stack([(b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1)
    a = s[:, :, None] * inv_lin / s[:, None, :]
    shift = c + s[:, :, None] * inv_t - a @ c
    m = torch.from_numpy(np.concatenate([a, shift], 2)[move]).float()
    sel = torch.from_numpy(np.nonzero(move)[0])
    src = imgs[sel].float()
    grid = F.affine_grid(m, list(src.shape), align_corners=False)
    moved = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = imgs.clone()
    out[sel] = moved.round().clamp(0, 255).to(imgs.dtype)
    return out, int(move.sum())


def build_train_data(cfg: DataConfig, seed: int = 0) -> TrainData:
    """Faces from the identity folders and the LFW train folds (held-out identities removed), and actions.

    Identities of ``heldout_folds`` (both sides of every pair) never enter the bank, so measurements
    on those folds judge faces the networks never saw.
    """
    if cfg.face_box not in FACE_BOX_GEOMETRIES:
        raise ValueError(f"data.face_box must be one of {FACE_BOX_GEOMETRIES}, got {cfg.face_box!r}")
    if not 0.0 <= cfg.max_black_share <= 1.0:  # also refuses NaN
        raise ValueError(f"data.max_black_share must be in [0, 1], got {cfg.max_black_share!r}")
    if cfg.synthetic:
        if cfg.align:  # silently training an aligned M on unmoved blobs would ship a model drawn in the wrong frame
            raise ValueError("data.align moves photos by their faces' landmarks; the synthetic faces have none "
                             "(use data.synthetic with data.align: false and anonymizer.aligned: false)")
        bank = FaceBank()
        imgs, boxes, labels = synthetic_faces(cfg.synthetic_identities, cfg.synthetic_images, 64, seed)
        bank.add(imgs, boxes, labels)
        bank.names = [f"id{i}" for i in range(cfg.synthetic_identities)]
        acts = synthetic_actions(8, 3, 96, 128, seed) if cfg.action else None
        return TrainData(bank, acts, [])
    root = data_root()
    heldout: set[str] = set()
    pairs = None
    if cfg.lfw_pairs:
        lp = _resolve(root, cfg.lfw_pairs)
        pairs = read_pairs(lp / "pairs.txt")
        for p in pair_fold(pairs, cfg.heldout_folds):
            heldout.update([p.name1, p.name2])
    per_name: dict[str, list[tuple[Path, int]]] = {}
    for r in cfg.identity_roots:
        for name, paths in list_identities(_resolve(root, r)).items():
            if name not in heldout:
                per_name.setdefault(name, []).extend((q, 0) for q in paths)
    colour: list[tuple[Path, str]] = []
    if pairs is not None:
        lp = _resolve(root, cfg.lfw_pairs or "")
        train_names: set[str] = set()
        for p in pair_fold(pairs, cfg.train_folds):
            train_names.update([p.name1, p.name2])
        train_names -= heldout
        for name in sorted(train_names):
            d = lp / "images_250_gray" / name
            have = {q.name for q, _ in per_name.get(name, [])}
            for q in sorted(d.glob("*.jpg")):
                if q.name not in have:
                    per_name.setdefault(name, []).append((q, 0))
            for q in sorted((lp / "aligned_112_color" / name).glob("*.jpg")):
                colour.append((q, name))
    if cfg.colour_roots:  # colour photos with their surroundings replace the tight aligned crops
        colour = [(q, name) for r in cfg.colour_roots
                  for name, paths in list_identities(_resolve(root, r)).items() if name not in heldout
                  for q in paths]
    labelled = sorted(n for n, v in per_name.items() if len(v) >= cfg.min_images)
    label_of = {n: i for i, n in enumerate(labelled)}
    items = [(q, label_of.get(n, -1)) for n in sorted(per_name) for q, _ in per_name[n]]
    bank = FaceBank()
    n_colour = 0  # colour faces in the bank
    imgs, boxes = FaceBank.load_lfw(items, size=cfg.image_size, gray=True, geometry=cfg.face_box)
    if cfg.align:
        imgs, moved = align_photos(imgs, boxes)
        logger.info("grey photos moved onto the canonical landmarks: %d of %d", moved, len(imgs))
    bank.add(imgs, boxes, torch.tensor([lab for _, lab in items]), share=1.0 - cfg.colour_share)
    if colour and cfg.colour_share > 0:
        citems = [(q, label_of.get(n, -1)) for q, n in colour]
        if cfg.colour_roots:
            cimgs, cboxes = FaceBank.load_lfw(citems, size=cfg.image_size, gray=False, geometry=cfg.face_box)
            keep = _without_wedges(cimgs, cboxes, cfg.max_black_share)
            logger.info("colour photos: %d of %d kept (the rest hold the alignment's black wedges in the crop)",
                        int(keep.sum()), len(citems))
            cimgs, cboxes = cimgs[keep], cboxes[keep]
            citems = [c for c, k in zip(citems, keep.tolist()) if k]
        else:
            cimgs, cboxes = FaceBank.load_aligned(citems, geometry=cfg.face_box)
        if cfg.align:
            cimgs, moved = align_photos(cimgs, cboxes)
            logger.info("colour photos moved onto the canonical landmarks: %d of %d", moved, len(cimgs))
        bank.add(cimgs, cboxes, torch.tensor([lab for _, lab in citems]), share=cfg.colour_share)
        n_colour = len(citems)
    bank.names = labelled
    logger.info("faces: %d gray images, %d colour faces, %d labelled identities, %d held-out identities excluded",
                len(items), n_colour, len(labelled), len(heldout))
    acts = load_actions(cfg.action, root).resized(cfg.action_size) if cfg.action else None
    return TrainData(bank, acts, sorted(heldout))
