"""Utility part: clear 'unavailable' rows without action data, face boxes for anonymization, frame-mAP."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from anonface.eval.faces import Detection
from anonface.eval.methods import MethodSpec
from anonface.eval.utility import (
    UtilitySettings,
    anonymize_action_frames,
    compute_frame_map,
    run_utility,
)


def test_missing_data_is_unavailable(tmp_path) -> None:
    specs = [MethodSpec("none"), MethodSpec("pixelate", 16.0)]
    rows = run_utility([(s, lambda f, r: f) for s in specs], tmp_path / "nothing-here")
    assert set(rows) == {"none", "pixelate 16"}
    assert all("frame_map" not in r and "no action-detection data" in r["unavailable"] for r in rows.values())
    assert run_utility([(specs[0], lambda f, r: f)], None)["none"]["unavailable"].startswith("no action")


def test_anonymize_action_frames_uses_detector_then_annotation() -> None:
    frames = torch.randint(0, 256, (3, 40, 50, 3), dtype=torch.uint8)
    faces = [torch.tensor([[10.0, 10.0, 20.0, 20.0]]) for _ in range(3)]
    data = SimpleNamespace(frames=frames, face_boxes=faces)

    class OnlyFrame1:
        def __call__(self, rgb, threshold=None):
            if rgb is not None and torch.equal(torch.from_numpy(rgb), frames[1]):
                marks = np.array([[32, 8], [38, 8], [35, 10], [33, 13], [37, 13]], np.float64)
                return [Detection((30.0, 5.0, 40.0, 15.0), 0.9, marks)]
            return []

    seen = {}

    def fn(f, rois):
        seen["rois"] = rois
        return f + 1

    out = anonymize_action_frames(data, fn, OnlyFrame1(), UtilitySettings(mask_scale=1.3))
    assert torch.equal(out, frames + 1)
    r = seen["rois"]
    assert r[:, 0].tolist() == [0.0, 1.0, 2.0]
    # annotated face (frames 0, 2) and detection (frame 1), as found: the method enlarges them
    assert r[0, 1:5].tolist() == pytest.approx([10.0, 10.0, 20.0, 20.0])
    assert r[1, 1:5].tolist() == pytest.approx([30.0, 5.0, 40.0, 15.0])
    # the detection's landmarks ride along (the model methods align to them); annotations have none
    assert r.shape == (3, 15) and r[1, 5:].tolist() == [32, 8, 38, 8, 35, 10, 33, 13, 37, 13]
    assert torch.isnan(r[0, 5:]).all() and torch.isnan(r[2, 5:]).all()


def test_compute_frame_map() -> None:
    # two frames, one person each; the detector finds frame 0 (IoU 0.81) and misses frame 1, plus
    # one low-scored false positive: AP = 0.5 (recall 1/2 at precision 1)
    det = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 70.0, 70.0]]),
            "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([1, 1])},
           {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    tgt = [{"boxes": torch.tensor([[12.0, 12.0, 52.0, 52.0]]), "labels": torch.tensor([1])},
           {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([1])}]
    assert compute_frame_map(det, tgt) == pytest.approx(0.5)
