"""Methods applied through the pipeline's own rendering function (anonface.render.anonymize_faces)."""

from __future__ import annotations

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
