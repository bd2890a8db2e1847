"""Batch throughput: ``anonface batch`` (Ray workers) against the plain ways of running many files.

On N short generated clips (scikit-image's astronaut moving across a 640x360 frame, so every clip
has a face to detect; nothing is downloaded), with the same ``anonface run`` options for all rows:

* ``loop``: a shell-style loop, one ``anonface run FILE`` process per clip (what users do today);
* ``run_all``: one ``anonface run`` process given every clip (models loaded once, files in turn);
* ``batch_wN``: ``anonface batch --workers N`` (a local Ray started by the command, N workers
  holding their models; threads per worker = cores / N).

Each row runs in its own subprocess, one after another, into a fresh output folder. Reported:
wall seconds (process start to exit, Ray's start-up included), files/s, frames/s and CPU-seconds
per frame (the whole machine's busy CPU time during the row, from ``/proc/stat``, so Ray's daemons
and workers count too: run it on a quiet machine). ``batch_startup`` is one clip through
``anonface batch``: Ray's start and the workers' model loading, paid once per job.
Prints a table and writes JSON.

Usage: ``python benchmarks/bench_batch.py [--clips 20] [--frames 30] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_commit, machine_info, save_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN_OPTS = ["-q", "--ffmpeg-config", '{"preset": "veryfast", "crf": 23}']


def make_clips(folder: Path, n: int, frames: int) -> None:
    import av
    import cv2
    from skimage import data

    face = cv2.resize(np.ascontiguousarray(data.astronaut()), (200, 200), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    for k in range(n):
        bg = rng.integers(40, 200, (360, 640, 3), dtype=np.uint8)
        bg = cv2.GaussianBlur(bg, (0, 0), 8)
        with av.open(str(folder / f"clip{k:02d}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
            for i in range(frames):
                f = bg.copy()
                x = (30 + 11 * i + 37 * k) % 420
                f[80:280, x:x + 200] = face
                for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``): Ray's workers are children of
    its daemons, not of the command, so per-process accounting would miss them."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, machine-wide busy CPU seconds and exit status of ``cmd`` (run on a quiet
    machine: anything else running is counted too)."""
    b0 = _busy_seconds()
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).returncode
    wall = time.perf_counter() - t0
    return wall, _busy_seconds() - b0, rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts for batch rows")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_cpu.json")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    py = sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)  # batch rows start their own local Ray
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clips"
        src.mkdir()
        make_clips(src, args.clips, args.frames)
        clips = sorted(str(p) for p in src.glob("*.mp4"))
        total_frames = args.clips * args.frames

        def record(name: str, wall: float, cpu: float, rc: int, note: str) -> None:
            rows.append({"row": name, "wall_s": wall, "cpu_s": cpu, "exit": rc, "files_per_s": len(clips) / wall,
                         "frames_per_s": total_frames / wall, "cpu_s_per_frame": cpu / total_frames, "how": note})
            print(f"{name:<10} wall {wall:7.1f} s  {len(clips) / wall:5.2f} files/s  {total_frames / wall:6.1f} fps  "
                  f"{cpu / total_frames * 1000:6.1f} CPU-ms/frame  exit {rc}", flush=True)

        # a loop of one process per file
        wall = cpu = 0.0
        rc = 0
        out = Path(tmp) / "loop"
        out.mkdir()
        for c in clips:
            w, u, r = timed([py, "-m", "anonface", "run", c, "-o", str(out / Path(c).name), *RUN_OPTS], env)
            wall, cpu, rc = wall + w, cpu + u, max(rc, r)
        record("loop", wall, cpu, rc, "one `anonface run FILE` process per clip")
        w, u, r = timed([py, "-m", "anonface", "run", *clips, "-o", str(Path(tmp) / "all") + "/", *RUN_OPTS], env)
        record("run_all", w, u, r, "one `anonface run` process with every clip")
        one = Path(tmp) / "one"
        one.mkdir()
        os.symlink(clips[0], one / "clip.mp4")
        w, u, r = timed([py, "-m", "anonface", "batch", str(one), "-o", str(Path(tmp) / "one_out"), "--workers", "1",
                         *RUN_OPTS], env)
        rows.append({"row": "batch_startup", "wall_s": w, "cpu_s": u, "exit": r,
                     "how": "`anonface batch` with one clip: Ray start-up + model loading + one clip"})
        print(f"{'batch_startup':<14}wall {w:7.1f} s for one clip", flush=True)
        for n in (int(v) for v in args.workers.split(",")):
            w, u, r = timed([py, "-m", "anonface", "batch", str(src), "-o", str(Path(tmp) / f"batch{n}"),
                             "--workers", str(n), *RUN_OPTS], env)
            record(f"batch_w{n}", w, u, r, f"`anonface batch --workers {n}` (local Ray, {max(1, cores // n)} "
                                            "threads per worker)")
    base = next(r for r in rows if r["row"] == "run_all")
    rows = [r for r in rows if r["row"] != "batch_startup"] + [r for r in rows if r["row"] == "batch_startup"]
    for r in rows:
        if "frames_per_s" not in r:
            continue
        r["cpu_per_frame_vs_run_all"] = r["cpu_s_per_frame"] / base["cpu_s_per_frame"]
        r["throughput_vs_run_all"] = r["frames_per_s"] / base["frames_per_s"]
    print(f"\n{'row':<10}{'CPU/frame vs run_all':>22}{'throughput vs run_all':>24}")
    for r in rows:
        if "frames_per_s" in r:
            print(f"{r['row']:<10}{r['cpu_per_frame_vs_run_all']:>22.2f}{r['throughput_vs_run_all']:>24.2f}")
    payload = {"benchmark": "batch", "clips": args.clips, "frames_per_clip": args.frames, "size": [640, 360],
               "run_options": RUN_OPTS, "rows": rows, "machine": machine_info(), "git_commit": git_commit()}
    save_results(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
