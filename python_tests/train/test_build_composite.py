"""tools/build_composite.py on a tiny made-up LFW layout: held-out identities and wedge photos stay
out, the file it writes loads as the composite model; bad arguments are exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from conftest import load_tool  # type: ignore[import-not-found]

from anonface.models.anonymizer import load_pretrained
from anonface.models.composite import CompositeFace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw_fake import fake_data as _fake_data  # noqa: E402


def _builder():
    return load_tool("build_composite")


def test_fit_leaves_out_held_out_people_and_wedges(tmp_path: Path) -> None:
    root = _fake_data(tmp_path / "data", colour_250=True)
    model, meta = _builder().fit(root, components=2, gain=2.5, heldout_folds=[3], per_identity=5)
    # folds 1-2 hold 4 people with 2 photos each; fold 3's two people are held out and every second
    # photo has a black wedge over a third of it
    assert meta["people"] == 4 and meta["photos"] == 4
    assert isinstance(model, CompositeFace) and model.latent_dim == 2 and model.mean.shape == (64, 64)
    assert model.config.gain == 2.5 and bool(torch.isfinite(model.components).all())
    assert float(model.mean.abs().max()) > 0  # random pixels leave detail beyond their mosaic
    # faded beyond the face: the crop's corners hold nothing
    assert float(model.mean[:3, :3].abs().max()) == 0.0 and float(model.components[:, -3:, -3:].abs().max()) == 0.0


def test_main_writes_a_loadable_file_and_refuses_bad_arguments(tmp_path: Path, capsys) -> None:
    root = _fake_data(tmp_path / "data", colour_250=True)
    b = _builder()
    out = tmp_path / "c.pt"
    assert b.main(["--out", str(out), "--data", str(root), "--components", "3", "--heldout-folds", "3"]) == 0
    m = load_pretrained(out)
    assert isinstance(m, CompositeFace) and m.latent_dim == 3
    bad = tmp_path / "bad.pt"
    assert b.main(["--out", str(bad), "--data", str(root), "--components", "-1"]) == 2
    assert b.main(["--out", str(bad), "--data", str(tmp_path / "nowhere")]) == 2
    for flag, value in (("--gain", "nan"), ("--gain", "0"), ("--spread", "nan"), ("--spread", "-1")):
        assert b.main(["--out", str(bad), "--data", str(root), flag, value]) == 2
    assert not bad.exists()
    assert "--components" in capsys.readouterr().err


def test_fit_predict_recovers_a_linear_rule() -> None:
    """The ridge regression finds weights that are a linear function of the features, and its held-out
    R^2 says so; on noise it says there is nothing to find."""
    fit_predict = _builder().fit_predict
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    feats = torch.cat([torch.randn(400, 6, generator=g), torch.ones(400, 1)], 1)
    rule = torch.randn(3, 7, generator=g)
    predict, resid, r2 = fit_predict(feats, feats @ rule.T + 0.01 * torch.randn(400, 3, generator=g), ridge=1e-3)
    torch.testing.assert_close(predict, rule, atol=0.02, rtol=0)
    assert float(resid.max()) < 0.02 and min(r2) > 0.99
    _, resid, r2 = fit_predict(feats, torch.randn(400, 3, generator=g))
    assert max(r2) < 0.1 and float(resid.min()) > 0.8


def test_predicted_components_make_a_conditional_file(tmp_path: Path, capsys) -> None:
    root = _fake_data(tmp_path / "data", colour_250=True)
    b = _builder()
    model, meta = b.fit(root, components=3, gain=1.5, heldout_folds=[3], per_identity=5, predicted=2)
    assert model.conditional and meta["predicted_components"] == 2 and len(meta["heldout_r2"]) == 2
    assert model.predict is not None and model.code_scale is not None
    # only the first two components are predicted; the third is the code's alone, at the spread
    assert float(model.predict[2].abs().max()) == 0.0 and abs(float(model.code_scale[2]) - 1.3) < 1e-6
    out = tmp_path / "c2.pt"
    assert b.main(["--out", str(out), "--data", str(root), "--components", "3", "--heldout-folds", "3",
                   "--predicted", "2"]) == 0
    assert load_pretrained(out).conditional
    # more predicted than there are components: all of them, and the file says so
    every, meta = b.fit(root, components=3, gain=1.5, heldout_folds=[3], per_identity=5, predicted=10_000)
    assert meta["predicted_components"] == 3 and every.code_scale is not None
    assert float(every.predict.abs().sum(1).min()) > 0  # every component predicted
    bad = tmp_path / "bad.pt"
    assert b.main(["--out", str(bad), "--data", str(root), "--predicted", "-1"]) == 2
    assert not bad.exists() and "--predicted" in capsys.readouterr().err


def test_align_moves_each_photo_s_detail_onto_the_canonical_landmarks() -> None:
    """``align_details`` undoes the renderer's map: a detail drawn with its features moved as a face's
    landmarks say comes back to the canonical places; photos without landmarks stay as they are."""
    import numpy as np

    from anonface.models.composite import warp_affine
    from anonface.render import CANONICAL_LANDMARKS, align_to_landmarks

    b = _builder()
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    coarse = torch.randn(3, 1, 6, 6, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bicubic", align_corners=False)
    boxes = torch.tensor([[20.0, 30.0, 120.0, 130.0]] * 3)
    rel = CANONICAL_LANDMARKS.astype(np.float64) + np.array([0.04, -0.03])  # the face a little up and right
    pts = np.tile((20 + rel * 100 + np.array([0, 10])).reshape(1, 10), (3, 1)).astype(np.float32)
    pts[2] = np.nan  # no face found
    rois = np.concatenate([np.zeros((3, 1), np.float32), boxes.numpy()], 1)
    theta, weight = align_to_landmarks(rois, pts)
    drawn = warp_affine(smooth, torch.from_numpy(theta), torch.from_numpy(weight))
    back, moved = b.align_details(drawn[:, 0], boxes, pts)
    assert moved == 2
    inner = slice(16, 48)  # away from the edge the move brought in from outside
    err = (back[:2, inner, inner] - smooth[:2, 0, inner, inner]).abs().max()
    assert float(err) < 0.05 * float(smooth.abs().max())
    assert torch.equal(back[2], drawn[2, 0])
