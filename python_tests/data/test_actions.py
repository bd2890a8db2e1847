"""Action data: JHMDB boxes from joints, the JSON format, the synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data

from anonface.data.actions import ActionSet, jhmdb_boxes, load_action_json, load_jhmdb, save_action_json
from anonface.data.synthetic import synthetic_actions, synthetic_faces

DATA = shared_data()


def test_jhmdb_boxes_hand() -> None:
    pos = np.zeros((2, 15, 1))
    pos[:, :, 0] = np.array([31, 70])[:, None]
    pos[:, 3, 0] = (11, 30)  # extremes (1-based): x 11..51, y 21..121
    pos[:, 4, 0] = (51, 121)
    pos[:, 0, 0] = (31, 41)  # neck
    pos[:, 2, 0] = (31, 21)  # face joint (top of head)
    person, face = jhmdb_boxes(pos, height=200, width=100, pad=0.1)
    # joints span x 10.5..50.5, y 20.5..120.5 (corners); padding 10% + 4 px
    torch.testing.assert_close(person[0], torch.tensor([10.5 - 8, 20.5 - 14, 50.5 + 8, 120.5 + 14]))
    # face centred between joints 2 and 0: (30.5, 30.5), side max(1.4 * 20, 0.08 * 100) = 28
    torch.testing.assert_close(face[0], torch.tensor([16.5, 16.5, 44.5, 44.5]))


def test_json_roundtrip(tmp_path: Path) -> None:
    a = synthetic_actions(frames=3, classes=2, height=32, width=40, seed=0)
    save_action_json(a, tmp_path / "ann.json")
    b = load_action_json(tmp_path / "ann.json")
    assert torch.equal(a.frames, b.frames) and b.classes == a.classes
    for i in range(3):
        torch.testing.assert_close(a.person_boxes[i], b.person_boxes[i])
        torch.testing.assert_close(a.face_boxes[i], b.face_boxes[i])
        assert torch.equal(a.labels[i], b.labels[i])


def test_json_default_faces_and_errors(tmp_path: Path) -> None:
    import json

    import cv2

    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((60, 40, 3), np.uint8))
    (tmp_path / "a.json").write_text(json.dumps({"classes": ["run"], "frames": [
        {"image": "f.png", "persons": [{"box": [10, 0, 30, 60], "label": "run"}]}]}))
    a = load_action_json(tmp_path / "a.json")
    torch.testing.assert_close(a.face_boxes[0], torch.tensor([[15.0, 0, 25, 10]]))
    assert a.labels[0].tolist() == [1]
    (tmp_path / "b.json").write_text(json.dumps({"classes": [], "frames": []}))
    with pytest.raises(ValueError, match="classes"):
        load_action_json(tmp_path / "b.json")


def test_action_set_resize_and_validation() -> None:
    a = synthetic_actions(frames=2, classes=2, height=48, width=64)
    r = a.resized(32)
    assert r.frames.shape == (2, 24, 32, 3)
    torch.testing.assert_close(r.person_boxes[0], a.person_boxes[0] * 0.5)
    with pytest.raises(ValueError, match="one entry per frame"):
        ActionSet(a.frames, a.person_boxes[:1], a.labels, a.face_boxes)


def test_synthetic_faces_identity_structure() -> None:
    imgs, boxes, labels = synthetic_faces(identities=4, images=3, size=48, seed=0)
    assert imgs.shape == (12, 3, 48, 48) and imgs.dtype == torch.uint8 and boxes.shape == (12, 4)
    x = imgs.float().flatten(1)
    d = torch.cdist(x, x)
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(12, dtype=torch.bool)
    assert d[same & off].mean() < d[~same].mean()  # images of one identity look alike


def test_load_shared_jhmdb_clip() -> None:
    clip = DATA / "jhmdb_sample" / "Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2.avi"
    if not clip.is_file():
        pytest.skip(f"shared JHMDB sample not found at {clip}")
    a = load_jhmdb(clip)
    assert len(a) == 40 and a.frames.shape[1:] == (240, 320, 3) and a.classes[int(a.labels[0]) - 1] == "catch"
    for p, f in zip(a.person_boxes, a.face_boxes):
        # the face box centre lies in the upper part of the person box
        cx, cy = float(f[0, 0] + f[0, 2]) / 2, float(f[0, 1] + f[0, 3]) / 2
        assert float(p[0, 0]) <= cx <= float(p[0, 2])
        assert cy < float(p[0, 1] + 0.45 * (p[0, 3] - p[0, 1]))
