#!/usr/bin/env python
"""RoI pooling speed: anonface's kernels vs the pure-PyTorch reference vs torchvision.ops.

Detector-sized inputs (features [2, 256, 50, 76], i.e. a stride-16 map of an 800x1216 image, and
128-1024 rois). Forward and forward+backward medians, and each baseline's time divided by ours
(ratio > 1: we are faster). Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/bench_roi.py [--device cpu|cuda] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, print_table, time_interleaved, write_json  # noqa: E402

import anonface  # noqa: E402
from anonface.ops import roi_align, roi_pool  # noqa: E402
from anonface.ops.roi_reference import roi_align_reference  # noqa: E402

try:
    import torchvision.ops as tvops  # type: ignore

    HAVE_TV = True
except Exception:  # noqa: BLE001 - any import failure means "not available"
    tvops = None
    HAVE_TV = False


def make_rois(k: int, n: int, img_h: float, img_w: float, device: str, gen: torch.Generator) -> torch.Tensor:
    """Boxes like a detector's proposals: sizes 16..~400 px, anywhere in the image."""
    size = torch.exp(torch.rand(k, 2, generator=gen) * (torch.log(torch.tensor(400.0)) - torch.log(torch.tensor(16.0)))) * 16.0
    cx = torch.rand(k, generator=gen) * img_w
    cy = torch.rand(k, generator=gen) * img_h
    b = torch.randint(0, n, (k,), generator=gen).float()
    boxes = torch.stack([b, cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2], 1)
    return boxes.to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    ap.add_argument("--out", type=Path, default=None, help="directory for the JSON file")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--no-reference", action="store_true", help="skip the (slow) pure-PyTorch reference")
    args = ap.parse_args()
    dev = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(torch.seed() % 2**31)  # fresh inputs each run
    n, c, h, w, scale = 2, 256, 50, 76, 1.0 / 16
    feats = torch.randn(n, c, h, w, generator=gen).to(dev)
    ks = [128, 512] if args.quick else [128, 512, 1024]
    repeat = 5 if args.quick else 15
    rows = []
    for op in ("roi_align", "roi_pool"):
        for k in ks:
            rois = make_rois(k, n, h / scale, w / scale, dev, gen)
            grad = torch.randn(k, c, 7, 7, generator=gen).to(dev)
            x = feats.clone().requires_grad_(True)
            if op == "roi_align":
                impls = {"anonface": lambda t: roi_align(t, rois, 7, scale, -1, True)}
                if not args.no_reference and k <= 512:
                    impls["reference"] = lambda t: roi_align_reference(t, rois, scale, 7, 7, -1, True)
                if HAVE_TV:
                    impls["torchvision"] = lambda t: tvops.roi_align(t, rois, 7, scale, -1, True)
            else:
                impls = {"anonface": lambda t: roi_pool(t, rois, 7, scale)}
                if HAVE_TV:
                    impls["torchvision"] = lambda t: tvops.roi_pool(t, rois, 7, scale)
            def no_grad_call(fn):
                def run():
                    with torch.no_grad():
                        fn(x)

                return run

            def fwd_bwd_call(fn):
                def run():
                    x.grad = None
                    fn(x).backward(grad)

                return run

            fwd = time_interleaved({k: no_grad_call(f) for k, f in impls.items()}, dev, repeat=repeat)
            fb = time_interleaved({k: fwd_bwd_call(f) for k, f in impls.items()}, dev, repeat=repeat)
            res = {k: (fwd[k], fb[k]) for k in impls}
            ours_f, ours_fb = res["anonface"]
            for name, (fwd, fb) in res.items():
                rows.append(
                    {
                        "op": op,
                        "rois": k,
                        "impl": name,
                        "fwd_ms": fwd["median_ms"],
                        "fwd+bwd_ms": fb["median_ms"],
                        "fwd_ratio": fwd["median_ms"] / ours_f["median_ms"],
                        "fwd+bwd_ratio": fb["median_ms"] / ours_fb["median_ms"],
                        "fwd_p10_p90": [fwd["p10_ms"], fwd["p90_ms"]],
                        "fb_p10_p90": [fb["p10_ms"], fb["p90_ms"]],
                    }
                )
    print(f"RoI pooling on {dev}: features [{n}, {c}, {h}, {w}], 7x7, spatial_scale 1/16, aligned")
    print("ratio = that implementation's median time / anonface's (> 1: anonface is faster)\n")
    print_table(rows, ["op", "rois", "impl", "fwd_ms", "fwd_ratio", "fwd+bwd_ms", "fwd+bwd_ratio"])
    payload = {
        "benchmark": "roi",
        "device": dev,
        "machine": machine_info(),
        "anonface_build": anonface.build_info(),
        "torchvision": getattr(sys.modules.get("torchvision"), "__version__", None),
        "features": [n, c, h, w],
        "rows": rows,
    }
    path = write_json(f"roi_{'cuda' if dev.startswith('cuda') else 'cpu'}.json", payload, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
