#!/usr/bin/env python
"""Fit the composite anonymizer (``anonface.models.composite``) to training photos and write it.

From the colour LFW photos of the shared data (``faces_color_context/lfw_250_color``), identities of
the held-out folds of ``lfw_pairs/pairs.txt`` removed (the evaluation measures on them), at most
``--per-identity`` photos per person: each photo is cropped to the pipeline's face box (CenterFace's
box enlarged with mask_scale 1.3, as the learned M trains), photos whose box holds the alignment's
black wedges are skipped, and the crop's *detail* is its grey level minus that of its own smooth
12x12 mosaic. The model is the mean detail and the top principal components of the details, scaled
by their standard deviations (times ``--spread``) and faded out beyond the face (:func:`window`): a few hundred KiB of
fp16, no photo in it (a mean over a thousand people and directions of variation among them).

    python tools/build_composite.py --out anonface/weights/composite.pt [--components 96 --gain 1.5 --spread 1.3] [--align]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from anonface.data.faces import FaceBank, crop_boxes
from anonface.data.lfw import data_root, list_identities, pair_fold, read_pairs
from anonface.models.composite import CompositeConfig, CompositeFace, mosaic_features, save_composite
from anonface.models.mosaic import smooth_cells
from anonface.train.datasets import _without_wedges, photo_landmarks


def window(size: int, lo: float, hi: float) -> torch.Tensor:
    """``[S, S]``: 1 within radius ``lo`` of the crop's centre (1 = half the crop), 0 beyond ``hi``,
    smooth between. The face (the detector's box, 1/1.6 of the crop) lies inside ``lo``; beyond it
    the components hold the outlines of other people's hair and shoulders, which showed as pale
    ghost outlines around the drawn face."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    t = ((hi - r) / (hi - lo)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def fit_predict(features: torch.Tensor, weights: torch.Tensor, ridge: float = 1.0, holdout: int = 5,
                ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Ridge regression of standardised component ``weights [N, k]`` on mosaic ``features [N, F]``:
    ``(predict [k, F], residual sd [k], held-out R^2 [k])``, the R^2 from every ``holdout``-th photo
    left out of a first fit."""
    def solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ b)

    a, b = features.double(), weights.double()
    out = torch.arange(len(a)) % holdout == 0
    if int(out.sum()) >= 2 and int((~out).sum()) >= 1:
        pred = a[out] @ solve(a[~out], b[~out])
        r2 = 1 - ((pred - b[out]) ** 2).mean(0) / b[out].var(0).clamp_min(1e-12)
    else:  # too few photos to leave some out
        r2 = torch.full((b.shape[1],), float("nan"), dtype=torch.float64)
    w = solve(a, b)
    resid = (a @ w - b).std(0)
    return w.T.float(), resid.float(), [round(float(v), 3) for v in r2]


def align_details(det: torch.Tensor, boxes: torch.Tensor, points: np.ndarray) -> tuple[torch.Tensor, int]:
    """Each photo's detail ``det [N, S, S]`` (of the crop ``boxes [N, 4]``) moved so that its landmarks
    ``points [N, 10]`` land on :data:`anonface.render.CANONICAL_LANDMARKS`: the inverse of the map the
    renderer draws with, so the mean and components hold the features where the renderer expects
    them, not blurred by where each photo has them. Photos without landmarks, or that the renderer
    would fade (turned away), stay as they are. Returns the details and how many were moved."""
    import torch.nn.functional as F

    from anonface.render import align_to_landmarks, inverse_maps

    rois = np.concatenate([np.zeros((len(boxes), 1), np.float32), boxes.numpy().astype(np.float32)], 1)
    theta, weight = align_to_landmarks(rois, points)
    inv = inverse_maps(torch.from_numpy(theta).double()).numpy()
    move = (weight == 1.0) & ~np.all(np.isclose(theta, np.eye(2, 3)), axis=(1, 2))
    inv[~move] = np.eye(2, 3)
    grid = F.affine_grid(torch.from_numpy(inv).to(det.dtype), [len(det), 1, *det.shape[-2:]], align_corners=False)
    out = F.grid_sample(det[:, None], grid, mode="bicubic", padding_mode="border", align_corners=False)[:, 0]
    keep = torch.from_numpy(~move)[:, None, None]
    return torch.where(keep, det, out), int(move.sum())


def fit(data: Path, components: int, gain: float, heldout_folds: list[int], per_identity: int,
        spread: float = 1.3, crop_size: int = 64, cells: int = 12, win: tuple[float, float] = (0.6, 0.85),
        predicted: int = 0, align: bool = False) -> tuple[CompositeFace, dict[str, object]]:
    """The model and what it was fitted on (for the checkpoint's meta)."""
    held: set[str] = set()
    for p in pair_fold(read_pairs(data / "lfw_pairs" / "pairs.txt"), heldout_folds):
        held.update([p.name1, p.name2])
    people = {n: ps for n, ps in list_identities(data / "faces_color_context" / "lfw_250_color").items()
              if n not in held}
    items = [(q, 0) for n in sorted(people) for q in sorted(people[n])[:per_identity]]
    imgs, boxes = FaceBank.load_lfw(items, size=250, gray=False, geometry="pipeline")
    keep = _without_wedges(imgs, boxes, 0.01)
    imgs, boxes = imgs[keep], boxes[keep]
    with torch.no_grad():
        x = crop_boxes(imgs.float() / 127.5 - 1, boxes, crop_size)
        det = (x - smooth_cells(x, cells)).mean(1)  # grey-level detail [N, S, S]
        moved = 0
        if align:
            det, moved = align_details(det, boxes, photo_landmarks(imgs))
        mean = det.mean(0)
        centred = (det - mean).flatten(1)
        _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
        sd = sv / (centred.shape[0] - 1) ** 0.5
        predict = scale = None
        r2: list[float] = []
        predicted = min(predicted, components)
        if predicted > 0:
            # the first `predicted` components' standardised weights of each photo's own detail,
            # predicted from its own mosaic; the code draws what the mosaic leaves open, with the
            # spread it leaves, and the other components as before
            n = predicted
            own = centred @ vh[:n].T / sd[:n].clamp_min(1e-12)
            pred_n, resid, r2 = fit_predict(mosaic_features(x, cells), own)
            predict = torch.zeros(components, pred_n.shape[1])
            predict[:n] = pred_n
            scale = torch.full((components,), spread)
            scale[:n] = spread * resid
            comps = (vh[:components] * sd[:components, None]).view(-1, crop_size, crop_size)
        else:
            comps = (vh[:components] * (spread * sd[:components, None])).view(-1, crop_size, crop_size)
        w = window(crop_size, *win)
        mean, comps = mean * w, comps * w
    cfg = CompositeConfig(crop_size=crop_size, degrade_cells=cells, gain=gain)
    meta = {
        "photos": int(keep.sum()), "people": len({q.parent.name for (q, _), k in zip(items, keep.tolist()) if k}),
        "source": "faces_color_context/lfw_250_color (deep-funneled colour LFW)",
        "heldout_folds_excluded": list(heldout_folds), "per_identity": per_identity,
        "explained_variance": float((sv[:components] ** 2).sum() / (sv**2).sum()), "window": list(win),
        "spread": spread, "predicted_components": predicted, "aligned_photos": moved,
    }
    if predicted > 0:
        meta["heldout_r2"] = r2[:16]  # of the first 16 components' weights, from the mosaic
    return CompositeFace(mean, comps, cfg, predict, scale), meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default: $ANONFACE_DATA or ../shared/data)")
    ap.add_argument("--components", type=int, default=96)
    ap.add_argument("--gain", type=float, default=1.5, help="contrast of the drawn detail (default 1.5)")
    ap.add_argument("--spread", type=float, default=1.3,
                    help="how far the made-up people lie from the mean, in standard deviations of the "
                         "training faces along each component (default 1.3)")
    ap.add_argument("--predicted", type=int, default=0,
                    help="the first N components' weights predicted from the face's own mosaic (its pose "
                         "and light), the rest drawn by the code (default 0: all drawn)")
    ap.add_argument("--align", action="store_true",
                    help="move each photo's detail onto the renderer's canonical landmarks before fitting")
    ap.add_argument("--heldout-folds", type=int, nargs="+", default=[5, 6])
    ap.add_argument("--per-identity", type=int, default=5)
    args = ap.parse_args(argv)
    data = args.data or data_root()
    if data is None or not (data / "faces_color_context").is_dir():
        print("the shared data folder (faces_color_context, lfw_pairs) is not here; pass --data", file=sys.stderr)
        return 2
    if args.components < 0 or args.per_identity < 1 or args.predicted < 0:
        print("--components and --predicted must be >= 0 and --per-identity >= 1", file=sys.stderr)
        return 2
    try:
        CompositeConfig(gain=args.gain).validate()
    except ValueError as exc:
        print(f"--gain: {exc}", file=sys.stderr)
        return 2
    if not (0 < args.spread <= 10):  # also refuses NaN
        print(f"--spread must be a number in (0, 10], got {args.spread}", file=sys.stderr)
        return 2
    model, meta = fit(data, args.components, args.gain, args.heldout_folds, args.per_identity, args.spread,
                      predicted=args.predicted, align=args.align)
    save_composite(model, args.out, meta=meta)
    print(f"{args.out}: {meta}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
