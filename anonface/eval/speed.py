"""Speed: frames per second of each method on the first frames of a clip.

The face boxes come from CenterFace once (its time is reported separately, as the detector's frames per
second: it is the same for every method). Each method is then timed on the decoded frames with those
boxes, in batches, after one warm-up run; the median of ``repeats`` runs is reported. The end-to-end
estimate is ``1 / (1 / detector_fps + 1 / method_fps)``.

The whole pipeline (``anonface.Anonymizer`` with its defaults: CenterFace detection, tracking and the
method, what a user of the library gets) is timed once per method on the same frames, when it exists
(``smooth-mosaic``: the pipeline's ``learned`` path with the mosaic in place of M, see
:func:`anonface.eval.methods.build_pipeline`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from anonface.eval.data import read_clip_frames
from anonface.eval.faces import CenterFaceDetector
from anonface.eval.methods import AnonymizeFn, MethodSpec, build_pipeline

logger = logging.getLogger(__name__)

__all__ = ["ClipFaces", "detect_clip", "time_method", "time_pipeline"]


class ClipFaces:
    """Decoded frames ``[N, H, W, 3]`` uint8 RGB, their face rois ``[K, 15]`` (with the five landmarks)
    and the detector's time."""

    def __init__(self, path: Path, frames: np.ndarray, rois: torch.Tensor, detect_seconds: float) -> None:
        self.path = path
        self.frames = frames
        self.rois = rois
        self.detect_seconds = detect_seconds

    @property
    def detector_fps(self) -> float:
        return len(self.frames) / self.detect_seconds if self.detect_seconds > 0 else float("inf")

    def info(self) -> dict:
        n, h, w, _ = self.frames.shape
        return {
            "clip": self.path.name,
            "frames": int(n),
            "width": int(w),
            "height": int(h),
            "faces_per_frame": float(self.rois.shape[0]) / n,
            "detector_fps": self.detector_fps,
        }


def detect_clip(path: str | Path, max_frames: int, detector: CenterFaceDetector, *,
                threshold: float = 0.2, mask_scale: float = 1.3) -> ClipFaces:
    """Decode the first frames of a clip and find their faces (boxes as found; the methods enlarge
    them). ``mask_scale`` is kept for callers and unused."""
    path = Path(path)
    frames = read_clip_frames(path, max_frames)
    rows: list[list[float]] = []
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        for det in detector(frame, threshold):
            rows.append([float(i), *(float(v) for v in det.box[:4]), *det.landmark_row()])
    dt = time.perf_counter() - t0
    rois = torch.tensor(rows, dtype=torch.float32).reshape(-1, 15)  # the model methods align to the landmarks
    return ClipFaces(path, frames, rois, dt)


def time_method(spec: MethodSpec, fn: AnonymizeFn, clip: ClipFaces, *, batch: int = 8,
                repeats: int = 3) -> dict:
    """Frames per second of ``fn`` on the clip's frames with its rois (median of ``repeats``)."""
    frames = torch.from_numpy(clip.frames)
    n = frames.shape[0]
    chunks = []
    for s in range(0, n, batch):
        e = min(n, s + batch)
        sel = (clip.rois[:, 0] >= s) & (clip.rois[:, 0] < e)
        r = clip.rois[sel].clone()
        r[:, 0] -= s
        chunks.append((frames[s:e].contiguous(), r))

    def run_once() -> float:
        t = time.perf_counter()
        for f, r in chunks:
            fn(f, r)
        return time.perf_counter() - t

    run_once()  # warm-up: first-call allocations, lazy initialisation
    times = sorted(run_once() for _ in range(max(1, repeats)))
    med = times[len(times) // 2]
    fps = n / med if med > 0 else float("inf")
    det_fps = clip.detector_fps
    return {
        "method_fps": fps,
        "end_to_end_fps": 1.0 / (1.0 / det_fps + 1.0 / fps) if fps > 0 and det_fps > 0 else None,
        "seconds": times,
        "batch": batch,
        "threads": torch.get_num_threads(),
    }


def time_pipeline(spec: MethodSpec, clip: ClipFaces, *, batch: int = 8) -> dict:
    """Frames per second of ``anonface.Anonymizer`` (detection + tracking + method) on the clip's frames.

    Returns ``{"pipeline_fps": ...}``, or ``{"pipeline_unavailable": reason}`` when the pipeline or the
    method cannot run in this build.
    """
    try:
        anon = build_pipeline(spec, device="cpu", batch_size=batch)
        anon(clip.frames[:1])  # warm-up: model and detector initialisation
        anon.reset()
        t = time.perf_counter()
        anon(clip.frames)
        dt = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - reported in the row
        return {"pipeline_unavailable": f"{e.__class__.__name__}: {e}"}
    return {"pipeline_fps": len(clip.frames) / dt if dt > 0 else float("inf"), "pipeline_seconds": dt}
