"""tools/measure_landmarks.py (the source of ``anonface.render.CANONICAL_LANDMARKS``): landmarks relative
to the enlarged box, the average over photos, and its refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_tool  # type: ignore[import-not-found]
from skimage import data as skimage_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw_fake import fake_data as _fake_data  # noqa: E402


def test_relative_landmarks_are_fractions_of_the_enlarged_box() -> None:
    tool = load_tool("measure_landmarks")
    # a 100 px box enlarged 1.6x spans 20-180 in x, 40-200 in y
    det = np.array([[50, 70, 150, 170, 0.9, 20, 40, 180, 200, 100, 120, 60, 80, 140, 160]], np.float32)
    rel = tool.relative_landmarks(det, 1.3)
    np.testing.assert_allclose(rel[0], [[0, 0], [1, 1], [0.5, 0.5], [0.25, 0.25], [0.75, 0.75]], atol=1e-6)


def test_main_averages_the_training_photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = load_tool("measure_landmarks")
    root = _fake_data(tmp_path / "data", colour_250=True)
    monkeypatch.setenv("ANONFACE_DATA", str(root))
    assert tool.main(["--n", "4"]) == 1  # random pixels: no face in any photo, said so
    face = cv2.resize(skimage_data.astronaut()[0:320, 80:400], (250, 250))
    for p in (root / "faces_color_context" / "lfw_250_color").glob("*/*.png"):
        cv2.imwrite(str(p), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    out = tmp_path / "lm.json"
    assert tool.main(["--n", "3", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    mean = np.array(got["mean"])
    assert got["photos"] == 3 and got["no_detection"] == 0 and mean.shape == (5, 2)
    assert mean[0, 0] < mean[2, 0] < mean[1, 0] and mean[3, 0] < mean[4, 0]  # eyes around the nose
    assert max(mean[0, 1], mean[1, 1]) < mean[2, 1] < min(mean[3, 1], mean[4, 1])
    assert ((mean > 0.15) & (mean < 0.85)).all()
    np.testing.assert_allclose(got["sd"], 0.0, atol=1e-3)  # the same photo everywhere


def test_main_refuses_bad_arguments_and_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = load_tool("measure_landmarks")
    with pytest.raises(SystemExit) as exc:
        tool.main(["--n", "0"])
    assert exc.value.code == 2
    monkeypatch.setenv("ANONFACE_DATA", str(tmp_path / "absent"))
    assert tool.main([]) == 2
