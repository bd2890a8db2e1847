"""LFW layout and pairs, face bank crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data

from anonface.data.faces import FaceBank, crop_boxes
from anonface.data.lfw import IdentityFolder, face_box_250, image_path, pair_fold, read_pairs
from anonface.data.synthetic import synthetic_faces

DATA = shared_data()


def test_read_pairs(tmp_path: Path) -> None:
    p = tmp_path / "pairs.txt"
    p.write_text("2\t1\nAnn 1 2\nBob 1 Cid 3\nDan 2 4\nEve 1 Fay 1\n")
    pairs = read_pairs(p)
    assert [(q.name1, q.index1, q.name2, q.index2, q.fold, q.same) for q in pairs] == [
        ("Ann", 1, "Ann", 2, 1, True), ("Bob", 1, "Cid", 3, 1, False),
        ("Dan", 2, "Dan", 4, 2, True), ("Eve", 1, "Fay", 1, 2, False)]
    assert [q.name1 for q in pair_fold(pairs, [2])] == ["Dan", "Eve"]
    assert image_path("/r", "Ann", 2) == Path("/r/Ann/Ann_0002.jpg")
    p.write_text("2\t1\nAnn 1 2\n")
    with pytest.raises(ValueError, match="header says"):
        read_pairs(p)
    # View-1 header (one count, one fold); blank lines are ignored.
    p.write_text("1\n\nAnn 1 2\n\nBob 1 Cid 3\n")
    assert [(q.name1, q.name2, q.fold) for q in read_pairs(p)] == [("Ann", "Ann", 1), ("Bob", "Cid", 1)]
    p.write_text("1 1 1\nAnn 1 2\nBob 1 Cid 3\n")
    with pytest.raises(ValueError, match="expected a header"):
        read_pairs(p)
    p.write_text("1\nAnn 1\nBob 1 Cid 3\n")
    with pytest.raises(ValueError, match="expected 3 or 4 fields"):
        read_pairs(p)


def test_identity_folder(tmp_path: Path) -> None:
    import cv2

    for name, n in [("A_B", 3), ("C_D", 1), ("E_F", 2)]:
        (tmp_path / name).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / name / f"{name}_{i + 1:04d}.jpg"), np.full((20, 20, 3), 100, np.uint8))
    f = IdentityFolder(tmp_path, min_images=2, exclude=["E_F"])
    assert f.names == ["A_B"] and len(f) == 3 and f.num_classes == 1
    with pytest.raises(ValueError, match="no identities"):
        IdentityFolder(tmp_path, min_images=5)


def test_crop_boxes_exact_region() -> None:
    img = torch.rand(1, 3, 20, 30)
    # a box covering pixels [4, 12) x [2, 10) at its own size reproduces them exactly
    out = crop_boxes(img, torch.tensor([[4.0, 2.0, 12.0, 10.0]]), 8)
    torch.testing.assert_close(out, img[:, :, 2:10, 4:12], atol=1e-5, rtol=1e-5)


def test_face_bank_sample_deterministic() -> None:
    bank = FaceBank()
    imgs, boxes, labels = synthetic_faces(3, 2, 48, seed=0)
    bank.add(imgs, boxes, labels)
    bank.add(imgs[:, :1].contiguous(), boxes, labels * 0 - 1, share=0.5)  # a grayscale group, unlabelled
    x, y = bank.sample(10, 32, torch.Generator().manual_seed(3))
    x2, y2 = bank.sample(10, 32, torch.Generator().manual_seed(3))
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (10,)
    assert float(x.min()) >= -1 and float(x.max()) <= 1 and float(x.std()) > 0.05
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert set(y.tolist()) <= {-1, 0, 1, 2}
    with pytest.raises(ValueError, match="uint8"):
        bank.add(imgs.float(), boxes, labels)


def test_face_box_250() -> None:
    x1, y1, x2, y2 = face_box_250()
    assert 0 < x1 < x2 < 250 and 0 < y1 < y2 < 250 and 100 < x2 - x1 < 200
    rng = np.random.default_rng(0)
    b = face_box_250(0.1, rng)
    assert b != (x1, y1, x2, y2)


def test_shared_lfw_pairs() -> None:
    root = DATA / "lfw_pairs"
    if not (root / "pairs.txt").is_file():
        pytest.skip(f"shared LFW pairs not found at {root}")
    pairs = read_pairs(root / "pairs.txt")
    assert len(pairs) == 3600 and {p.fold for p in pairs} == set(range(1, 7))
    assert sum(p.same for p in pairs) == 1800
    p = pairs[0]
    assert image_path(root / "images_250_gray", p.name1, p.index1).is_file()
    assert image_path(root / "aligned_112_color", p.name2, p.index2).is_file()


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_face_box_geometries() -> None:
    from anonface.data.lfw import FACE_BOX_GEOMETRIES, aligned_face_box, lfw_face_box

    assert FACE_BOX_GEOMETRIES == ("legacy", "pipeline")
    assert lfw_face_box("legacy") == face_box_250() == lfw_face_box()
    assert aligned_face_box("legacy", 112, 112) == (0.0, 0.0, 112.0, 112.0)
    x1, y1, x2, y2 = lfw_face_box("pipeline")
    # 1.6x CenterFace's median LFW detection (100.2 x 131.2 centred at (126.5, 127.0)), inside the frame
    assert (x2 - x1, y2 - y1) == pytest.approx((1.6 * 100.15, 1.6 * 131.22), abs=0.5)
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((126.5, 127.0))
    assert 0 < x1 and 0 < y1 and x2 < 250 and y2 < 250
    # larger than the legacy box in both directions (the pipeline crops more context around the face)
    lx1, ly1, lx2, ly2 = face_box_250()
    assert x2 - x1 > lx2 - lx1 and y2 - y1 > ly2 - ly1
    a = aligned_face_box("pipeline", 112, 112)
    assert a[0] < 0 and a[1] < 0 and a[2] > 112 and a[3] > 112  # the tight aligned crop lacks context
    assert aligned_face_box("pipeline", 224, 224) == pytest.approx(tuple(2 * v for v in a))
    for fn in (lfw_face_box, aligned_face_box):
        with pytest.raises(ValueError, match="geometry"):
            fn("deface")


def test_face_bank_geometry(tmp_path: Path) -> None:
    import cv2

    from anonface.data.lfw import aligned_face_box, lfw_face_box

    rng = np.random.default_rng()
    paths = []
    for k in range(3):
        p = tmp_path / f"im{k}.jpg"
        cv2.imwrite(str(p), rng.integers(0, 256, (250, 250, 3), dtype=np.uint8))
        paths.append((p, k))
    size = int(rng.integers(100, 200))
    for geo in ("legacy", "pipeline"):
        imgs, boxes = FaceBank.load_lfw(paths, size=size, geometry=geo)
        assert imgs.shape == (3, 1, size, size)
        want = torch.tensor(lfw_face_box(geo)) * (size / 250.0)
        assert torch.allclose(boxes, want.expand(3, 4), atol=1e-4)
    aimgs, aboxes = FaceBank.load_aligned(paths, geometry="pipeline")
    assert torch.allclose(aboxes[0], torch.tensor(aligned_face_box("pipeline", 250, 250)), atol=1e-4)
    # an un-jittered, un-flipped sample crops exactly that box
    bank = FaceBank()
    bank.add(imgs, boxes, torch.arange(3))
    x, y = bank.sample(4, 32, torch.Generator().manual_seed(int(rng.integers(1 << 30))), jitter=0.0, flip=False,
                       photometric=0.0)
    ref = crop_boxes(imgs[y].float().div(255).expand(-1, 3, -1, -1), boxes[y], 32) * 2 - 1
    assert torch.allclose(x, ref, atol=1e-5)
    with pytest.raises(ValueError, match="geometry"):
        FaceBank.load_lfw(paths, geometry="big")
    with pytest.raises(ValueError, match="pad"):
        FaceBank.load_aligned(paths, pad=0.1, geometry="pipeline")


def test_config_face_box() -> None:
    from anonface.train.config import load_config
    from anonface.train.datasets import build_train_data

    assert load_config().data.face_box == "legacy"
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "lfw_bottleneck_pipeline_box.yaml")
    assert cfg.data.face_box == "pipeline"
    assert load_config(root / "configs" / "lfw_bottleneck.yaml").data.face_box == "legacy"
    cfg.data.face_box = "wide"
    with pytest.raises(ValueError, match="data.face_box"):
        build_train_data(cfg.data)


def test_pipeline_box_matches_centerface_on_lfw() -> None:
    """The fixed pipeline box is what the pipeline crops on LFW: CenterFace's detection on random training
    images, enlarged by ``anonface.pipeline.scale_boxes(..., 1.3)``, overlaps it closely."""
    from anonface.data.lfw import lfw_face_box, read_image
    from anonface.pipeline import scale_boxes

    root = DATA / "lfw_pairs" / "images_250_gray"
    if not root.is_dir():
        pytest.skip(f"shared LFW images not found at {root}")
    from anonface.eval.faces import CenterFaceDetector, pick_central

    pairs = read_pairs(root.parent / "pairs.txt")
    held = {n for p in pair_fold(pairs, [5, 6]) for n in (p.name1, p.name2)}
    train = [p for p in pair_fold(pairs, [1, 2, 3, 4]) if p.name1 not in held and p.same]
    rng = np.random.default_rng()
    det = CenterFaceDetector(0.2)
    want = lfw_face_box("pipeline")
    ious, boxes = [], []
    for i in rng.choice(len(train), 12, replace=False):
        p = train[int(i)]
        rgb = read_image(image_path(root, p.name1, p.index1))
        d = pick_central(det(rgb), 250, 250)
        assert d is not None
        b = scale_boxes(np.asarray([d.box]), 1.3)[0]
        boxes.append(b)
        ious.append(_iou(tuple(float(v) for v in b), want))
    med = np.median(np.asarray(boxes), 0)
    assert np.median(ious) > 0.75, ious  # per image: median 0.87, 5th percentile 0.77 (200 images)
    assert np.abs(med - np.asarray(want)).max() < 15, (med, want)
    # the legacy box is clearly not what the pipeline crops
    assert _iou(tuple(float(v) for v in med), face_box_250()) < 0.75
