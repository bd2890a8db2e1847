"""face_crop against its reference, a naive roi_align, hand-computed cases and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from face_testing import DEVICES, DTYPES, nondet_tol, random_frames, random_rois, seed_gen

from anonface.ops import FaceCrop, face_crop
from anonface.ops.face_reference import face_crop_reference


def naive_roi_align(img: torch.Tensor, box, ph: int, pw: int) -> torch.Tensor:
    """torchvision's roi_align (aligned=True, sampling_ratio=-1) written out with loops."""
    c, h, w = img.shape
    x1, y1, x2, y2 = box
    sx, sy = x1 - 0.5, y1 - 0.5
    rw, rh = x2 - x1, y2 - y1
    bw, bh = rw / pw, rh / ph
    gh, gw = math.ceil(rh / ph), math.ceil(rw / pw)
    count = max(gh * gw, 1)
    out = torch.zeros(c, ph, pw, dtype=torch.float64)

    def bil(y, x):
        if y < -1.0 or y > h or x < -1.0 or x > w:
            return torch.zeros(c, dtype=torch.float64)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= h - 1:
            yh = yl = h - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= w - 1:
            xh = xl = w - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        hy, hx = 1 - ly, 1 - lx
        return hy * hx * img[:, yl, xl] + hy * lx * img[:, yl, xh] + ly * hx * img[:, yh, xl] + ly * lx * img[:, yh, xh]

    for p in range(ph):
        for q in range(pw):
            acc = torch.zeros(c, dtype=torch.float64)
            for iy in range(max(gh, 0)):
                y = sy + p * bh + (iy + 0.5) * bh / gh
                for ix in range(max(gw, 0)):
                    x = sx + q * bw + (ix + 0.5) * bw / gw
                    acc += bil(y, x)
            out[:, p, q] = acc / count
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_crop_matches_reference(device, dtype, channels_last):
    gen = seed_gen()
    b, h, w = 3, 41, 57
    frames = random_frames(b, h, w, dtype, channels_last, gen)
    rois = random_rois(9, b, h, w, gen)
    rois[0] = torch.tensor([1, -5.0, -3.0, w + 4.0, h + 6.0])  # larger than the frame
    rois[1] = torch.tensor([2, 10.2, 11.7, 11.1, 12.0])  # smaller than a pixel
    size, mean, std = (13, 17), (0.4, 0.5, 0.6), (0.3, 0.25, 0.2)
    out = face_crop(frames.to(device), rois.to(device), size, mean, std)
    ref = face_crop_reference(frames, rois, size, mean, std, channels_last)
    assert out.shape == (9, 3, 13, 17) and out.dtype == ref.dtype and out.device.type == device
    tol = 1e-10 if dtype == torch.float64 else 3e-5
    torch.testing.assert_close(out.cpu(), ref, atol=tol, rtol=0, msg=f"seed {gen.initial_seed()}")


def test_crop_equals_naive_roi_align():
    gen = seed_gen()
    img = torch.rand(1, 3, 9, 11, generator=gen, dtype=torch.float64)
    boxes = [(1.3, 0.7, 8.9, 7.6), (-2.0, -1.5, 4.0, 3.0), (5.0, 5.0, 30.0, 20.0), (2.0, 2.0, 2.5, 6.0),
             (0.0, 0.0, 11.0, 9.0), (4.0, 4.0, 3.0, 6.0), (10.6, 8.7, 12.0, 10.0)]
    for size in [(3, 4), (5, 5), (1, 2)]:
        rois = torch.tensor([[0.0, *bx] for bx in boxes], dtype=torch.float64)
        out = face_crop(img, rois, size, 0.0, 1.0, channels_last=False)
        for k, bx in enumerate(boxes):
            want = naive_roi_align(img[0], bx, *size)
            torch.testing.assert_close(out[k], want, atol=1e-12, rtol=0, msg=f"box {bx} size {size}")


def test_crop_hand_computed_5x5():
    img = torch.arange(25, dtype=torch.float64).view(1, 5, 5, 1).expand(1, 5, 5, 3).contiguous()
    rois = torch.tensor([[0, 0, 0, 5, 5], [0, 1, 1, 3, 3], [0, 0, 0, 4, 4]], dtype=torch.float64)
    full = face_crop(img, rois[:1], 5, 0.0, 1.0)
    torch.testing.assert_close(full[0, 0], img[0, :, :, 0])  # samples land on pixel centres
    two = face_crop(img, rois[1:2], 2, 0.0, 1.0)
    torch.testing.assert_close(two[0, 1], img[0, 1:3, 1:3, 0])
    one = face_crop(img, rois[2:3], 1, 0.0, 1.0)  # adaptive grid: the mean of the 4 x 4 block
    assert one[0, 2, 0, 0].item() == pytest.approx(img[0, :4, :4, 0].mean().item())


def test_crop_uint8_equals_float_and_layouts_agree():
    gen = seed_gen()
    frames = random_frames(2, 30, 40, torch.uint8, True, gen)
    rois = random_rois(6, 2, 30, 40, gen)
    a = face_crop(frames, rois, 12)
    b = face_crop(frames.float() / 255, rois, 12)
    torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
    c = face_crop(frames.permute(0, 3, 1, 2).contiguous(), rois, 12)
    torch.testing.assert_close(a, c, atol=0, rtol=0)
    # non-contiguous views are read through their strides
    big = random_frames(2, 60, 40, torch.float32, False, gen)
    view = big[:, :, ::2, :]
    torch.testing.assert_close(face_crop(view, rois, 12), face_crop(view.contiguous(), rois, 12))
    torch.testing.assert_close(FaceCrop(12)(frames, rois), a)


