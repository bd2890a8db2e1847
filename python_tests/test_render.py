"""The learned anonymizer's crops at the frame's edge (``anonface.render.hold_edges``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anonface import ops
from anonface.render import band_limit, hold_edges, modify_faces

NORM = ((0.5,) * 3, (0.5,) * 3)


def _crop(frames: np.ndarray, rois: np.ndarray, size: int) -> torch.Tensor:
    return ops.face_crop(torch.from_numpy(frames), torch.from_numpy(rois), size, *NORM)


def _edge_padded_crop(frames: np.ndarray, rois: np.ndarray, size: int, pad: int) -> torch.Tensor:
    """The crop of the frame extended by repeating its border pixels: what ``hold_edges`` stands for."""
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    shifted = rois.copy()
    shifted[:, 1:] += pad
    return _crop(padded, shifted, size)


@pytest.mark.parametrize("axis", ["rows", "cols"])
def test_crop_past_the_frame_repeats_its_edge(axis: str) -> None:
    rng = np.random.default_rng()
    h, w, size = 60, 80, 16
    # constant along the axis the roi leaves the frame by, random across it: the frame extended by
    # its edge is then the same picture, and the held crop must equal that picture's crop
    line = rng.integers(40, 256, (w if axis == "rows" else h, 3), dtype=np.uint8)
    frame = (np.broadcast_to(line[None], (h, w, 3)) if axis == "rows"
             else np.broadcast_to(line[:, None], (h, w, 3)))[None].copy()
    x0, y0 = rng.uniform(5, 15, 2)
    if axis == "rows":   # past the top and the bottom
        rois = np.array([[0, x0, -rng.uniform(8, 20), x0 + 40, h + rng.uniform(3, 10)]], np.float32)
    else:                # past the left and the right
        rois = np.array([[0, -rng.uniform(8, 20), y0, w + rng.uniform(3, 10), y0 + 40]], np.float32)
    raw = _crop(frame, rois, size)
    held = hold_edges(raw, torch.from_numpy(rois), h, w)
    want = _edge_padded_crop(frame, rois, size, 32)
    assert (raw - want).abs().max() > 0.3  # the raw crop reads black past the edge
    torch.testing.assert_close(held, want, atol=2e-3, rtol=0)


def test_crop_inside_the_frame_is_unchanged_and_held_rows_repeat_the_nearest_inside() -> None:
    rng = np.random.default_rng()
    h, w, size = 50, 70, 12
    frame = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    rois = np.array([[0, 10.3, 6.1, 40.2, 44.7],    # inside
                     [1, -0.3, -0.4, w + 0.4, h + 0.3],  # the whole frame, its bins all readable
                     [1, 20.0, -30.0, 50.0, 20.0],  # past the top
                     [0, 30.0, 20.0, 30.0, 40.0],   # zero width
                     [1, 200.0, 200.0, 260.0, 260.0],  # outside the frame
                     [0, -1e6, -1e6, 1e6, 1e6]], np.float32)  # huge: no whole bin inside
    raw = _crop(frame, rois, size)
    held = hold_edges(raw, torch.from_numpy(rois), h, w)
    torch.testing.assert_close(held[[0, 1, 3, 4, 5]], raw[[0, 1, 3, 4, 5]], atol=0, rtol=0)
    # roi 2: bins of 50 / 12 px from y = -30.5; the first wholly at y >= -1 is bin 8
    step = 50.0 / size
    first = int(np.ceil((-1 + 30.5) / step))
    assert first == 8
    torch.testing.assert_close(held[2, :, first:], raw[2, :, first:], atol=0, rtol=0)
    torch.testing.assert_close(held[2, :, :first], raw[2, :, first : first + 1].expand(-1, first, -1),
                               atol=0, rtol=0)
    assert hold_edges(raw[:0], torch.from_numpy(rois[:0]), h, w).shape == (0, 3, size, size)


class _Recorder(torch.nn.Module):
    crop_size = 16

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_learned_model_never_sees_black_past_the_frame(layout: str) -> None:
    rng = np.random.default_rng()
    frames = rng.integers(120, 256, (1, 40, 56, 3), dtype=np.uint8)  # nothing dark in the frame
    rois = torch.tensor([[0, -12.0, -15.0, 30.0, 25.0]])  # a face at the top-left corner
    model = _Recorder()
    f = torch.from_numpy(frames)
    if layout == "nchw":
        f = f.permute(0, 3, 1, 2).contiguous()
    out = modify_faces(f, rois, method="learned", strength=None, model=model)
    assert out.shape == f.shape
    (seen,) = model.seen
    assert seen.min() > (100 / 255 - 0.5) / 0.5  # no zero (black) sample reached the model
    raw = ops.face_crop(f, rois, 16, *NORM)
    assert raw.min() < -0.9  # the raw crop would have shown black


# ---- band_limit: model faces low-passed to the box they are pasted into ---------------------------


def _reduced(faces: torch.Tensor, px: int) -> torch.Tensor:
    """Reference: the faces averaged over squares of ``S / px`` texels and brought back to their size."""
    import torch.nn.functional as F

    s = faces.shape[-1]
    small = F.avg_pool2d(faces, s // px)
    return F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)


def _rois(sides: list[tuple[float, float]]) -> torch.Tensor:
    return torch.tensor([[0.0, 5.0, 7.0, 5.0 + w, 7.0 + h] for w, h in sides], dtype=torch.float32)


def test_band_limit_leaves_faces_whose_box_shows_every_texel() -> None:
    faces = torch.rand(3, 3, 64, 64) * 2 - 1
    out = band_limit(faces, _rois([(64.0, 64.0), (300.0, 250.0), (64.0, 80.0)]))
    assert torch.equal(out, faces)


def test_band_limit_reduces_to_the_box_and_mixes_two_levels_between() -> None:
    faces = torch.rand(4, 3, 64, 64) * 2 - 1
    r = 64 / 2**0.5  # level 0.5: half the face, half its 32 px version
    out = band_limit(faces, _rois([(32.0, 32.0), (16.0, 10.0), (r, r), (4.0, 2.0)]))
    torch.testing.assert_close(out[0], _reduced(faces[:1], 32)[0])
    torch.testing.assert_close(out[1], _reduced(faces[1:2], 16)[0])  # the larger side decides
    torch.testing.assert_close(out[2], 0.5 * faces[2] + 0.5 * _reduced(faces[2:3], 32)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[3], _reduced(faces[3:], 4)[0])
    # only detail goes: each face keeps its mean colour
    torch.testing.assert_close(out.mean((2, 3)), faces.mean((2, 3)), atol=1e-2, rtol=0)


@pytest.mark.parametrize("side", [0.0, -5.0, 0.3, float("nan")])
def test_band_limit_degenerate_boxes_get_the_coarsest_level(side: float) -> None:
    faces = torch.rand(1, 3, 64, 64) * 2 - 1
    out = band_limit(faces, _rois([(side, side)]))
    torch.testing.assert_close(out, _reduced(faces, 2))
    assert torch.isfinite(out).all()


def test_band_limit_keeps_dtype_shape_and_empty() -> None:
    faces = (torch.rand(2, 3, 48, 48) * 2 - 1).double()
    out = band_limit(faces, _rois([(12.0, 12.0), (96.0, 96.0)]))
    assert out.dtype == torch.float64 and out.shape == faces.shape
    empty = torch.zeros(0, 3, 64, 64)
    assert band_limit(empty, torch.zeros(0, 5)).shape == (0, 3, 64, 64)


class _Stripes(torch.nn.Module):
    """A model that draws stripes 5 texels apart on every face: detail a 16 px box cannot show."""

    crop_size = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = torch.arange(x.shape[-1], dtype=torch.float32)
        stripes = 0.8 * torch.cos(2 * torch.pi * i / 5.0)
        return stripes.expand_as(x).clone()


def test_small_pasted_faces_do_not_flicker_with_sub_pixel_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64 px drawing pasted into a 16 px box that moves by a third of a pixel per frame: the pasted
    pixels barely change with band limiting; without it (the paste alone) they alias and jump."""
    import anonface.render as render

    frames = torch.full((1, 48, 48, 3), 120, dtype=torch.uint8)

    def change() -> float:
        outs = [modify_faces(frames, torch.tensor([[0.0, 10.0 + d, 12.0, 26.0 + d, 28.0]]), method="learned",
                             strength=None, mask="box", model=_Stripes()).float()
                for d in (0.0, 1 / 3, 2 / 3)]
        return float(sum((a - b).abs().mean() for a, b in zip(outs, outs[1:])))

    steady = change()
    monkeypatch.setattr(render, "band_limit", lambda faces, rois: faces)
    aliased = change()
    assert aliased > 4 * steady, (aliased, steady)
