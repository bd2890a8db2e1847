"""The tracker: gap filling, lingering, look-ahead, smoothing, association of moving faces."""

from __future__ import annotations

import numpy as np
import pytest

from anonface.detect import box_iou
from anonface.track import FaceTracker


def _moving_faces(rng: np.random.Generator, n_frames: int, n_faces: int) -> np.ndarray:
    """Ground-truth boxes [T, F, 5] of faces moving at constant speed, well apart."""
    size = rng.uniform(30, 60, n_faces)
    start = np.stack([rng.uniform(0, 100, n_faces), 150 * np.arange(n_faces) + rng.uniform(0, 20, n_faces)], 1)
    vel = rng.uniform(-6, 6, (n_faces, 2))
    t = np.arange(n_frames)[:, None, None]
    xy = start[None] + vel[None] * t  # [T, F, 2]
    boxes = np.concatenate([xy, xy + size[None, :, None], np.ones((n_frames, n_faces, 1))], axis=2)
    return boxes.astype(np.float32)


def _covered(truth: np.ndarray, boxes: np.ndarray, thr: float = 0.5) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(len(truth), bool)
    return box_iou(truth, boxes).max(axis=1) >= thr


def test_gap_filling_when_the_detector_drops_frames() -> None:
    rng = np.random.default_rng()
    truth = _moving_faces(rng, 60, 3)
    # The detector misses each face on ~40% of frames, in runs of up to 4 frames.
    dets = []
    for t in range(60):
        keep = [f for f in range(3) if (t + 3 * f) % 7 not in (1, 2, 3, 4) or t in (0, 59)]
        dets.append(truth[t, keep])
    without = np.mean([_covered(truth[t], dets[t]).mean() for t in range(60)])
    out = FaceTracker(max_gap=8, linger=3).track_frames(dets)
    assert len(out) == 60
    cover = np.array([_covered(truth[t], out[t], 0.7) for t in range(60)])
    assert without < 0.7
    assert cover.all(), f"uncovered (frame, face): {np.argwhere(~cover).tolist()}"
    # Interpolated boxes sit where the face is: IoU with the truth close to 1.
    ious = [box_iou(truth[t], out[t]).max(axis=1) for t in range(60)]
    assert np.min(ious) > 0.85
    # Every box is on a face's path within the gap window: extra boxes are held copies of a face's
    # last seen place, or lingering boxes moved along its path before/after detections, never
    # strays. (A fast face leaves such boxes behind within a few frames, so the check is against
    # its places in the frames around t.)
    for t in range(60):
        recent = truth[max(0, t - 8) : t + 9].reshape(-1, 5)
        assert (box_iou(out[t], recent).max(axis=1) > 0.2).all(), t
    assert max(len(b) for b in out) <= 9


def test_detect_every_k_interpolates() -> None:
    rng = np.random.default_rng()
    truth = _moving_faces(rng, 41, 2)
    k = 5
    dets = [truth[t] if t % k == 0 else None for t in range(41)]
    out = FaceTracker(max_gap=2 * k, linger=k).track_frames(dets)
    # Constant speed: interpolation between keyframes is exact.
    for t in range(41):
        iou = box_iou(truth[t], out[t])
        assert (iou.max(axis=1) > 0.98).all(), t


def test_linger_and_lead_in() -> None:
    box = np.array([[10, 10, 50, 50, 0.9]], np.float32)
    none = np.zeros((0, 5), np.float32)
    dets = [none] * 10 + [box] * 3 + [none] * 20
    out = FaceTracker(max_gap=4, linger=5).track_frames(dets)
    present = [len(b) > 0 for b in out]
    # Covered from 5 frames before the first detection to 5 frames after the last one.
    assert present == [False] * 5 + [True] * (5 + 3 + 5) + [False] * 15
    assert np.allclose(out[5][0, :4], box[0, :4]) and np.allclose(out[17][0, :4], box[0, :4])


def test_gap_longer_than_max_gap_is_not_bridged() -> None:
    a = np.array([[0, 0, 20, 20, 1]], np.float32)
    b = np.array([[100, 0, 120, 20, 1]], np.float32)
    none = np.zeros((0, 5), np.float32)
    dets = [a] + [none] * 9 + [b]
    out = FaceTracker(max_gap=4, linger=2, distance_gate=100).track_frames(dets)
    assert [len(x) for x in out] == [1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1]


