"""Utility: action-detection frame-mAP (IoU 0.5) of the action detector trained and tested on frames
anonymized by each method, as in the paper.

Protocol (small scale on the shared data; the same code runs on a full JHMDB-layout or JSON dataset):

1. Load the action data (``anonface.data.actions``: a JHMDB clip with ``joint_positions.mat``, or the JSON
   format). Split the frames: with one clip, every other frame trains and the rest test (neighbouring
   frames are alike, so this measures whether the detector can still localise and classify the person
   on anonymized frames, not generalisation to new people).
2. Anonymize every frame with the method: faces from CenterFace (threshold ``det_thresh``, boxes enlarged
   by ``mask_scale``); a frame where CenterFace finds nothing uses the annotated face box, enlarged the
   same way (fail closed).
3. Train the action detector (``anonface.train.action.train_action_detector``: the small Faster R-CNN of
   ``anonface.models.action``) from the same seed for ``steps`` SGD steps on the anonymized training
   frames, then detect on the anonymized test frames.
4. Frame-mAP at IoU 0.5 (``anonface.models.action.frame_map``, VOC style), averaged over ``repeats``
   training seeds (the per-seed values are kept: on a 20-frame test set they spread by a few points).

Evaluation builds on the training code (never the reverse). Without action data each row's utility
says why, never a number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from anonface.data.actions import ActionSet, load_action_json, load_jhmdb
from anonface.eval.methods import AnonymizeFn, MethodSpec
from anonface.models.action.frame_map import frame_map
from anonface.train.action import detect, small_detector_config, train_action_detector

logger = logging.getLogger(__name__)

__all__ = ["run_utility", "UtilitySettings", "anonymize_action_frames", "compute_frame_map"]

class UtilitySettings:
    """Training of the utility runs: ``anonface.train.action``'s small detector and recipe (SGD, lr 0.02,
    200 steps on frames whose longer side is 160 px), which overfits the shared JHMDB clip to frame-mAP
    >= 0.9 in the training engineer's test."""

    def __init__(self, steps: int = 200, lr: float = 0.02, batch: int = 2, seed: int = 0,
                 det_thresh: float = 0.2, mask_scale: float = 1.3, longer_side: int = 160,
                 repeats: int = 3) -> None:
        self.steps, self.lr, self.batch, self.seed = int(steps), float(lr), int(batch), int(seed)
        self.repeats = max(1, int(repeats))
        self.det_thresh, self.mask_scale = float(det_thresh), float(mask_scale)
        self.longer_side = int(longer_side)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def load_action_data(path: Path):  # -> anonface.data.actions.ActionSet
    """An ``ActionSet`` from a JHMDB clip (``.avi`` + ``*joint_positions.mat``), a folder holding one, or a
    JSON file in the project's action format."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return load_action_json(path)
    if path.is_dir():
        clips = sorted(p for p in path.glob("*.avi"))
        jsons = sorted(p for p in path.glob("*.json"))
        if clips:
            path = clips[0]
        elif jsons:
            return load_action_json(jsons[0])
        else:
            raise FileNotFoundError(f"no JHMDB clip (.avi) or action JSON found in {path}")
    return load_jhmdb(path)


def anonymize_action_frames(data, fn: AnonymizeFn, detector, settings: UtilitySettings) -> torch.Tensor:
    """The frames of an ``ActionSet`` with every face anonymized by ``fn`` (see the module docstring)."""
    rows: list[list[float]] = []
    frames = data.frames
    for i in range(frames.shape[0]):
        dets = detector(frames[i].numpy(), settings.det_thresh) if detector is not None else []
        # the detector's boxes with their landmarks, else the annotated ones (landmarks unknown)
        faces = [(d.box, d.landmark_row()) for d in dets] or [
            (tuple(float(v) for v in b), [float("nan")] * 10) for b in data.face_boxes[i]]
        for b, marks in faces:
            rows.append([float(i), *(float(v) for v in b[:4]), *marks])
    rois = torch.tensor(rows, dtype=torch.float32).reshape(-1, 15)
    return fn(frames.clone(), rois)


def compute_frame_map(detections: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> float:
    """Frame-mAP at IoU 0.5 (:func:`anonface.models.action.frame_map.frame_map`)."""
    return float(frame_map(detections, targets, iou_threshold=0.5)["map"])


def _train_and_test(data, frames: torch.Tensor, train_idx: list[int], test_idx: list[int],
                    settings: UtilitySettings) -> float:
    """Train A (``anonface.train.action``'s recipe) on the anonymized training frames, frame-mAP on the
    anonymized test frames."""
    anon = ActionSet(frames, data.person_boxes, data.labels, data.face_boxes, data.classes)
    if settings.longer_side and max(frames.shape[1:3]) > settings.longer_side:
        anon = anon.resized(settings.longer_side)  # after anonymization: faces are found at full size
    det = train_action_detector(anon.subset(train_idx), steps=settings.steps, seed=settings.seed,
                                config=small_detector_config(max(data.num_classes, 1)), lr=settings.lr,
                                batch_size=settings.batch, log_every=0)
    test = anon.subset(test_idx)
    dets = detect(det, test)
    targets = [{"boxes": b, "labels": lab} for b, lab in zip(test.person_boxes, test.labels)]
    return compute_frame_map(dets, targets)


def run_utility(methods: Sequence[tuple[MethodSpec, AnonymizeFn]], data_path: Path | None, *,
                settings: UtilitySettings | None = None, detector=None,
                progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Frame-mAP per method label; a row is ``{"frame_map": float, ...}`` or ``{"unavailable": reason}``."""
    say = progress or (lambda msg: None)
    settings = settings or UtilitySettings()
    if data_path is None or not Path(data_path).exists():
        reason = f"no action-detection data (JHMDB clip or JSON) found at {data_path}"
        logger.warning("utility (action frame-mAP) skipped: %s", reason)
        return {spec.label: {"unavailable": reason} for spec, _ in methods}
    data = load_action_data(Path(data_path))  # type: ignore[arg-type]
    n = len(data)
    train_idx, test_idx = list(range(0, n, 2)), list(range(1, n, 2))
    out: dict[str, dict[str, Any]] = {}
    for spec, fn in methods:
        t0 = time.perf_counter()
        try:
            frames = anonymize_action_frames(data, fn, detector, settings)
            per_seed = []
            for k in range(settings.repeats):
                one = UtilitySettings(**{**settings.to_dict(), "seed": settings.seed + k})
                per_seed.append(_train_and_test(data, frames, train_idx, test_idx, one))
        except Exception as e:  # noqa: BLE001 - one failure must not lose the other rows
            logger.exception("utility of %s failed", spec.label)
            out[spec.label] = {"unavailable": f"failed: {e.__class__.__name__}: {e}"}
            continue
        fmap = float(sum(per_seed) / len(per_seed))
        out[spec.label] = {"frame_map": fmap, "frame_map_per_seed": per_seed, "train_frames": len(train_idx),
                           "test_frames": len(test_idx), "seconds": time.perf_counter() - t0,
                           **settings.to_dict()}
        say(f"  {spec.label:>14}: frame-mAP {fmap:.3f} (seeds: {', '.join(f'{v:.3f}' for v in per_seed)}; "
            f"{time.perf_counter() - t0:.0f} s)")
    return out
