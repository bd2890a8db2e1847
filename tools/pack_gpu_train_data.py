#!/usr/bin/env python
"""Copy the training faces (and nothing held out) into a folder small enough to travel to a lent GPU
machine, in the layout `anonface train` reads, so a config runs there unchanged with
``ANONFACE_DATA=<folder>``.

What is copied, from the shared data folder (``$ANONFACE_DATA`` or ``../shared/data``):

* ``lfw_pairs/pairs.txt`` and, of the identities in the train folds, their 250x250 gray images and
  their 112x112 colour crops (the crops re-encoded as JPEG quality 75: a third of the bytes);
* ``lfw_identities_extra`` minus every identity of the held-out folds;
* ``jhmdb_sample`` (the action clip of the paper's detector term).

Identities of the held-out folds are left out entirely (their images are what the evaluation measures
on), and the folder must never enter the repository: the data is research-only. The device tool's
working tree limit is 64 MiB, repository included; the script prints the total and exits 1 when
``--max-mb`` is exceeded.

    python tools/pack_gpu_train_data.py --out .gpudata/train_data [--train-folds 1 2 3 4 --heldout-folds 5 6]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import cv2

from anonface.data.lfw import data_root, list_identities, pair_fold, read_pairs

#: Written into every packed folder; a folder without it is never deleted to be packed again.
MARKER = "PACKED_BY_ANONFACE"


def pack(src: Path, out: Path, train_folds: list[int], heldout_folds: list[int], colour_quality: int = 75) -> int:
    """Write the folder; returns its size in bytes.

    Raises:
        ValueError: folds that overlap or are not in the pairs file, or an ``out`` that would replace
            anything but an earlier packed folder (a non-empty folder without the marker, a file) or
            lie inside the data it copies from.
    """
    pairs = read_pairs(src / "lfw_pairs" / "pairs.txt")
    have = {p.fold for p in pairs}
    if set(train_folds) & set(heldout_folds):
        raise ValueError(f"train folds {train_folds} and held-out folds {heldout_folds} overlap")
    missing = sorted((set(train_folds) | set(heldout_folds)) - have)
    if missing:
        raise ValueError(f"folds {missing} are not in the pairs file (it has {sorted(have)})")
    out_r, src_r = out.resolve(), src.resolve()
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise ValueError(f"{out} overlaps the data folder {src}")
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink() or (any(out.iterdir()) and not (out / MARKER).is_file()):
            raise ValueError(f"{out} exists and is not a folder this tool packed; give a new or empty folder")
        shutil.rmtree(out)
    heldout = {n for p in pair_fold(pairs, heldout_folds) for n in (p.name1, p.name2)}
    train = {n for p in pair_fold(pairs, train_folds) for n in (p.name1, p.name2)} - heldout
    (out / "lfw_pairs").mkdir(parents=True)
    (out / MARKER).write_text("training faces for benchmarks/gpu_train.sh; research-only data: never commit\n")
    shutil.copy2(src / "lfw_pairs" / "pairs.txt", out / "lfw_pairs" / "pairs.txt")
    for name in sorted(train):
        for q in sorted((src / "lfw_pairs" / "images_250_gray" / name).glob("*.jpg")):
            d = out / "lfw_pairs" / "images_250_gray" / name
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy2(q, d / q.name)
        for q in sorted((src / "lfw_pairs" / "aligned_112_color" / name).glob("*.jpg")):
            d = out / "lfw_pairs" / "aligned_112_color" / name
            d.mkdir(parents=True, exist_ok=True)
            img = cv2.imread(str(q), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"unreadable image {q}")
            cv2.imwrite(str(d / q.name), img, [cv2.IMWRITE_JPEG_QUALITY, colour_quality])
    for name, paths in list_identities(src / "lfw_identities_extra").items():
        if name in heldout:
            continue
        d = out / "lfw_identities_extra" / name
        d.mkdir(parents=True, exist_ok=True)
        for q in paths:
            shutil.copy2(q, d / q.name)
    shutil.copytree(src / "jhmdb_sample", out / "jhmdb_sample", ignore=shutil.ignore_patterns("frames_mmpose"))
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-folds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--heldout-folds", type=int, nargs="+", default=[5, 6])
    ap.add_argument("--max-mb", type=float, default=58.0, help="refuse a folder larger than this (default 58)")
    args = ap.parse_args(argv)
    if not (math.isfinite(args.max_mb) and args.max_mb > 0):
        ap.error(f"--max-mb must be a positive number of MiB, got {args.max_mb}")
    src = data_root()
    if src is None:
        print("no shared data folder (set ANONFACE_DATA)", file=sys.stderr)
        return 2
    try:
        size = pack(src, args.out, args.train_folds, args.heldout_folds)
    except ValueError as exc:
        print(f"pack_gpu_train_data: {exc}", file=sys.stderr)
        return 2
    mb = size / 2**20
    print(f"wrote {args.out}: {mb:.1f} MiB")
    if mb > args.max_mb:
        print(f"larger than --max-mb {args.max_mb}: it will not travel with the working tree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
