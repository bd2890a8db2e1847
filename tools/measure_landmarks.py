#!/usr/bin/env python
"""Measure where CenterFace's five landmarks sit in the pipeline's face crop on LFW training photos.

The model methods (``learned``, ``composite``) draw a face in a square crop of the face box enlarged
with ``mask_scale`` 1.3 (``anonface.render.scale_boxes``). Both were fitted on LFW photos, nearly all
frontal and upright, so they draw the eyes, nose and mouth where these photos have them on average.
At inference the renderer moves the drawn features to the face's own landmarks
(``anonface.render.align_to_landmarks``), mapping these average positions onto them; this script
measures the average: CenterFace (``landmarks=True``, threshold 0.2, the detection nearest the image
centre, as the evaluation picks it) on the colour LFW photos of training identities (the held-out
folds 5-6 of ``lfw_pairs/pairs.txt`` left out), each landmark relative to its enlarged box (0 = the
box's left / top edge, 1 = its right / bottom edge). The constant
:data:`anonface.render.CANONICAL_LANDMARKS` comes from its output.

    python tools/measure_landmarks.py [--n 600] [--seed 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def relative_landmarks(dets: np.ndarray, mask_scale: float = 1.3) -> np.ndarray:
    """``[K, 5, 2]``: the landmarks of ``[K, 15]`` detections relative to their boxes enlarged by
    ``mask_scale`` (the crop the model methods draw in)."""
    from anonface.render import scale_boxes

    big = scale_boxes(dets[:, :4], mask_scale)
    pts = dets[:, 5:15].reshape(-1, 5, 2)
    size = np.stack([big[:, 2] - big[:, 0], big[:, 3] - big[:, 1]], 1)[:, None]
    return (pts - big[:, None, :2]) / size


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=600, help="photos sampled (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be >= 1")
    from anonface.boxes import central_index
    from anonface.data.lfw import data_root, list_identities, pair_fold, read_image, read_pairs
    from anonface.detect import CenterFace

    root = data_root()
    if root is None:
        print("no shared data folder (set ANONFACE_DATA)", file=sys.stderr)
        return 2
    pairs = read_pairs(root / "lfw_pairs" / "pairs.txt")
    held = {n for p in pair_fold(pairs, [5, 6]) for n in (p.name1, p.name2)}
    people = list_identities(root / "faces_color_context" / "lfw_250_color")
    files = [q for name, paths in people.items() if name not in held for q in paths]
    rng = np.random.default_rng(args.seed)
    pick = [files[i] for i in sorted(rng.choice(len(files), min(args.n, len(files)), replace=False))]
    det = CenterFace(0.2, backend="opencv", landmarks=True)
    rel, missed = [], 0
    for p in pick:
        rgb = read_image(p)
        d = det.detect(rgb[None])[0]
        k = central_index(d, *rgb.shape[:2])
        if k is None:
            missed += 1
            continue
        rel.append(relative_landmarks(d[[k]])[0])
    if not rel:
        print("CenterFace found no face in any photo", file=sys.stderr)
        return 1
    arr = np.stack(rel)  # [N, 5, 2]
    mean, sd = arr.mean(0), arr.std(0)
    names = ("eye (image left)", "eye (image right)", "nose tip", "mouth (image left)", "mouth (image right)")
    print(f"{len(pick)} photos, {missed} without a detection; landmarks relative to the 1.6x box (x, y):")
    for name, m, s in zip(names, mean, sd):
        print(f"  {name:<20} {m[0]:.4f} {m[1]:.4f}   (sd {s[0]:.4f} {s[1]:.4f})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"photos": len(pick), "no_detection": missed,
                                         "mean": mean.round(4).tolist(), "sd": sd.round(4).tolist()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
