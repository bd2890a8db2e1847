"""``anonface.boxes.central_index``: the one pick of an LFW photo's subject (training landmarks, the
evaluation, tools/measure_landmarks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from anonface.boxes import central_index


def test_nearest_the_centre_wins_whatever_the_order() -> None:
    rng = np.random.default_rng()
    h, w = 250, 300
    rows = []
    for _ in range(6):  # boxes whose centres lie 40-100 px from the image centre
        r, a = rng.uniform(40, 100), rng.uniform(0, 2 * np.pi)
        cx, cy = w / 2 + r * np.cos(a), h / 2 + r * np.sin(a)
        s = rng.uniform(10, 60)
        rows.append([cx - s, cy - s, cx + s, cy + s, rng.uniform(0.2, 1.0)])
    central = [w / 2 - 30 + 3, h / 2 - 20, w / 2 + 30 + 3, h / 2 + 20, 0.1]  # 3 px off, lowest score
    for at in range(7):
        table = np.array(rows[:at] + [central] + rows[at:])
        assert central_index(table, h, w) == at


def test_ties_go_to_the_higher_score_and_scores_are_optional() -> None:
    a = [10, 10, 30, 30, 0.4]
    b = [10, 10, 30, 30, 0.9]  # same box, higher score
    assert central_index(np.array([a, b]), 40, 40) == 1
    assert central_index(np.array([b, a]), 40, 40) == 0
    assert central_index(np.array([a, b])[:, :4], 40, 40) == 0  # no scores: the first
    wide = np.zeros((2, 15))
    wide[:, :5] = [[0, 0, 8, 8, 0.9], [16, 16, 24, 24, 0.3]]  # CenterFace rows with landmarks
    assert central_index(wide, 40, 40) == 1


@pytest.mark.parametrize("empty", [np.zeros((0, 15)), np.zeros((0, 4)), [], np.zeros(0)])
def test_no_boxes_is_none(empty: object) -> None:
    assert central_index(empty, 100, 100) is None  # type: ignore[arg-type]
