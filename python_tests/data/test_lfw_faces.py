"""LFW layout and pairs, face bank crops."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from anonface.data.faces import FaceBank, crop_boxes
from anonface.data.lfw import IdentityFolder, face_box_250, image_path, pair_fold, read_pairs
from anonface.data.synthetic import synthetic_faces

DATA = Path(os.environ.get("ANONFACE_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


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