def test_streaming_emits_with_lookahead_and_keeps_order() -> None:
    rng = np.random.default_rng()
    truth = _moving_faces(rng, 30, 2)
    tr = FaceTracker(max_gap=6, linger=4)
    got = []
    for t in range(30):
        ready = tr.update(truth[t])
        got.extend(i for i, _ in ready)
        assert all(i <= t - tr.lookahead for i, _ in ready)
    got.extend(i for i, _ in tr.flush())
    assert got == list(range(30))
    assert tr.frames_pending == 0


def test_smoothing_reduces_jitter_and_never_shrinks() -> None:
    rng = np.random.default_rng()
    truth = _moving_faces(rng, 50, 1)
    noisy = truth.copy()
    noisy[:, :, :4] += rng.normal(0, 2.0, (50, 1, 1)).astype(np.float32)  # jitter the position
    raw = FaceTracker(smooth_radius=0).track_frames(list(noisy))
    smooth = FaceTracker(smooth_radius=2).track_frames(list(noisy))
    err_raw = np.mean([np.abs(r[0, :2] - t[0, :2]).mean() for r, t in zip(raw, truth)])
    err_smooth = np.mean([np.abs(s[0, :2] + (s[0, 2:4] - s[0, :2]) / 2 - (t[0, :2] + t[0, 2:4]) / 2).mean()
                          for s, t in zip(smooth, truth)])
    assert err_smooth < err_raw
    for s, n in zip(smooth, noisy):
        assert (s[0, 2:4] - s[0, :2] >= n[0, 2:4] - n[0, :2] - 1e-4).all()


def test_fast_face_is_associated_across_keyframes() -> None:
    # A face moving half its width per frame, seen every 3rd frame: no overlap between sightings.
    size, speed = 40.0, 20.0
    truth = [np.array([[speed * t, 100, speed * t + size, 100 + size, 1]], np.float32) for t in range(13)]
    dets = [b if t % 3 == 0 else None for t, b in enumerate(truth)]
    out = FaceTracker(max_gap=6, linger=3).track_frames(dets)
    for t in range(13):
        assert box_iou(truth[t], out[t]).max() > 0.9, t


