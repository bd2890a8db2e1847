"""Colour photos with their surroundings as training faces (``data.colour_roots``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from anonface.train.config import DataConfig
from anonface.train.datasets import build_train_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw_fake import fake_data  # noqa: E402

COLOUR = "faces_color_context/lfw_250_color"


def _build(root: Path, monkeypatch, **kw):
    monkeypatch.setenv("ANONFACE_DATA", str(root))
    cfg = DataConfig(face_box="pipeline", train_folds=[1, 2], heldout_folds=[3], image_size=64, **kw)
    return build_train_data(cfg)


def test_colour_photos_replace_the_aligned_crops_without_held_out_people_or_wedges(tmp_path, monkeypatch) -> None:
    root = fake_data(tmp_path / "data", colour_250=True)
    data = _build(root, monkeypatch, colour_share=0.5, colour_roots=[COLOUR])
    colour = [g for g in data.faces.groups if g.images.shape[1] == 3]
    gray = [g for g in data.faces.groups if g.images.shape[1] == 1]
    assert len(colour) == 1 and len(gray) == 1
    # 4 training identities x 2 photos; the wedged second photos are skipped; fold 3's people are absent
    assert colour[0].images.shape[0] == 4
    assert tuple(colour[0].images.shape[-2:]) == (64, 64)
    assert set(data.heldout_names) == {"Ed_E", "Fay_F"}
    assert not set(data.heldout_names) & set(data.faces.names)
    # with the wedge check off every training photo stays
    loose = _build(root, monkeypatch, colour_share=0.5, colour_roots=[COLOUR], max_black_share=1.0)
    assert [g.images.shape[0] for g in loose.faces.groups if g.images.shape[1] == 3] == [8]
    # without colour_roots the tight aligned crops are the colour faces, as before
    plain = _build(root, monkeypatch, colour_share=0.5)
    assert [tuple(g.images.shape[-2:]) for g in plain.faces.groups if g.images.shape[1] == 3] == [(112, 112)]


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_black_share_outside_0_1_is_refused(share, tmp_path, monkeypatch) -> None:
    root = fake_data(tmp_path / "data", colour_250=True)
    with pytest.raises(ValueError, match="max_black_share"):
        _build(root, monkeypatch, colour_roots=[COLOUR], max_black_share=share)
