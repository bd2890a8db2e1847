"""Utility part: clear 'unavailable' rows without the training side, face boxes for anonymization, the
frame-mAP adapter."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import torch

from anonface.eval.faces import Detection
from anonface.eval.methods import MethodSpec
from anonface.eval.utility import (
    UtilitySettings,
    anonymize_action_frames,
    compute_frame_map,
    run_utility,
    utility_unavailable_reason,
)


def test_unavailable_rows_say_why(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "anonface.eval.frame_map", None)
    reason = utility_unavailable_reason()
    assert reason is not None and "anonface.eval.frame_map" in reason
    specs = [MethodSpec("none"), MethodSpec("pixelate", 16.0)]
    rows = run_utility([(s, lambda f, r: f) for s in specs], tmp_path)
    assert set(rows) == {"none", "pixelate 16"}
    assert all("frame_map" not in r and "frame_map" in r["unavailable"] for r in rows.values())


def test_missing_data_is_unavailable(monkeypatch, tmp_path) -> None:
    for mod, attr in (("anonface.eval.frame_map", "frame_map"), ("anonface.models.action", "build_detector"),
                      ("anonface.data.actions", "load_jhmdb"), ("anonface.train.action", "train_action_detector")):
        m = types.ModuleType(mod)
        setattr(m, attr, lambda *a, **k: None)
        monkeypatch.setitem(sys.modules, mod, m)
    assert utility_unavailable_reason() is None
    rows = run_utility([(MethodSpec("none"), lambda f, r: f)], tmp_path / "nothing-here")
    assert "no action-detection data" in rows["none"]["unavailable"]


def test_anonymize_action_frames_uses_detector_then_annotation() -> None:
    frames = torch.randint(0, 256, (3, 40, 50, 3), dtype=torch.uint8)
    faces = [torch.tensor([[10.0, 10.0, 20.0, 20.0]]) for _ in range(3)]
    data = SimpleNamespace(frames=frames, face_boxes=faces)

    class OnlyFrame1:
        def __call__(self, rgb, threshold=None):
            if rgb is not None and torch.equal(torch.from_numpy(rgb), frames[1]):
                return [Detection((30.0, 5.0, 40.0, 15.0), 0.9)]
            return []

    seen = {}

    def fn(f, rois):
        seen["rois"] = rois
        return f + 1

    out = anonymize_action_frames(data, fn, OnlyFrame1(), UtilitySettings(mask_scale=1.3))
    assert torch.equal(out, frames + 1)
    r = seen["rois"]
    assert r[:, 0].tolist() == [0.0, 1.0, 2.0]
    # annotated face (frames 0, 2) and detection (frame 1), each enlarged the deface way (x1.6)
    assert r[0, 1:].tolist() == pytest.approx([7.0, 7.0, 23.0, 23.0])
    assert r[1, 1:].tolist() == pytest.approx([27.0, 2.0, 43.0, 18.0])


@pytest.mark.parametrize("ret", [0.625, {"map": 0.625}, (0.625, {1: 0.625})])
def test_frame_map_adapter(monkeypatch, ret) -> None:
    m = types.ModuleType("anonface.eval.frame_map")
    calls = {}

    def frame_map(dets, targets, iou_threshold=0.5, classes=None):
        calls.update(n=len(dets), iou=iou_threshold)
        return ret

    m.frame_map = frame_map  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anonface.eval.frame_map", m)
    det = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    tgt = [{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1])}]
    assert compute_frame_map(det, tgt, 21) == 0.625
    assert calls == {"n": 1, "iou": 0.5}


def test_frame_map_adapter_with_the_real_frame_map() -> None:
    # two frames, one person each; the detector finds frame 0 (IoU 0.81) and misses frame 1, plus
    # one low-scored false positive: AP = 0.5 (recall 1/2 at precision 1)
    det = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 70.0, 70.0]]),
            "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([1, 1])},
           {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    tgt = [{"boxes": torch.tensor([[12.0, 12.0, 52.0, 52.0]]), "labels": torch.tensor([1])},
           {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([1])}]
    assert compute_frame_map(det, tgt, 21) == pytest.approx(0.5)
