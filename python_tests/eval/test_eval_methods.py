"""Methods applied through the pipeline's own rendering function (anonface.render.anonymize_faces)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonface.eval.methods import MethodSpec, MethodUnavailable, default_methods, make_anonymizer


def _frames() -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.randint(30, 226, (2, 80, 96, 3), dtype=torch.uint8)
    rois = torch.tensor([[0, 20.0, 10.0, 60.0, 60.0], [1, 40.0, 20.0, 90.0, 70.0]])
    return frames, rois


def test_none_is_identity_and_copies() -> None:
    frames, rois = _frames()
    out = make_anonymizer(MethodSpec("none"))(frames, rois)
    assert torch.equal(out, frames) and out.data_ptr() != frames.data_ptr()


def test_every_default_row_is_labelled_once() -> None:
    labels = [m.label for m in default_methods()]
    assert len(labels) == len(set(labels))
    assert {"none", "solid", "learned", "pixelate 8", "pixelate 16", "blur 0.03", "noise 50"} <= set(labels)


def test_same_pixels_as_the_pipeline() -> None:
    """The evaluation renders through the pipeline's function: boxes enlarged by mask_scale, not
    clipped at the border, the same per-box settings."""
    import numpy as np

    from anonface import anonymize

    frames, rois = _frames()
    rois = torch.cat([rois, torch.tensor([[1, -10.0, 50.0, 20.0, 79.0]])])  # past the left edge
    boxes = [rois[rois[:, 0] == j, 1:].numpy() for j in range(2)]
    for spec in (MethodSpec("pixelate", 10.0), MethodSpec("blur", 0.15), MethodSpec("solid")):
        ours = make_anonymizer(spec, mask_scale=1.3)(frames.clone(), rois)
        run = anonymize(frames.numpy(), boxes=boxes, method=spec.method, strength=spec.strength, device="cpu")
        assert np.array_equal(ours.numpy(), run), spec.label


def test_solid_black_covers_the_face_and_nothing_else() -> None:
    frames, rois = _frames()
    out = make_anonymizer(MethodSpec("solid"), mask_scale=1.0)(frames.clone(), rois)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    # centre of each box: black; far outside every box: untouched
    assert out[0, 35, 40].tolist() == [0, 0, 0] and out[1, 45, 65].tolist() == [0, 0, 0]
    assert torch.equal(out[0, 70:, :], frames[0, 70:, :]) and torch.equal(out[1, :15, :], frames[1, :15, :])


def test_pixelate_one_cell_is_the_mean() -> None:
    frames, rois = _frames()
    out = make_anonymizer(MethodSpec("pixelate", 1.0), mask_scale=1.0)(frames.clone(), rois[:1])
    want = frames[0, 10:60, 20:60].double().mean(dim=(0, 1))
    got = out[0, 35, 40].double()
    assert torch.allclose(got, want, atol=1.0)


def test_learned_with_identity_model(tmp_path) -> None:
    from anonface.models import anonymizer as anon
    # residual=True starts as the identity: the learned method must then give the frame back
    model = anon.build_anonymizer({"crop_size": 64, "width": 8, "n_blocks": 1, "residual": True})
    path = tmp_path / "m.pt"
    anon.save_anonymizer(model, path, half=False)
    _, rois = _frames()
    # smooth random frames: resampling through the 64 px crop keeps them
    yy, xx = torch.meshgrid(torch.arange(80.0), torch.arange(96.0), indexing="ij")
    base = torch.stack([xx, yy, xx + yy], -1)
    frames = (60 + base * torch.rand(2, 1, 1, 3) + 20 * torch.rand(2, 1, 1, 3)).round().clamp(0, 255).to(torch.uint8)
    out = make_anonymizer(MethodSpec("learned", None, str(path)), mask_scale=1.0)(frames.clone(), rois)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert torch.equal(out[0, 70:], frames[0, 70:])
    inner = (out[:, 25:45, 45:55].int() - frames[:, 25:45, 45:55].int()).abs()
    assert inner.float().mean() < 2.0 and inner.max() <= 6


def test_learned_without_checkpoint_is_unavailable(tmp_path) -> None:
    with pytest.raises(MethodUnavailable, match="checkpoint"):
        make_anonymizer(MethodSpec("learned", None, str(tmp_path / "missing.pt")))


# -- smooth mosaic: M's 12x12 input, up-sampled bilinearly, no network ----------------------------------
def _bottleneck_checkpoint(tmp_path, cells: int = 4, crop: int = 32, correction: float = 0.0):
    from anonface.models import anonymizer as anon

    # residual=True starts with a zero correction: M is then exactly its smooth base (clamped to +-0.995);
    # a bias on the last conv makes M brighten every face instead
    model = anon.build_anonymizer({"crop_size": crop, "width": 8, "n_blocks": 1, "residual": True,
                                   "degrade_cells": cells})
    torch.nn.init.constant_(model.net[-1].bias, correction)
    path = tmp_path / f"m{correction:g}.pt"
    anon.save_anonymizer(model, path, half=False)
    return path


def test_smooth_mosaic_is_ms_smooth_base_through_the_learned_path(tmp_path) -> None:
    """Same rendering as `learned` (crop, paste, mask, box scaling): against an M whose correction is
    zero, only the +-0.995 clamp of M's output may differ (< 1 grey level)."""
    path = _bottleneck_checkpoint(tmp_path)
    frames, rois = _frames()
    mosaic = make_anonymizer(MethodSpec("smooth-mosaic", None, str(path)))(frames.clone(), rois)
    learned = make_anonymizer(MethodSpec("learned", None, str(path)))(frames.clone(), rois)
    assert mosaic.shape == frames.shape and mosaic.dtype == torch.uint8
    diff = (mosaic.int() - learned.int()).abs()
    assert diff.max() <= 1
    # it did change the faces, and only inside the (enlarged) boxes
    assert (mosaic.int() - frames.int()).abs()[0, 25:45, 30:50].float().mean() > 10
    assert torch.equal(mosaic[0, :, 85:], frames[0, :, 85:])


