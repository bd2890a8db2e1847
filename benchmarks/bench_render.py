"""Rendering a batch of frames at once against frame by frame, for the model methods on the CPU.

``anonface.Anonymizer`` renders in batches of ``batch_size`` frames. For the kernel methods the CPU
path goes frame by frame (a frame is anonymized in place; a batch would only add the copy it is
stacked into). A model method (``learned``, ``composite``) instead draws the faces of the whole batch
in network calls of up to ``anonface.render.CPU_DRAW_CHUNK`` faces, the faint boxes' mosaic frame group
by frame group. This benchmark times both ways side by side, round-robin in one run, on the shared
clips (``../shared/data/action_videos``, ``$ANONFACE_DATA``): a 1080p crowd (~12 sure faces and
~200 faint boxes a frame) and a 1080p clip of two people.

CenterFace runs once per clip (the first pass, :class:`bench_temporal.ReplayDetector`); the timed
passes replay its detections, so what is timed is the pipeline without detection: tracking, the
method, the paste. Both ways must give the same frames (checked on every clip: at most 1 level apart,
where a network's float sums round differently in a bigger call; ``max diff``, ``pixels differing``).
``ratio`` is the frame-by-frame time over the batched one (above 1: batching is faster).

Usage::

    python benchmarks/bench_render.py [--clips NAME ...] [--max-frames 32] [--methods learned composite]

Prints a table and writes JSON (machine, torch version, commit) to
``benchmarks/results/render_batch_cpu.json``. Skips with a message when the shared data is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py, bench_temporal.py
REPO = Path(__file__).resolve().parents[1]

from _common import RESULTS, machine_info, print_table, save_results, time_interleaved  # noqa: E402
from bench_temporal import ReplayDetector  # noqa: E402

DEFAULT_CLIPS = ["opera_arcade_pedestrians_walk.mp4", "two_people_hugging_1080p.mp4"]


def data_root() -> Path:
    return Path(os.environ.get("ANONFACE_DATA", REPO.parent / "shared" / "data"))


def bench_clip(path: Path, methods: list[str], max_frames: int, batch_size: int, repeat: int) -> list[dict]:
    from anonface.eval.speed import read_clip_frames
    from anonface.pipeline import Anonymizer

    frames = read_clip_frames(path, max_frames)
    # the pipeline's default detector with the landmarks a model method asks for, run once
    replay = ReplayDetector(Anonymizer("none", device="cpu", detector_options={"landmarks": True}).detector)
    rows = []
    for method in methods:
        outs: dict[str, np.ndarray] = {}
        fns = {}
        for way in ("frame by frame", "batched"):
            anon = Anonymizer(method, detector=replay, device="cpu", batch_size=batch_size)
            if way == "frame by frame":
                anon._render_per_frame = lambda: True  # the CPU path before batching
            assert anon._render_per_frame() == (way == "frame by frame")

            def run(anon=anon, way=way) -> None:
                anon.reset()
                outs[way] = anon(frames)

            fns[way] = run
        stats = time_interleaved(fns, "cpu", repeat=repeat, warmup=1)
        diff = np.abs(outs["frame by frame"].astype(np.int16) - outs["batched"].astype(np.int16))
        if diff.max() > 1:  # a network's float sums may round differently in a bigger call: 1 level
            raise AssertionError(f"{path.name} {method}: batched frames differ from frame-by-frame ones "
                                 f"by up to {diff.max()} levels")
        faces = sum(len(replay.cache[i]) for i in range(len(frames)))
        per, bat = stats["frame by frame"]["median_ms"], stats["batched"]["median_ms"]
        rows.append({
            "clip": path.name, "method": method, "frames": len(frames), "boxes/frame": faces / len(frames),
            "frame-by-frame fps": len(frames) / (per / 1e3), "batched fps": len(frames) / (bat / 1e3),
            "ratio": per / bat, "max diff": int(diff.max()), "pixels differing": int((diff > 0).any(-1).sum()),
            "timings": stats,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS)
    ap.add_argument("--methods", nargs="+", default=["learned", "composite"])
    ap.add_argument("--max-frames", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "render_batch_cpu.json")
    args = ap.parse_args(argv)
    root = data_root() / "action_videos"
    missing = [c for c in args.clips if not (root / c).is_file()]
    if missing:
        print(f"skipped: the shared clips are absent ({', '.join(missing)} under {root})")
        return 0
    rows = [r for c in args.clips for r in bench_clip(root / c, args.methods, args.max_frames, args.batch_size,
                                                     args.repeat)]
    print_table(rows, ["clip", "method", "frames", "boxes/frame", "frame-by-frame fps", "batched fps", "ratio",
                       "max diff", "pixels differing"])
    save_results(args.output, {"machine": machine_info(), "batch_size": args.batch_size, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