@pytest.mark.parametrize("kwargs", [{"max_gap": 0}, {"linger": -1}, {"smooth_radius": -1}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FaceTracker(**kwargs)


def test_uncertain_paths_keep_the_held_boxes() -> None:
    # Seen at 0 and 6, moving two box widths in between: the interpolated box plus the held ends.
    a = np.array([[0, 0, 20, 20, 1]], np.float32)
    b = np.array([[40, 0, 60, 20, 1]], np.float32)
    dets = [a] + [None] * 5 + [b]
    out = FaceTracker(max_gap=8, linger=3).track_frames(dets)
    assert len(out[1]) == 2 and np.allclose(out[1][1], a[0])  # interpolated + held start
    assert len(out[3]) == 3  # both held ends are within linger
    assert len(out[5]) == 2 and np.allclose(out[5][1], b[0])
    np.testing.assert_allclose(out[3][0, :4], [20, 0, 40, 20], atol=1e-4)
    # After the last sighting: the held box and one extrapolated at the face's velocity.
    dets = [a, a + [[4, 0, 4, 0, 0]], a + [[8, 0, 8, 0, 0]]] + [np.zeros((0, 5), np.float32)] * 4
    out = FaceTracker(max_gap=4, linger=3, smooth_radius=0).track_frames(dets)
    assert len(out[5]) == 2
    np.testing.assert_allclose(out[5][1, :4], [20, 0, 40, 20], atol=1e-4)


class _UncachedTracker(FaceTracker):
    """The tracker with its shortcuts undone: smoothing recomputed on every call and the
    held-box test through the array ``box_iou``."""

    def _smoothed(self, tr, i):
        return tr.boxes[i] if self.smooth_radius == 0 else self._smooth(tr, i)

    @staticmethod
    def _moved(a, b):
        return bool(box_iou(a[None], b[None])[0, 0] < 0.5)


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_shortcuts_change_no_box(radius: int) -> None:
    """Cached smoothing (dropped when a track gains a detection) and the scalar overlap test give
    the boxes of the plain computation, on crowded random sequences with faint one-frame
    detections, gaps, fast faces, skipped frames and a NaN box."""
    rng = np.random.default_rng()
    seed = int(rng.integers(1 << 31))
    rng = np.random.default_rng(seed)
    faces = rng.uniform(0, 600, (12, 2))
    vel = rng.normal(0, 6, (12, 2)) * (rng.random((12, 1)) < 0.5)
    seq: list[np.ndarray | None] = []
    for t in range(60):
        if t % 7 == 3:
            seq.append(None)
            continue
        rows = []
        for k in range(12):
            if rng.random() < 0.7:
                c = faces[k] + vel[k] * t + rng.normal(0, 2, 2)
                s = 30 + 3 * k
                rows.append([c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s * 0.6, rng.uniform(0.05, 1)])
        for _ in range(rng.integers(0, 6)):  # faint one-frame blobs
            x, y = rng.uniform(0, 640, 2)
            rows.append([x, y, x + rng.uniform(5, 40), y + rng.uniform(5, 40), 0.06])
        if t == 20:
            rows.append([np.nan, 5, 20, 30, 0.5])
        seq.append(np.asarray(rows, np.float32).reshape(-1, 5))
    kw = dict(smooth_radius=radius)
    got = FaceTracker(**kw).track_frames(seq)
    want = _UncachedTracker(**kw).track_frames(seq)
    assert len(got) == len(want) == len(seq)
    for t, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and np.array_equal(g, w, equal_nan=True), f"seed {seed}, frame {t}"


def _with_points(boxes: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """``[K, 15]`` detections: ``boxes [K, 5]`` and landmarks at ``rel [K, 5, 2]`` of each box."""
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    pts = boxes[:, None, 0:2] + rel * wh[:, None]
    return np.concatenate([boxes, pts.reshape(-1, 10)], 1).astype(np.float32)


def test_landmarks_travel_with_their_track() -> None:
    """Detections with landmarks give ``[K, 15]`` boxes: detected frames keep the landmarks (relative to
    the box, averaged over the smoothing window), interpolated frames mix their neighbours', held
    boxes carry them along, and the boxes are those the same detections without landmarks get."""
    rng = np.random.default_rng()
    truth = _moving_faces(rng, 30, 2)
    rel = rng.uniform(0.2, 0.8, (30, 2, 5, 2)).astype(np.float32)
    dets = [None if t % 3 else _with_points(truth[t], rel[t]) for t in range(30)]
    plain = FaceTracker(smooth_radius=0).track_frames([None if d is None else d[:, :5] for d in dets])
    out = FaceTracker(smooth_radius=0).track_frames(dets)
    for t in range(30):
        assert out[t].shape == (len(plain[t]), 15) and plain[t].shape[1] == 5
        np.testing.assert_allclose(out[t][:, :5], plain[t], atol=1e-4)
        boxes = out[t]
        got = (boxes[:, 5:].reshape(-1, 5, 2) - boxes[:, None, 0:2]) / (boxes[:, None, 2:4] - boxes[:, None, 0:2])
        for f in range(2):
            i = int(np.argmax(box_iou(truth[t, f : f + 1], boxes)[0]))
            if t % 3 == 0:
                want = rel[t, f]
            elif t < 27:  # between two sightings: their mix
                a, w = t - t % 3, (t % 3) / 3
                want = (1 - w) * rel[a, f] + w * rel[a + 3, f]
            else:  # after the last sighting: held
                want = rel[27, f]
            np.testing.assert_allclose(got[i], want, atol=1e-4)


def test_landmarks_are_averaged_with_the_box_and_unknown_ones_are_nan() -> None:
    box = np.array([[10, 10, 60, 60, 0.9]], np.float32)
    rel = np.array([[0.2, 0.3], [0.8, 0.3], [0.5, 0.5], [0.3, 0.7], [0.7, 0.7]], np.float32)
    shift = np.array([0.05, 0.0], np.float32)
    dets = [_with_points(box, (rel + s)[None]) for s in (-shift, shift * 0, shift)]
    dets[1][0, 5:7] = np.nan  # the first landmark unknown in the middle frame
    out = FaceTracker(smooth_radius=1, linger=0).track_frames(dets)
    mid = out[1][0]
    got = (mid[5:].reshape(5, 2) - mid[0:2]) / (mid[2:4] - mid[0:2])
    np.testing.assert_allclose(got, rel, atol=1e-4)  # the window's mean, the NaN left out
    only_plain = FaceTracker().track_frames([box, box[:, :5]])
    assert all(b.shape == (1, 5) for b in only_plain)
    mixed = FaceTracker(linger=0).track_frames([dets[0], box, dets[2]])  # the middle one has none
    assert all(b.shape == (1, 15) for b in mixed)
    mid = mixed[1][0]
    np.testing.assert_allclose((mid[5:].reshape(5, 2) - mid[0:2]) / (mid[2:4] - mid[0:2]), rel, atol=1e-4)
    lone = FaceTracker(smooth_radius=0, linger=0).track_frames([box, np.zeros((0, 15), np.float32), dets[2]])
    assert np.isnan(lone[0][0, 5:]).all() and not np.isnan(lone[2][0, 5:]).any()
