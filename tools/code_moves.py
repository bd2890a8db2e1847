#!/usr/bin/env python
"""How the learned anonymizer (``correction: code``) moves each face's made-up person.

M draws the composite's face for the code ``z + dz``, with ``z`` the track's random code and ``dz`` what
it reads from the face (bounded to ``correction_max`` per component). This runs the held-out LFW fold
(images of ``lfw_pairs``, research data: nothing is written) through ``anonface.Anonymizer`` with the
shipped (or given) checkpoint, catches ``z`` and ``dz`` on the way, and prints: the lengths of the
track's codes and of the codes drawn (``z + dz``, scaled back to ``|z|`` with ``code_length: keep``), the share of ``dz`` common to every face, how far apart the codes of different faces
lie before and after, and the share of components at their bound. Whether M pulls everybody towards one
person (a large common share, codes closer together) or pushes them apart shows here.

    python tools/code_moves.py [--fold 6] [--n 200] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fold", type=int, default=6)
    p.add_argument("--n", type=int, default=200, help="first images of the fold's pairs (default 200)")
    p.add_argument("--checkpoint", default=None, help="an anonymizer with correction: code (default: shipped)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = p.parse_args(argv[1:])
    import cv2

    import anonface
    from anonface.eval.data import read_pairs
    from anonface.models.anonymizer import FaceAnonymizer

    lfw = args.data / "lfw_pairs"
    if not (lfw / "pairs.txt").is_file():
        print(f"no LFW pairs under {lfw}: nothing to measure", file=sys.stderr)
        return 2
    refs = sorted({q.first for q in read_pairs(lfw / "pairs.txt") if q.fold == args.fold})[: args.n]
    caught: dict[str, list[torch.Tensor]] = {"z": [], "dz": []}
    model = None
    for i, ref in enumerate(refs):
        # a seed per image: each image's faces get codes of their own, as different tracks do
        anon = anonface.Anonymizer(method="learned", checkpoint=args.checkpoint, temporal_smoothing=0,
                                   device="cpu", seed=i)
        models = [m for m in anon.model.modules() if isinstance(m, FaceAnonymizer)]  # type: ignore[union-attr]
        if len(models) != 1 or models[0].config.correction != "code":
            print("the checkpoint is not an anonymizer with correction: code", file=sys.stderr)
            return 2
        model = models[0]
        model.register_forward_pre_hook(lambda _m, a: caught["z"].append(a[1].detach().float()))
        model.code_head.register_forward_hook(lambda _m, _a, out: caught["dz"].append(out.detach().float()))
        img = cv2.imread(str(ref.path(lfw / "images_250_gray")))
        anon(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None])
    assert model is not None
    # every face M drew (the LFW subjects and the people behind them; faint boxes get the mosaic only)
    z = torch.cat(caught["z"])
    cmax = float(model.config.correction_max)
    dz = model.code_move(torch.cat(caught["dz"]))  # the bounded move
    moved = model.drawn_code(z, dz)  # the code drawn (z + dz; scaled back to |z| with keep)

    def apart(c: torch.Tensor) -> float:
        d = torch.cdist(c, c)
        return float(d[~torch.eye(len(c), dtype=torch.bool)].mean())

    common = float(dz.mean(0).norm() ** 2 / (dz.norm(dim=1) ** 2).mean())
    print(f"{len(z)} faces in {len(refs)} images of fold {args.fold}, latent_dim {z.shape[1]}, correction_max {cmax}, "
          f"code_length {model.config.code_length}")
    print(f"|z| {float(z.norm(dim=1).mean()):.2f}   |drawn| {float(moved.norm(dim=1).mean()):.2f}   "
          f"|dz| {float(dz.norm(dim=1).mean()):.2f}")
    print(f"share of dz common to all faces: {common:.3f}")
    print(f"mean distance between faces' codes: z {apart(z):.2f}   drawn {apart(moved):.2f}")
    if cmax > 0:
        print(f"components within 10% of the bound: {float((dz.abs() > 0.9 * cmax).float().mean()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
