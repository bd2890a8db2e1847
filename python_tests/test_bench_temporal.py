"""The temporal benchmark's measures (benchmarks/bench_temporal.py) on synthetic input, and one short
run on a shared clip."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_temporal.py"
_spec = importlib.util.spec_from_file_location("bench_temporal", _PATH)
bt = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_temporal", bt)
_spec.loader.exec_module(bt)


def test_ellipse_mask_is_the_enlarged_inscribed_ellipse() -> None:
    m = bt.ellipse_mask(np.array([[40.0, 20.0, 60.0, 60.0]]), 100, 120, mask_scale=1.0)
    # centre (50, 40), radii 10 x 20: area ~ pi * 200
    assert m[40, 50] and m[21, 50] and m[40, 40] and not m[40, 39] and not m[19, 50]
    assert abs(m.sum() - np.pi * 200) < 0.05 * np.pi * 200
    big = bt.ellipse_mask(np.array([[40.0, 20.0, 60.0, 60.0]]), 100, 120, mask_scale=1.3)
    # each side moves out by 0.3 x the size: radii 16 x 32
    assert big[40, 35] and not big[40, 33] and big[9, 50] and (big & ~m).any() and not (m & ~big).any()
    # clipped at the frame, no faces: nothing
    assert bt.ellipse_mask(np.array([[-30.0, -30.0, 10.0, 10.0]]), 50, 50, 1.0)[0, 0]
    assert not bt.ellipse_mask(np.zeros((0, 5)), 50, 50).any()


def _video(rng, n=6, h=64, w=80):
    """A still random scene with a little sensor noise on every frame."""
    scene = rng.integers(20, 236, (h, w, 3))
    return (scene + rng.integers(-6, 7, (n, h, w, 3))).astype(np.uint8)


def test_flicker_ratio_of_a_frozen_and_a_copied_region() -> None:
    rng = np.random.default_rng()
    orig = _video(rng)
    boxes = [np.array([[20.0, 10.0, 50.0, 40.0, 0.9]], np.float32)] * len(orig)
    mask = bt.ellipse_mask(boxes[0], 64, 80)
    frozen = orig.copy()
    frozen[:, mask] = orig[0][mask]  # a still face: no change at all where it is anonymized
    a, u = bt.measure_flicker(iter(frozen), boxes, orig)
    assert a.mean() == 0.0 and 2 < u.mean() < 6 and bt.flicker_ratio(a, u) == 0.0
    a, u = bt.measure_flicker(iter(orig.copy()), boxes, orig)  # untouched: ratio 1
    assert bt.flicker_ratio(a, u) == pytest.approx(1.0) and u.pairs == len(orig) - 1
    doubled = orig.copy()
    doubled[1::2][:, mask] = 255 - orig[1::2][:, mask]  # every other frame inverted: more change
    a, _ = bt.measure_flicker(iter(doubled), boxes, orig)
    assert bt.flicker_ratio(a, u) > 10


def test_flicker_counts_the_pixels_of_either_frame() -> None:
    """A box that jumps: the union holds both ellipses, the core only their overlap (none here)."""
    orig = np.zeros((2, 40, 80, 3), np.uint8)
    out = orig.copy()
    boxes = [np.array([[0.0, 0.0, 30.0, 30.0]]), np.array([[40.0, 0.0, 70.0, 30.0]])]
    out[1] = 200  # the second frame changes everywhere
    a, u = bt.measure_flicker(iter(out), boxes, orig, mask_scale=1.0)
    m0, m1 = (bt.ellipse_mask(b, 40, 80, 1.0) for b in boxes)
    assert a.pixels_union == (m0 | m1).sum() and a.pixels_core == 0
    assert a.mean() == pytest.approx(200.0) and a.mean("core") is None
    assert u.mean() == 0.0 and bt.flicker_ratio(a, u) is None  # nothing to compare with


def test_link_is_one_to_one_best_first() -> None:
    prev = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], float)
    cur = np.array([[21, 0, 31, 10], [1, 0, 11, 10], [0, 0, 10, 10], [100, 100, 110, 110]], float)
    assert sorted(bt.link(prev, cur)) == [(0, 2), (1, 0)]
    assert bt.link(prev, np.zeros((0, 4))) == []


def test_identity_distances_same_track_and_across() -> None:
    boxes = [np.array([[0, 0, 50, 50], [100, 0, 150, 50]], float)] * 3
    a, b = np.zeros(128), np.full(128, 0.1)
    descs = [{0: a, 1: b}, {0: a + 0.01, 1: b}, {0: a}]  # the second face too small on frame 3
    d = bt.identity_distances(descs, boxes)
    assert len(d["same"]) == 3 and len(d["different"]) == 2
    assert sorted(d["same"]) == pytest.approx(sorted([0.01 * np.sqrt(128), 0.0, 0.01 * np.sqrt(128)]))
    assert d["different"][0] == pytest.approx(np.linalg.norm(a - b))
    # a second box on the first face (overlapping it) is not another person
    boxes2 = [np.array([[0, 0, 50, 50], [100, 0, 150, 50], [5, 5, 55, 55]], float)] * 2
    d = bt.identity_distances([{0: a, 1: b, 2: a}, {0: a, 1: b, 2: a}], boxes2)
    assert len(d["different"]) == 4 and min(d["different"]) > 0


def test_replay_detector_runs_the_detector_once_per_frame() -> None:
    calls = []

    class Base:
        def detect(self, frames, idx):
            calls.append(list(idx))
            return [np.array([[i, 0, i + 10, 10, 0.9]], np.float32) for i in idx]

    r = bt.ReplayDetector(Base())
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    first = r.detect(frames, [0, 1, 2])
    again = r.detect(frames[1:2], [1])
    assert calls == [[0, 1, 2]] and np.array_equal(again[0], first[1])
    again[0][0, 0] = -5  # callers get copies
    assert r.detect(frames[1:2], [1])[0][0, 0] == 1
    r.detect(frames, [2, 3, 4])
    assert calls[-1] == [3, 4]


def test_short_run_on_a_shared_clip(tmp_path) -> None:
    clip = shared_data() / "action_videos" / "two_people_hugging_1080p.mp4"
    if not clip.is_file():
        pytest.skip(f"needs the shared clip {clip}")
    out = tmp_path / "t.json"
    rc = bt.main(["--clips", str(clip), "--max-frames", "4", "--methods", "solid", "noise", "smooth-mosaic",
                  "--identity-methods", "smooth-mosaic", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    c = data["clips"][0]
    assert c["frames"] == 4 and c["faces_per_frame"] > 0
    # bare names are the tool's default strengths
    assert set(c["methods"]) == {"solid 0", "noise 100", "smooth-mosaic"}
    m = c["methods"]
    # noise is drawn afresh every frame: it flickers far more than the real faces; solid fills the inside
    assert m["noise 100"]["flicker_ratio"] > 2.0
    assert m["solid 0"]["flicker_ratio_core"] < m["noise 100"]["flicker_ratio_core"]
    assert m["solid 0"]["seconds_include_detection"] and not m["noise 100"]["seconds_include_detection"]
    assert "identity" in m["smooth-mosaic"] and "identity" in c["untouched"] and "identity" not in m["solid 0"]
    assert data["machine"]["torch"] and data["machine"]["commit"]
    assert data["pooled"]["noise 100"]["flicker_ratio"] == pytest.approx(m["noise 100"]["flicker_ratio"])


def test_method_arguments() -> None:
    from anonface.eval.methods import MethodSpec

    got = bt.methods_from_args(["pixelate", "blur,none", "noise=150,200", "learned=/x.pt", "pixelate"])
    assert got == [MethodSpec("pixelate", 10.0), MethodSpec("blur", 0.15), MethodSpec("noise", 150.0),
                   MethodSpec("noise", 200.0), MethodSpec("learned", None, "/x.pt")]
    with pytest.raises(ValueError):
        bt.methods_from_args(["sharpen"])
