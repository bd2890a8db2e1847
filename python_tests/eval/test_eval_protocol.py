"""The privacy/naturalness protocol end to end on synthetic LFW-layout data with stand-in judges.

The stand-in judge reads identity from the brightness of the central face square, so the expected
figures are known by construction: the identity anonymizer gives the judge's own accuracy, an anonymizer
that wipes the face box gives 0% re-identification and no face left.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from anonface.eval.data import ImageRef, read_pairs
from anonface.eval.faces import Detection
from anonface.eval.judge import DlibJudge
from anonface.eval.methods import MethodSpec
from anonface.eval.privacy import FaceProtocol, evaluate_method, prepare_originals, untouched_summary

SIZE = 64
FACE = (20.0, 20.0, 44.0, 44.0)
LANDMARKS = np.array([[26.0, 28.0], [38.0, 28.0], [32.0, 33.0], [27.0, 39.0], [37.0, 39.0]])


class StandInJudge(DlibJudge):
    """Finds a face where the central square is bright; its descriptor is that square's brightness."""

    def __init__(self) -> None:  # no dlib needed
        self.threshold = 0.6
        self.upsample = 1

    def detect(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [FACE] if rgb[22:42, 22:42].mean() > 60 else []

    def descriptor(self, rgb: np.ndarray, box) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        return np.array([rgb[y1:y2, x1:x2].astype(np.float64).mean() / 60.0])


class StandInDetector:
    def __call__(self, rgb: np.ndarray, threshold: float | None = None) -> list[Detection]:
        if rgb[22:42, 22:42].mean() > 60:
            return [Detection(FACE, 0.9, LANDMARKS.copy())]
        return []


def _make_lfw(root, rng: np.random.Generator) -> None:
    people = {"Ann": 100, "Bob": 170, "Cid": 240}
    for name, level in people.items():
        (root / name).mkdir(parents=True)
        for idx in (1, 2, 3):
            img = rng.integers(0, 50, (SIZE, SIZE, 3), dtype=np.uint8)
            img[20:44, 20:44] = np.clip(level + rng.integers(-5, 6, (24, 24, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{idx:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 98])
    lines = ["1\t3", "Ann\t1\t2", "Bob\t1\t3", "Cid\t2\t3", "Ann\t1\tBob\t2", "Bob\t1\tCid\t1", "Cid\t2\tAnn\t3"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")


def _wipe(frames: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    out = frames.clone()
    for r in rois:
        b = int(r[0])
        x1, y1, x2, y2 = (int(max(0.0, float(v))) for v in r[1:5])
        out[b, y1:y2, x1:x2] = 0
    return out


def prepared_lfw(tmp_path):
    """A synthetic LFW folder with its pairs, prepared for the protocol with the stand-in judge and
    detector: ``(pairs, originals, judge, detector, protocol)`` (also used by test_eval_realism)."""
    rng = np.random.default_rng()
    _make_lfw(tmp_path, rng)
    pairs = read_pairs(tmp_path / "pairs.txt")
    refs = sorted({p.first for p in pairs} | {p.second for p in pairs})
    judge, det, proto = StandInJudge(), StandInDetector(), FaceProtocol(batch_size=2)
    originals = prepare_originals(refs, tmp_path, det, judge, proto)  # type: ignore[arg-type]
    return pairs, originals, judge, det, proto


@pytest.fixture()
def setup(tmp_path):
    return prepared_lfw(tmp_path)


def test_untouched_and_identity(setup) -> None:
    pairs, originals, judge, det, proto = setup
    u = untouched_summary(pairs, originals, judge)
    assert u["judge_accuracy"]["value"] == 1.0 and u["judge_same_match"]["value"] == 1.0
    assert (u["pairs_same"], u["pairs_different"], u["images"]) == (3, 3, 9)
    assert u["judge_fallback_boxes"] == 0 and u["centerface_fallback_boxes"] == 0
    # the anonymization box is CenterFace's box as found (the method enlarges it, as the pipeline does)
    assert originals[ImageRef("Ann", 1)].anon_box == pytest.approx((20.0, 20.0, 44.0, 44.0))
    res = evaluate_method(MethodSpec("none"), lambda f, r: f.clone(), pairs, originals, det, judge, proto)  # type: ignore[arg-type]
    s = res.summary()
    assert s["reid"] == u["judge_same_match"]
    assert s["verification_accuracy"] == u["judge_accuracy"]
    assert s["still_face_centerface"]["value"] == 1.0 and s["still_face_dlib"]["value"] == 1.0
    assert s["landmark_displacement"]["mean"] == 0.0 and s["landmark_displacement"]["n"] == 3
    assert s["images"] == 3  # distinct first images of the six pairs: Ann 1, Bob 1, Cid 2
    # three different people the stand-in judge tells apart: no look-alikes among 3 pairs
    assert s["lookalike"] == {"value": 0.0, "k": 0, "n": 3}


def test_perfect_anonymizer(setup) -> None:
    pairs, originals, judge, det, proto = setup
    seen_rois = []

    def wipe(frames: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        assert frames.dtype == torch.uint8 and frames.shape[1:] == (SIZE, SIZE, 3)
        seen_rois.append(rois.clone())
        return _wipe(frames, rois)

    proto = FaceProtocol(batch_size=2, detecting_attacker=True)
    res = evaluate_method(MethodSpec("solid"), wipe, pairs, originals, det, judge, proto)  # type: ignore[arg-type]
    s = res.summary()
    assert s["reid"]["value"] == 0.0 and s["reid"]["n"] == 3
    assert s["reid_detecting"]["value"] == 0.0
    assert s["verification_accuracy"]["value"] == 0.5
    assert s["still_face_centerface"]["value"] == 0.0 and s["still_face_dlib"]["value"] == 0.0
    assert s["landmark_displacement"]["n"] == 0 and s["landmark_displacement"]["mean"] is None
    # everybody's face wiped to the same black: every pair of different people looks alike
    assert s["lookalike"] == {"value": 1.0, "k": 3, "n": 3}
    # three distinct first images in two batches (2 + 1), one roi each, frame indices local to the batch
    assert [r.shape[0] for r in seen_rois] == [2, 1]
    assert seen_rois[0][:, 0].tolist() == [0.0, 1.0] and seen_rois[1][:, 0].tolist() == [0.0]


def test_fallback_box_when_no_face(setup, tmp_path) -> None:
    pairs, originals, judge, det, proto = setup
    dark = np.full((SIZE, SIZE, 3), 10, np.uint8)
    (tmp_path / "Dee").mkdir()
    cv2.imwrite(str(tmp_path / "Dee" / "Dee_0001.jpg"), dark)
    got = prepare_originals([ImageRef("Dee", 1)], tmp_path, det, judge, proto)  # type: ignore[arg-type]
    o = got[ImageRef("Dee", 1)]
    # fail closed: half the image side at the centre (the method enlarges it like a detection)
    assert o.anon_fallback and o.centerface is None
    assert o.anon_box == pytest.approx((16.0, 16.0, 48.0, 48.0))
    assert not o.judged.detected
    assert o.judged.box == pytest.approx((32 - 0.43 * 32, 32 - 0.43 * 32, 32 + 0.43 * 32, 32 + 0.43 * 32))


def test_untouched_cache_reused(setup, tmp_path) -> None:
    pairs, originals, judge, det, proto = setup
    refs = sorted(originals)
    calls = []

    class Counting(StandInJudge):
        def descriptor(self, rgb, box):
            calls.append(1)
            return super().descriptor(rgb, box)

    cache = tmp_path / "cache" / "untouched.json"
    first = prepare_originals(refs, tmp_path, det, Counting(), proto, cache_file=cache)  # type: ignore[arg-type]
    assert len(calls) == len(refs) and cache.is_file()
    again = prepare_originals(refs, tmp_path, det, Counting(), proto, cache_file=cache)  # type: ignore[arg-type]
    assert len(calls) == len(refs)  # nothing recomputed
    for r in refs:
        a, b = first[r], again[r]
        assert np.array_equal(a.judged.descriptor, b.judged.descriptor) and a.judged.box == b.judged.box
        assert a.anon_box == b.anon_box and a.centerface.box == b.centerface.box
        assert np.array_equal(a.centerface.landmarks, b.centerface.landmarks)
        assert np.array_equal(a.rgb, b.rgb)
    # another detection threshold: recomputed; another mask_scale changes nothing cached
    prepare_originals(refs[:2], tmp_path, det, Counting(), FaceProtocol(det_thresh=0.3), cache_file=cache)  # type: ignore[arg-type]
    assert len(calls) == len(refs) + 2
    prepare_originals(refs[:2], tmp_path, det, Counting(), FaceProtocol(mask_scale=1.5), cache_file=cache)  # type: ignore[arg-type]
    assert len(calls) == len(refs) + 2