def test_crop_layout_rule():
    f = torch.rand(1, 3, 8, 3)  # ambiguous: read as channels-last
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    cl = face_crop(f, rois, 2)
    torch.testing.assert_close(cl, face_crop(f, rois, 2, channels_last=True))
    cf = face_crop(f, rois, 2, channels_last=False)
    torch.testing.assert_close(cf, face_crop(f.permute(0, 2, 3, 1).contiguous(), rois, 2, channels_last=True))


@pytest.mark.parametrize("device", DEVICES)
def test_crop_degenerate_boxes(device):
    gen = seed_gen()
    frames = random_frames(2, 20, 30, torch.uint8, True, gen).to(device)
    nan = float("nan")
    rois = torch.tensor([
        [0, 5, 5, 5, 9],          # zero width
        [0, 8, 8, 3, 2],          # inverted
        [1, nan, 1, 5, 5],        # NaN
        [1, 1, 1, 5, nan],
        [0, 100, 100, 120, 130],  # far outside
        [1, -50, -40, -20, -10],
    ], device=device)
    mean, std = (0.5, 0.4, 0.3), (0.5, 0.5, 0.25)
    out = face_crop(frames, rois, 7, mean, std)
    want = ((torch.zeros(3) - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1).expand(6, 3, 7, 7)
    torch.testing.assert_close(out.cpu(), want.float(), atol=0, rtol=0)
    inf = float("inf")
    huge = torch.tensor([[0, -inf, -inf, inf, inf], [1, -1e30, 2, 1e30, 9]], device=device)
    out = face_crop(frames, huge, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("device", DEVICES)
def test_crop_empty(device):
    frames = torch.rand(2, 10, 12, 3, device=device)
    out = face_crop(frames, torch.zeros(0, 5, device=device), 8)
    assert out.shape == (0, 3, 8, 8)
    out = face_crop(torch.rand(0, 10, 12, 3, device=device), torch.zeros(0, 5, device=device), (4, 5))
    assert out.shape == (0, 3, 4, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_bad_input(device):
    frames = torch.rand(2, 10, 12, 3, device=device)
    good = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]], device=device)
    for idx in [2.0, -1.0, 0.5, float("nan")]:
        bad = good.clone()
        bad[0, 0] = idx
        with pytest.raises(ValueError, match="frame index"):
            face_crop(frames, bad, 4)
        with pytest.raises(ValueError, match="frame index"):  # the op itself checks too
            torch.ops.anonface.face_crop(frames, bad, [4, 4], [0.5] * 3, [0.5] * 3, True)
    with pytest.raises(ValueError, match="rois"):
        face_crop(frames, good[:, :4], 4)
    with pytest.raises(ValueError, match="frames"):
        face_crop(frames.to(torch.int32), good, 4)
    with pytest.raises(ValueError, match="frames"):
        face_crop(frames[0], good, 4)
    with pytest.raises(ValueError, match="frames"):
        face_crop(torch.rand(1, 4, 5, 6), good, 4)
    with pytest.raises(ValueError, match="std"):
        face_crop(frames, good, 4, std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="size"):
        face_crop(frames, good, 0)
    with pytest.raises(ValueError, match="channels"):
        torch.ops.anonface.face_crop(frames, good, [4, 4], [0.5] * 3, [0.5] * 3, False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_crop_gradcheck(device, channels_last):
    gen = seed_gen()
    frames = random_frames(2, 9, 11, torch.float64, channels_last, gen).to(device).requires_grad_()
    rois = torch.tensor([[0, 1.3, 0.6, 8.2, 7.7], [1, -2, 3, 14, 8], [0, 4, 4, 6.5, 9], [1, 3, 3, 2, 2]],
                        dtype=torch.float64, device=device)
    fn = lambda f: face_crop(f, rois, (4, 5), (0.1, 0.2, 0.3), (0.5, 2.0, 1.0))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (frames,), fast_mode=True, nondet_tol=nondet_tol(device))
    small = frames[:, :6, :7] if channels_last else frames[:, :, :6, :7]
    assert torch.autograd.gradcheck(lambda f: face_crop(f, rois[:2], 3), (small.detach().requires_grad_(),),
                                    nondet_tol=nondet_tol(device))
    # uint8 frames give a crop that does not require grad
    assert not face_crop(torch.zeros(1, 4, 4, 3, dtype=torch.uint8, device=device), rois[:1] * 0, 2).requires_grad


@pytest.mark.parametrize("device", DEVICES)
def test_crop_opcheck(device):
    gen = seed_gen()
    rois = random_rois(4, 2, 12, 14, gen).to(device)
    for dtype, cl in [(torch.float64, True), (torch.float32, False), (torch.uint8, True)]:
        frames = random_frames(2, 12, 14, dtype, cl, gen).to(device)
        if dtype == torch.float64:
            frames.requires_grad_()
        torch.library.opcheck(torch.ops.anonface.face_crop.default, (frames, rois, [5, 6], [0.5] * 3, [0.5] * 3, cl))
    grad = torch.rand(4, 3, 5, 6, dtype=torch.float64, device=device)
    torch.library.opcheck(torch.ops.anonface._face_crop_backward.default, (grad, rois, [2, 12, 14, 3], [0.5] * 3, True))


def test_crop_equals_compiled_roi_align():
    """The contract itself: face_crop == normalise(roi_align(frames / 255, aligned=True))."""
    from anonface.ops import roi
    gen = seed_gen()
    frames = random_frames(3, 33, 47, torch.uint8, True, gen)
    rois = random_rois(10, 3, 33, 47, gen)
    x = frames.permute(0, 3, 1, 2).float() / 255
    want = (roi.roi_align(x, rois, (9, 11), 1.0, -1, True) - 0.5) / 0.25
    got = face_crop(frames, rois, (9, 11), 0.5, 0.25)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0, msg=f"seed {gen.initial_seed()}")
