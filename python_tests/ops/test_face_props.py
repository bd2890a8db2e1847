"""Property-based tests (hypothesis) of the face ops over odd frames and boxes: partly or fully
outside, zero-size, inverted, NaN and infinite coordinates, K = 0, frame index out of range."""

from __future__ import annotations

import math

import pytest
import torch
from face_testing import covered, to_layout
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from anonface.ops import face_crop, face_modify, face_paste
from anonface.ops.face_reference import face_crop_reference, face_modify_reference, face_paste_reference

SPECIAL = [math.nan, math.inf, -math.inf, 1e30, -1e30, 0.0]


@st.composite
def scenes(draw):
    b = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    dtype = draw(st.sampled_from([torch.uint8, torch.float32, torch.float64]))
    channels_last = draw(st.booleans())
    k = draw(st.integers(0, 5))
    coord = st.one_of(
        st.floats(-1.5 * max(h, w), 2.5 * max(h, w), allow_nan=False, width=32),
        st.sampled_from(SPECIAL),
    )
    rows = [[draw(st.integers(0, b - 1))] + [draw(coord) for _ in range(4)] for _ in range(k)]
    rois = torch.tensor(rows, dtype=torch.float32).reshape(k, 5)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, h, w, 3), generator=g, dtype=torch.uint8)
    if dtype != torch.uint8:
        frames = frames.to(dtype) / 255
    if not channels_last:
        frames = frames.permute(0, 3, 1, 2).contiguous()
    return frames, rois, channels_last, g


def bounded(rois: torch.Tensor) -> bool:
    c = rois[:, 1:]
    return bool(torch.isfinite(c).all() and (c.abs() < 1e3).all())


@settings(max_examples=40, deadline=None)
@given(scenes(), st.integers(1, 9), st.integers(1, 9))
def test_prop_crop(scene, sh, sw):
    frames, rois, cl, _ = scene
    out = face_crop(frames, rois, (sh, sw), channels_last=cl)
    assert out.shape == (rois.shape[0], 3, sh, sw)
    assert torch.isfinite(out).all()
    ref = face_crop_reference(frames, rois, (sh, sw), channels_last=cl)
    tol = 1e-10 if frames.dtype == torch.float64 else 3e-5
    torch.testing.assert_close(out, ref, atol=tol, rtol=0)


@settings(max_examples=40, deadline=None)
@given(scenes(), st.sampled_from(["ellipse", "box"]), st.sampled_from([0.0, 0.1, 0.5]))
def test_prop_paste(scene, mask, feather):
    frames, rois, cl, g = scene
    cdt = torch.float64 if frames.dtype == torch.float64 else torch.float32
    faces = torch.randn(rois.shape[0], 3, 3, 4, generator=g, dtype=cdt)
    out = face_paste(frames, faces, rois, mask=mask, feather=feather, channels_last=cl)
    assert out.shape == frames.shape and out.dtype == frames.dtype
    b, h, w = to_layout(frames, cl).shape[:3]
    inside = covered(rois, b, h, w)
    assert torch.equal(to_layout(out, cl)[~inside], to_layout(frames, cl)[~inside])
    ref = face_paste_reference(frames, faces, rois, mask=mask, feather=feather, channels_last=cl)
    if frames.dtype == torch.uint8:
        assert (out.int() - ref.int()).abs().max().item() <= 1 if out.numel() else True
    else:
        torch.testing.assert_close(out, ref, atol=1e-12 if cdt == torch.float64 else 2e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(scenes(), st.sampled_from([("pixelate", 3.0), ("blur", 0.1), ("solid", 9.0), ("noise", 30.0)]))
def test_prop_modify(scene, method_strength):
    frames, rois, cl, _ = scene
    method, strength = method_strength
    out = face_modify(frames, rois, method, strength, channels_last=cl)
    b, h, w = to_layout(frames, cl).shape[:3]
    inside = covered(rois, b, h, w)
    assert torch.equal(to_layout(out, cl)[~inside], to_layout(frames, cl)[~inside])
    if bounded(rois) or method != "blur":
        ref = face_modify_reference(frames, rois, method, strength, channels_last=cl)
        if frames.dtype == torch.uint8:
            assert (out.int() - ref.int()).abs().max().item() <= 1 if out.numel() else True
        else:
            tol = 1e-12 if frames.dtype == torch.float64 else 2e-6
            torch.testing.assert_close(out, ref, atol=tol, rtol=0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.one_of(st.integers(-5, -1), st.integers(3, 9)).map(float) | st.sampled_from([math.nan, 0.5]))
def test_prop_bad_frame_index(b, idx):
    frames = torch.zeros(b, 6, 7, 3, dtype=torch.uint8)
    if 0 <= idx < b and idx == int(idx):
        return
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0], [idx, 1.0, 1.0, 4.0, 4.0]])
    for call in (lambda: face_crop(frames, rois, 3), lambda: face_paste(frames, torch.zeros(2, 3, 3, 3), rois),
                 lambda: face_modify(frames, rois, "solid")):
        with pytest.raises(ValueError, match="frame index"):
            call()
