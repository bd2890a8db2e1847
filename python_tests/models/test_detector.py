"""A: box ops against brute force, shapes, and the detector learning (synthetic data and JHMDB)."""

from __future__ import annotations

import pytest
import torch
from conftest import shared_data

from anonface.data.synthetic import synthetic_actions
from anonface.models.action import ActionDetector, DetectorConfig
from anonface.models.action.boxes import BoxCoder, batched_nms, box_iou, clip_boxes, nms, remove_small_boxes
from anonface.models.action.rpn import AnchorGenerator, Matcher
from anonface.train.action import evaluate_detector, small_detector_config, train_action_detector

DATA = shared_data()


def _rand_boxes(n: int, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2) * size
    wh = torch.rand(n, 2) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1)


def test_box_iou_hand_and_symmetry() -> None:
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 10, 10]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[50 / 150, 1.0], [0.0, 0.0]]))
    x, y = _rand_boxes(7), _rand_boxes(5)
    torch.testing.assert_close(box_iou(x, y), box_iou(y, x).T)


def test_box_coder_roundtrip() -> None:
    ref, tgt = _rand_boxes(20), _rand_boxes(20)
    for w in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        c = BoxCoder(w)
        torch.testing.assert_close(c.decode(ref, c.encode(ref, tgt)), tgt, atol=1e-3, rtol=1e-4)
    assert torch.allclose(BoxCoder().encode(ref, ref), torch.zeros(20, 4), atol=1e-6)


def _nms_brute(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    for i in order:
        if all(float(box_iou(boxes[i:i + 1], boxes[j:j + 1])) <= thr for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(thr: float) -> None:
    b, s = _rand_boxes(60, 60), torch.rand(60)
    assert nms(b, s, thr).tolist() == _nms_brute(b, s, thr)
    assert nms(b[:0], s[:0], thr).numel() == 0


def test_batched_nms_separates_groups() -> None:
    b = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]])
    s = torch.tensor([0.9, 0.8, 0.7])
    assert sorted(batched_nms(b, s, torch.tensor([0, 1, 0]), 0.5).tolist()) == [0, 1]


def test_clip_and_small() -> None:
    b = torch.tensor([[-5.0, -5, 50, 50, 10, 10, 20, 12]])
    torch.testing.assert_close(clip_boxes(b, 40, 30), torch.tensor([[0.0, 0, 30, 40, 10, 10, 20, 12]]))
    assert remove_small_boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 1]]), 2).tolist() == [0]


def test_anchors_and_matcher() -> None:
    g = AnchorGenerator((8.0, 16.0), (1.0,))
    a = g(2, 3, 4, torch.device("cpu"))
    assert a.shape == (2 * 3 * 2, 4)
    # first cell centre (2, 2); sizes 8 and 16
    torch.testing.assert_close(a[0], torch.tensor([-2.0, -2, 6, 6]))
    torch.testing.assert_close(a[1], torch.tensor([-6.0, -6, 10, 10]))
    iou = torch.tensor([[0.9, 0.4, 0.1, 0.2], [0.1, 0.5, 0.2, 0.0]])
    assert Matcher(0.7, 0.3, False)(iou).tolist() == [0, -2, -1, -1]
    assert Matcher(0.7, 0.3, True)(iou).tolist() == [0, 1, -1, -1]


def test_detector_shapes_and_empty_targets() -> None:
    det = ActionDetector(DetectorConfig(num_classes=3, widths=[8, 16, 32], rpn_pre_nms=100, rpn_post_nms=20))
    x = torch.rand(2, 3, 64, 96)
    t = [{"boxes": torch.tensor([[10.0, 5, 40, 60]]), "labels": torch.tensor([2])},
         {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    losses = det(x, t)
    assert set(losses) == {"rpn_cls", "rpn_reg", "roi_cls", "roi_reg"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    det.eval()
    out = det(x)
    assert len(out) == 2
    for r in out:
        n = r["boxes"].shape[0]
        assert r["boxes"].shape == (n, 4) and r["scores"].shape == (n,) and r["labels"].dtype == torch.int64
        assert n <= det.config.detections_per_image
        if n:
            assert int(r["labels"].min()) >= 1 and int(r["labels"].max()) <= 3
            assert float(r["boxes"][:, 0::2].min()) >= 0 and float(r["boxes"][:, 2].max()) <= 96
    with pytest.raises(ValueError, match="one dict per image"):
        det(x, t[:1])


def test_detector_learns_synthetic() -> None:
    """Fast CI version of the overfit check: synthetic frames, 3 classes.

    400 steps, because 200 left too little margin: on an AMD EPYC machine (torch 2.13.0+cpu) training
    seeds 0/1/2 reached mAP 0.861/0.889/0.944 after 200 steps, 1.0/0.972/0.972 after 300 and
    1.0/1.0/1.0 after 400, whatever the thread count.
    """
    data = synthetic_actions(frames=8, classes=3, height=96, width=128, seed=1)
    det = train_action_detector(data, steps=400, seed=0, config=small_detector_config(3), lr=0.02, log_every=0)
    assert evaluate_detector(det, data)["map"] >= 0.9


def test_detector_overfits_jhmdb_clip() -> None:
    """The detection pipeline learns: a short run takes frame-mAP on the shared JHMDB clip from 0
    (untrained) to well above chance.

    The bound has a margin measured across seeds and machines: seeds 0-5 gave 0.915-0.943 on one
    machine (torch 2.13.0+cpu, numpy 2.4.6), and seed 0 gave 0.868 on a fresh CI machine with the
    same versions (other CPU, other float rounding); 0.75 leaves room for both.
    """
    clip = DATA / "jhmdb_sample" / "Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2.avi"
    if not clip.is_file():
        pytest.skip(f"shared JHMDB sample not found at {clip}")
    from anonface.data.actions import JHMDB_CLASSES, load_jhmdb

    data = load_jhmdb(clip).resized(160)
    assert data.classes[int(data.labels[0]) - 1] == "catch"
    det = train_action_detector(data, steps=200, seed=0, config=small_detector_config(len(JHMDB_CLASSES)),
                                lr=0.02, log_every=0)
    r = evaluate_detector(det, data)
    torch.manual_seed(0)
    untrained = evaluate_detector(ActionDetector(small_detector_config(len(JHMDB_CLASSES))).eval(), data)
    assert untrained["map"] <= 0.1, untrained
    assert r["map"] >= 0.75, r
