"""face_paste against its reference, its invariants (round trip, untouched outside, order) and bad input."""

from __future__ import annotations

import pytest
import torch
from face_testing import DEVICES, DTYPES, covered, nondet_tol, random_frames, random_rois, seed_gen, to_layout

from anonface.ops import FacePaste, face_crop, face_paste, face_paste_
from anonface.ops.face_reference import face_paste_reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("mask,feather", [("ellipse", 0.1), ("box", 0.0), ("ellipse", 0.0), ("box", 0.3)])
def test_paste_matches_reference(device, dtype, channels_last, mask, feather):
    gen = seed_gen()
    b, h, w = 2, 37, 45
    frames = random_frames(b, h, w, dtype, channels_last, gen)
    rois = random_rois(7, b, h, w, gen)
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    faces = torch.randn(7, 3, 11, 9, generator=gen, dtype=cdt)
    mean, std = (0.5, 0.4, 0.3), (0.3, 0.5, 0.4)
    out = face_paste(frames.to(device), faces.to(device), rois.to(device), mean, std, mask, feather)
    ref = face_paste_reference(frames, faces, rois, mean, std, mask, feather, channels_last)
    assert out.shape == frames.shape and out.dtype == frames.dtype and out.device.type == device
    if dtype == torch.uint8:
        diff = (out.cpu().int() - ref.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"seed {gen.initial_seed()}"
    else:
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(out.cpu(), ref, atol=tol, rtol=0, msg=f"seed {gen.initial_seed()}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_paste_round_trip_gives_frame_back(device, dtype):
    """Crop at the box size (integer boxes) and paste back: the frame comes back inside the mask."""
    gen = seed_gen()
    frames = random_frames(2, 40, 50, dtype, True, gen).to(device)
    for size in [8, 13, 21]:
        x, y = torch.randint(-3, 40, (2,), generator=gen).tolist()
        rois = torch.tensor([[1, x, y, x + size, y + size]], dtype=torch.float32, device=device)
        crop = face_crop(frames, rois, size)
        out = face_paste(frames, crop, rois)
        if dtype == torch.uint8:
            assert torch.equal(out, frames)
        else:
            torch.testing.assert_close(out, frames, atol=1e-6 if dtype == torch.float32 else 1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.uint8])
def test_paste_round_trip_upsampled_smooth(dtype):
    """A crop larger than the box, on a smooth (linear) frame, gives the frame back up to the
    edge clamp: pixels in the last half texel of the box read the edge texel (error <= slope *
    half a texel, < 2.5e-3 here)."""
    yy, xx = torch.meshgrid(torch.arange(60.0), torch.arange(80.0), indexing="ij")
    f = (0.2 + 0.004 * yy + 0.005 * xx).double()
    frames = torch.stack([f, 1 - f, 0.5 * f], -1)[None]
    if dtype == torch.uint8:
        frames = torch.round(frames * 255).to(torch.uint8)
    gen = seed_gen()
    for _ in range(4):
        x1, y1 = (torch.rand(2, generator=gen) * 30 + 2).tolist()
        s = float(torch.rand(1, generator=gen) * 20 + 6)
        rois = torch.tensor([[0, x1, y1, x1 + s, y1 + s * 0.9]], dtype=torch.float64)
        crop = face_crop(frames, rois, int(2 * s) + 3)
        out = face_paste(frames, crop, rois, feather=0.0)
        diff = (out.double() - frames.double()).abs().max().item()
        assert diff <= (1.0 if dtype == torch.uint8 else 2.5e-3), (rois, diff)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_paste_leaves_outside_untouched(device, dtype, channels_last):
    gen = seed_gen()
    b, h, w = 3, 33, 29
    frames = random_frames(b, h, w, dtype, channels_last, gen).to(device)
    rois = random_rois(6, b, h, w, gen).to(device)
    cdt = torch.float64 if dtype == torch.float64 else torch.float32
    faces = torch.randn(6, 3, 7, 7, generator=gen, dtype=cdt).to(device) * 5
    out = face_paste(frames, faces, rois, mask="box", feather=0.0)
    inside = covered(rois.cpu(), b, h, w)
    o, f = to_layout(out, channels_last).cpu(), to_layout(frames, channels_last).cpu()
    assert torch.equal(o[~inside], f[~inside]), f"seed {gen.initial_seed()}"
    assert not torch.equal(o[inside], f[inside])
    # ellipse: the box's corners are outside the mask and stay as they were
    out = face_paste(frames, faces, rois, mask="ellipse", feather=0.2)
    o = to_layout(out, channels_last).cpu()
    assert torch.equal(o[~inside], f[~inside])
    out = face_paste(frames, faces[:1], rois[:1], mask="ellipse", feather=0.2)
    o = to_layout(out, channels_last).cpu()
    n, x1, y1, x2, y2 = rois[0].cpu().double().tolist()
    n = int(n)
    # every pixel of the box whose centre lies outside the ellipse inscribed in it stays as it was
    # (the feather band lies inside the ellipse)
    checked = 0
    for i in range(max(0, int(y1)), min(h, int(y2) + 1)):
        for j in range(max(0, int(x1)), min(w, int(x2) + 1)):
            u = (j + 0.5 - (x1 + x2) / 2) / max((x2 - x1) / 2, 1e-9)
            v = (i + 0.5 - (y1 + y2) / 2) / max((y2 - y1) / 2, 1e-9)
            if u * u + v * v > 1.0 + 1e-6 and abs(u) <= 1 and abs(v) <= 1:
                assert torch.equal(o[n, i, j], f[n, i, j]), (i, j, u, v)
                checked += 1
    if x2 - x1 > 8 and y2 - y1 > 8 and x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
        assert checked > 0


@pytest.mark.parametrize("device", DEVICES)
def test_paste_later_box_wins(device):
    frames = torch.rand(1, 20, 20, 3, dtype=torch.float64, device=device)
    rois = torch.tensor([[0, 2, 2, 18, 18], [0, 2, 2, 18, 18]], dtype=torch.float64, device=device)
    faces = torch.stack([torch.full((3, 4, 4), -1.0), torch.full((3, 4, 4), 0.6)]).double().to(device)
    out = face_paste(frames, faces, rois, feather=0.0)
    # the centre pixel shows the second face: 0.6 * 0.5 + 0.5
    assert torch.allclose(out[0, 10, 10], torch.full((3,), 0.8, dtype=torch.float64, device=device))
    out = face_paste(frames, faces.flip(0), rois, feather=0.0)
    assert torch.allclose(out[0, 10, 10], torch.full((3,), 0.0, dtype=torch.float64, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_paste_degenerate_and_empty(device):
    gen = seed_gen()
    frames = random_frames(2, 16, 18, torch.uint8, True, gen).to(device)
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor([[0, 5, 5, 5, 9], [0, 8, 8, 3, 2], [1, nan, 1, 5, 5], [0, 50, 50, 70, 80],
                         [1, -30, -30, -1, -2], [1, 3.2, 3.2, 3.4, 3.4]], device=device)
    faces = torch.randn(6, 3, 5, 5, device=device)
    out = face_paste(frames, faces, rois)
    assert torch.equal(out, frames)
    out = face_paste(frames, torch.zeros(0, 3, 4, 4, device=device), torch.zeros(0, 5, device=device))
    assert torch.equal(out, frames) and out.data_ptr() != frames.data_ptr()
    # a box covering everything (infinite corners) is pasted over the whole frame
    out = face_paste(frames, torch.full((1, 3, 2, 2), 1.0, device=device),
                     torch.tensor([[0, -inf, -inf, inf, inf]], device=device), mask="box", feather=0.0)
    assert (out[0] == 255).all() and torch.equal(out[1], frames[1])
    out = face_paste(torch.zeros(0, 5, 5, 3, device=device), torch.zeros(0, 3, 2, 2, device=device),
                     torch.zeros(0, 5, device=device))
    assert out.shape == (0, 5, 5, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_paste_bad_input(device):
    frames = torch.rand(2, 10, 12, 3, device=device)
    rois = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]], device=device)
    faces = torch.rand(1, 3, 4, 4, device=device)
    with pytest.raises(ValueError, match="frame index"):
        face_paste(frames, faces, rois + torch.tensor([5.0, 0, 0, 0, 0], device=device))
    with pytest.raises(ValueError, match="faces"):
        face_paste(frames, faces[:, :2], rois)
    with pytest.raises(ValueError, match="faces"):
        face_paste(frames, torch.rand(2, 3, 4, 4, device=device), rois)
    with pytest.raises(ValueError, match="mask"):
        face_paste(frames, faces, rois, mask="circle")
    with pytest.raises(ValueError, match="feather"):
        face_paste(frames, faces, rois, feather=0.7)
    with pytest.raises(ValueError, match="faces must be Float"):  # the op wants the compute dtype
        torch.ops.anonface.face_paste(frames, faces.double(), rois, [0.5] * 3, [0.5] * 3, "box", 0.1, True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("mask", ["ellipse", "box"])
def test_paste_gradcheck(device, channels_last, mask):
    gen = seed_gen()
    frames = random_frames(2, 10, 9, torch.float64, channels_last, gen).to(device).requires_grad_()
    faces = torch.randn(4, 3, 4, 5, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    rois = torch.tensor([[0, 1.3, 0.6, 8.2, 7.7], [0, 3, 2, 9.5, 9], [1, -2, 3, 14, 8], [1, 4, 4, 3, 3]],
                        dtype=torch.float64, device=device)

    def fn(f, x):
        return face_paste(f, x, rois, (0.1, 0.2, 0.3), (0.5, 2.0, 1.0), mask, 0.2)

    assert torch.autograd.gradcheck(fn, (frames, faces), fast_mode=True, nondet_tol=nondet_tol(device))
    small = faces[:, :, :3, :2].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: fn(frames.detach(), x), (small,), nondet_tol=nondet_tol(device))


@pytest.mark.parametrize("device", DEVICES)
def test_paste_opcheck_and_module(device):
    gen = seed_gen()
    rois = random_rois(4, 2, 12, 14, gen).to(device)
    for dtype, cl in [(torch.float64, True), (torch.float32, False), (torch.uint8, True)]:
        frames = random_frames(2, 12, 14, dtype, cl, gen).to(device)
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        faces = torch.randn(4, 3, 5, 6, generator=gen, dtype=cdt).to(device)
        if dtype == torch.float64:
            frames.requires_grad_()
            faces.requires_grad_()
        torch.library.opcheck(torch.ops.anonface.face_paste.default,
                              (frames, faces, rois, [0.5] * 3, [0.5] * 3, "ellipse", 0.1, cl))
        torch.testing.assert_close(FacePaste(feather=0.1)(frames, faces, rois),
                                   face_paste(frames, faces, rois, feather=0.1))
    grad = torch.rand(2, 12, 14, 3, dtype=torch.float64, device=device)
    faces = torch.randn(4, 3, 5, 6, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.anonface._face_paste_backward.default,
                          (grad, faces, rois, [0.5] * 3, "box", 0.2, True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("mask,feather", [("ellipse", 0.05), ("ellipse", 0.0), ("ellipse", 0.5), ("box", 0.2)])
@pytest.mark.parametrize("face_side", [5, 96])
def test_paste_crowded_frame_matches_reference(device, channels_last, mask, feather, face_side):
    """Many large, overlapping boxes on uint8 frames, partly outside the frame: rows where one box
    is alone (its alpha == 1 run written directly, the columns outside the ellipse skipped) and rows
    where boxes overlap (blended in order in a row buffer); small faces (the SSE bilinear path:
    fewer texels than pixels) and large ones (scalar path). Same as the reference, and the
    in-place op writes the same pixels."""
    gen = seed_gen()
    b, h, w, k = 2, 120, 200, 24
    frames = random_frames(b, h, w, torch.uint8, channels_last, gen)
    rois = random_rois(k, b, h, w, gen, min_size=10.0, max_size=90.0, outside=0.1)
    faces = torch.randn(k, 3, face_side, face_side, generator=gen).clamp(-2, 2)
    mean, std = (0.5, 0.4, 0.3), (0.3, 0.5, 0.4)
    out = face_paste(frames.to(device), faces.to(device), rois.to(device), mean, std, mask, feather)
    ref = face_paste_reference(frames, faces, rois, mean, std, mask, feather, channels_last)
    diff = (out.cpu().int() - ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"seed {gen.initial_seed()}"
    work = frames.clone().to(device)
    face_paste_(work, faces.to(device), rois.to(device), mean, std, mask, feather)
    assert torch.equal(work.cpu(), out.cpu())
