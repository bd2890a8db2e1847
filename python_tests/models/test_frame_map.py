"""frame-mAP against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anonface.boxes import box_iou
from anonface.models.action.frame_map import average_precision, frame_map


def _d(boxes, scores, labels):
    return {"boxes": np.array(boxes, dtype=float).reshape(-1, 4), "scores": np.array(scores, dtype=float),
            "labels": np.array(labels)}


def _g(boxes, labels):
    return {"boxes": np.array(boxes, dtype=float).reshape(-1, 4), "labels": np.array(labels)}


def test_iou_hand() -> None:
    m = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 5], [5, 5, 15, 15], [20, 20, 30, 30]]))
    np.testing.assert_allclose(m, [[0.5, 25 / 175, 0.0]])


def test_perfect() -> None:
    r = frame_map([_d([[0, 0, 10, 10]], [0.9], [1]), _d([[5, 5, 20, 20]], [0.8], [2])],
                  [_g([[0, 0, 10, 10]], [1]), _g([[5, 5, 20, 20]], [2])])
    assert r["map"] == 1.0 and r["ap"] == {1: 1.0, 2: 1.0}


def test_false_positive_ranked_first() -> None:
    # FP (0.9) then TP (0.8): precision at recall 1 is 1/2 -> AP 0.5
    r = frame_map([_d([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [1, 1])], [_g([[0, 0, 10, 10]], [1])])
    assert math.isclose(r["map"], 0.5)


def test_two_frames_interleaved() -> None:
    # TP 0.9 (frame 0), FP 0.8 (frame 1), TP 0.7 (frame 1): 0.5 * 1 + 0.5 * 2/3
    dets = [_d([[0, 0, 10, 10]], [0.9], [1]), _d([[40, 40, 50, 50], [20, 20, 30, 30]], [0.8, 0.7], [1, 1])]
    gts = [_g([[0, 0, 10, 10]], [1]), _g([[20, 20, 30, 30]], [1])]
    assert math.isclose(frame_map(dets, gts)["map"], 0.5 + 0.5 * 2 / 3)


def test_duplicate_is_false_positive_and_iou_threshold_inclusive() -> None:
    # two detections on one GT: the second counts as FP; IoU exactly 0.5 matches
    dets = [_d([[0, 0, 10, 5], [0, 0, 10, 10]], [0.9, 0.8], [1, 1])]
    gts = [_g([[0, 0, 10, 10]], [1])]
    r = frame_map(dets, gts)
    assert math.isclose(r["map"], 1.0)  # first (IoU 0.5) is TP at precision 1; the duplicate adds no recall
    r = frame_map(dets, gts, iou_threshold=0.6)  # now only the second matches: FP then TP
    assert math.isclose(r["map"], 0.5)


def test_wrong_class_and_missed() -> None:
    dets = [_d([[0, 0, 10, 10]], [0.9], [2])]
    gts = [_g([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 1])]
    r = frame_map(dets, gts)
    assert r["ap"] == {1: 0.0} and r["map"] == 0.0  # class 2 has no GT: left out of the mean
    r = frame_map([_d([[0, 0, 10, 10]], [0.9], [1])], gts)
    assert math.isclose(r["map"], 0.5)  # recall stops at 1/2 with precision 1


def test_mean_over_classes_and_empty() -> None:
    dets = [_d([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.1], [1, 2]), _d([], [], [])]
    gts = [_g([[0, 0, 10, 10]], [1]), _g([[20, 20, 30, 30]], [2])]
    r = frame_map(dets, gts)
    assert r["ap"] == {1: 1.0, 2: 0.0} and math.isclose(r["map"], 0.5)
    assert math.isnan(frame_map([_d([], [], [])], [_g([], [])])["map"])


def test_average_precision_envelope() -> None:
    # tp pattern 1,0,1,1 with 4 GT: recalls .25 .25 .5 .75, precisions 1, .5, .667, .75
    # envelope: r<=.25 -> 1, (.25,.5] -> .75, (.5,.75] -> .75 ; AP = .25 + .25*.75 + .25*.75
    assert math.isclose(average_precision(np.array([1, 0, 1, 1]), 4), 0.25 + 0.1875 + 0.1875)
    with pytest.raises(ValueError):
        average_precision(np.array([1]), 0)


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match="one entry per frame"):
        frame_map([], [_g([[0, 0, 1, 1]], [1])])