def test_smooth_mosaic_averages_cells_and_interpolates(tmp_path) -> None:
    """A 1-px checkerboard averages to flat grey (the 4x4 cell means), and a linear ramp survives
    bilinear up-sampling of its cell means (away from the crop's edge)."""
    path = _bottleneck_checkpoint(tmp_path, cells=4, crop=64)
    fn = make_anonymizer(MethodSpec("smooth-mosaic", None, str(path)), mask_scale=1.0)
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    board = (((yy + xx) % 2) * 200 + 20).to(torch.uint8)[..., None].expand(96, 96, 3)[None].contiguous()
    roi = torch.tensor([[0, 16.0, 16.0, 80.0, 80.0]])
    out = fn(board.clone(), roi)
    centre = out[0, 40:56, 40:56].float()
    assert abs(centre.mean().item() - 120.0) < 3 and centre.std().item() < 3
    ramp = (40 + 1.5 * xx).round().to(torch.uint8)[..., None].expand(96, 96, 3)[None].contiguous()
    out = fn(ramp.clone(), roi)
    err = (out[0, 32:64, 32:64].float() - ramp[0, 32:64, 32:64].float()).abs()
    assert err.mean() < 2.0
    # pixelate with the same 4 cells is flat inside a cell: it would fail the ramp check
    blocky = make_anonymizer(MethodSpec("pixelate", 4.0), mask_scale=1.0)(ramp.clone(), roi)
    assert (blocky[0, 32:64, 32:64].float() - ramp[0, 32:64, 32:64].float()).abs().mean() > 4.0


def test_smooth_mosaic_needs_a_bottleneck(tmp_path) -> None:
    from anonface.models import anonymizer as anon

    model = anon.build_anonymizer({"crop_size": 32, "width": 8, "n_blocks": 1, "degrade_cells": 0})
    anon.save_anonymizer(model, tmp_path / "plain.pt", half=False)
    with pytest.raises(MethodUnavailable, match="bottleneck"):
        make_anonymizer(MethodSpec("smooth-mosaic", None, str(tmp_path / "plain.pt")))
    with pytest.raises(MethodUnavailable, match="checkpoint"):
        make_anonymizer(MethodSpec("smooth-mosaic", None, str(tmp_path / "missing.pt")))


def test_shipped_smooth_mosaic_uses_the_shipped_bottleneck() -> None:
    from anonface.eval.methods import SmoothMosaic, _load_model
    from anonface.models.anonymizer import load_pretrained

    m = _load_model(MethodSpec("smooth-mosaic"), "cpu")
    shipped = load_pretrained()
    assert isinstance(m, SmoothMosaic)
    assert m.cells == shipped.config.degrade_cells == 12 and m.crop_size == shipped.crop_size
    x = torch.rand(3, 3, m.crop_size, m.crop_size) * 2 - 1
    assert torch.equal(m(x), shipped.degrade(x)[1])


def test_smooth_mosaic_in_the_pipeline_gives_the_evaluations_pixels(tmp_path) -> None:
    """build_pipeline runs the smooth mosaic inside anonface.Anonymizer (its learned path): with the
    same boxes it writes the pixels make_anonymizer writes, not those of M (which brightens here)."""
    import numpy as np

    from anonface.eval.methods import build_pipeline

    path = _bottleneck_checkpoint(tmp_path, correction=0.5)
    frames, rois = _frames()
    boxes = [rois[rois[:, 0] == j, 1:].numpy() for j in range(2)]
    spec = MethodSpec("smooth-mosaic", None, str(path))
    ours = make_anonymizer(spec)(frames.clone(), rois)
    run = build_pipeline(spec, boxes=boxes, device="cpu")(frames.numpy())
    assert np.array_equal(ours.numpy(), run)
    plain = build_pipeline(MethodSpec("learned", None, str(path)), boxes=boxes, device="cpu")(frames.numpy())
    brighter = plain[0, 25:45, 30:50].astype(int) - run[0, 25:45, 30:50].astype(int)
    assert brighter.mean() > 10


def test_learned_with_a_code_draws_each_face_as_its_own_track(tmp_path) -> None:
    """The evaluation gives each face a new code, in one call and across calls: the same code on both
    photos of a pair would be read as re-identification."""
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer, save_anonymizer

    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4, latent_dim=4))
    for mod in m.modulate.values():
        torch.nn.init.normal_(mod.affine.weight, std=0.5)
    torch.nn.init.normal_(m.net[-1].weight, std=0.1)
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    fn = make_anonymizer(MethodSpec("learned", checkpoint=str(tmp_path / "m.pt")))
    frames = torch.from_numpy(np.random.default_rng().integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    rois = torch.tensor([[0, 16, 16, 48, 48], [1, 16, 16, 48, 48]], dtype=torch.float32)
    same = frames[:1].expand(2, -1, -1, -1).contiguous()  # one photo twice in one call
    one = fn(same.clone(), rois)
    assert not torch.equal(one[0], one[1])
    first, second = fn(same[:1].clone(), rois[:1]), fn(same[:1].clone(), rois[:1])
    assert not torch.equal(first, second)
