"""The whole pipeline on a GPU, stage by stage, on a 1080p clip.

Rows (frames per second, all on the same clip and the same run):

* ``decode``: PyAV decode to RGB numpy frames (CPU, what every end-to-end run pays);
* ``detect``: batched CenterFace in PyTorch on frames already on the GPU (network + the on-device
  decode of its maps; only candidate boxes cross to the host), float32 with cuDNN autotuning;
  ``detect_fp16`` the same network under ``torch.autocast(float16)`` (faces found are reported,
  as fp16 may change them);
* ``track``: the host-side tracker over the detections;
* ``kernels``: ``face_modify_`` (pixelate, in place) with the tracked, enlarged boxes;
* ``gpu_resident``: :class:`anonface.Anonymizer` ``stream`` over frames already on the GPU,
  outputs left there (detection, tracking and kernels together: the number the kernels and the
  detector own);
* ``transcode``: decode + encode with the default encoder and nothing else (the I/O floor);
* ``end_to_end``: :func:`anonface.anonymize_video` with ``device="cuda"`` (decode, upload,
  pipeline, download, encode in their threads).

Prints a table and writes JSON. Usage::

    python benchmarks/bench_gpu_pipeline.py [--video PATH] [--batch 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_commit, machine_info, save_results  # noqa: E402

import anonface  # noqa: E402
from anonface.detect.centerface import CenterFace  # noqa: E402
from anonface.ops import face_modify_  # noqa: E402
from anonface.pipeline import Anonymizer, scale_boxes  # noqa: E402
from anonface.track import FaceTracker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANONFACE_DATA", REPO.parent / "shared" / "data"))
CANDIDATES = [DATA / "action_videos" / "opera_arcade_pedestrians_walk.mp4",
              REPO / ".gpudata" / "opera_arcade_pedestrians_walk.mp4"]


def decode_all(path: Path) -> tuple[np.ndarray, float]:
    from anonface.io.video import VideoReader

    t0 = time.perf_counter()
    reader = VideoReader(str(path))
    frames = [f for f, _ in reader]
    reader.close()
    return np.stack(frames), time.perf_counter() - t0


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up, GPU synchronised."""
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def write_profile(fn, path: Path) -> None:
    """cProfile of one call of ``fn`` (host time; kernels show up where the host waits for them)."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    torch.cuda.synchronize()
    prof.disable()
    buf = io.StringIO()
    for key in ("cumulative", "tottime"):
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(30)
    path.write_text(buf.getvalue())
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=next((p for p in CANDIDATES if p.exists()), CANDIDATES[0]))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="pixelate")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pipeline_cuda.json")
    ap.add_argument("--profile", type=Path, default=None,
                    help="also profile one gpu_resident pass (cProfile, host side) into this text file")
    args = ap.parse_args(argv)
    if args.profile is not None and args.profile.resolve() == args.out.resolve():
        ap.error(f"--profile and --out are the same file {args.out}")
    if not (torch.cuda.is_available() and anonface.build_info()["has_cuda"]):
        print("needs a CUDA device and anonface built with CUDA kernels", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    frames_np, t_dec = decode_all(args.video)
    n, h, w = frames_np.shape[:3]
    rows: list[dict] = [{"stage": "decode", "seconds": t_dec, "fps": n / t_dec, "where": "CPU (PyAV)"}]
    frames = torch.from_numpy(frames_np).cuda()
    torch.cuda.synchronize()

    det = CenterFace(0.2, backend="torch", device="cuda", batch_size=args.batch)
    dets: list[np.ndarray] = []

    def detect() -> None:
        dets.clear()
        for s in range(0, n, args.batch):
            dets.extend(det.detect(frames[s : s + args.batch]))

    t = timed(detect, args.repeats)
    faces_fp32 = int(sum(len(d) for d in dets))
    rows.append({"stage": "detect", "seconds": t, "fps": n / t, "faces": faces_fp32,
                 "where": f"GPU, batch {args.batch}, fp32"})
    dets_fp32 = list(dets)

    def detect_fp16() -> None:
        with torch.autocast("cuda", dtype=torch.float16):
            detect()

    t = timed(detect_fp16, args.repeats)
    rows.append({"stage": "detect_fp16", "seconds": t, "fps": n / t, "faces": int(sum(len(d) for d in dets)),
                 "where": f"GPU, batch {args.batch}, autocast fp16"})

    tracked: list[np.ndarray] = []

    def track() -> None:
        tracked.clear()
        tr = FaceTracker()
        for d in dets_fp32:
            tracked.extend(b for _, b in tr.update(d))
        tracked.extend(b for _, b in tr.flush())

    t0 = time.perf_counter()
    track()
    t = time.perf_counter() - t0
    rows.append({"stage": "track", "seconds": t, "fps": n / t, "where": "CPU (numpy)"})

    rois = []
    for j, b in enumerate(tracked):
        if len(b):
            sb = scale_boxes(b, 1.3)
            rois.append(np.concatenate([np.full((len(sb), 1), j, np.float32), sb], 1))
    roi_t = torch.from_numpy(np.concatenate(rois)).cuda()
    work = frames.clone()

    def kernels() -> None:
        for s in range(0, n, args.batch):
            sel = (roi_t[:, 0] >= s) & (roi_t[:, 0] < s + args.batch)
            r = roi_t[sel].clone()
            r[:, 0] -= s
            face_modify_(work[s : s + args.batch], r, args.method, 8.0)

    t = timed(kernels, args.repeats)
    rows.append({"stage": "kernels", "seconds": t, "fps": n / t, "faces": int(len(roi_t)),
                 "where": f"GPU, face_modify_ {args.method}"})

    anon = Anonymizer(args.method, device="cuda", detector_options={"backend": "torch"}, batch_size=args.batch)
    outs: list[torch.Tensor] = []

    def resident() -> None:
        anon.reset()
        outs.clear()
        outs.extend(anon.stream(frames[i] for i in range(n)))

    t = timed(resident, args.repeats)
    assert outs[0].device.type == "cuda" and len(outs) == n
    if args.profile is not None:
        write_profile(resident, args.profile)
    rows.append({"stage": "gpu_resident", "seconds": t, "fps": n / t,
                 "where": "Anonymizer.stream, frames and outputs on the GPU"})

    from anonface.io.video import VideoReader, VideoWriter, encoder_settings

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        reader = VideoReader(str(args.video))
        info = reader.info
        writer = VideoWriter(os.path.join(tmp, "t.mp4"), width=info.width, height=info.height, fps=info.fps,
                             time_base=info.time_base, encoder=encoder_settings(None))
        for f, pts in reader:
            writer.write(f, pts)
        writer.close()
        reader.close()
        t = time.perf_counter() - t0
        rows.append({"stage": "transcode", "seconds": t, "fps": n / t, "where": "PyAV decode + encode only"})
        stats = anonface.anonymize_video(str(args.video), os.path.join(tmp, "a.mp4"), anonymizer=anon)
        rows.append({"stage": "end_to_end", "seconds": stats.seconds, "fps": stats.fps, "faces": stats.faces,
                     "where": "anonymize_video, device cuda"})

    print(f"{args.video.name}: {n} frames {w}x{h}; method {args.method}; {torch.cuda.get_device_name()}")
    print(f"{'stage':<14}{'fps':>10}{'seconds':>10}{'faces':>8}  where")
    for r in rows:
        print(f"{r['stage']:<14}{r['fps']:>10.1f}{r['seconds']:>10.3f}{r.get('faces', ''):>8}  {r['where']}")
    payload = {"benchmark": "gpu_pipeline", "video": args.video.name, "frames": n, "size": [w, h],
               "batch": args.batch, "method": args.method, "rows": rows, "machine": machine_info(),
               "anonface_build": anonface.build_info(), "git_commit": git_commit()}
    save_results(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
