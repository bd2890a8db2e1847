"""face_modify against its reference, per-method facts (cell means, fill, blur, noise) and bad input."""

from __future__ import annotations

import pytest
import torch
from face_testing import DEVICES, DTYPES, covered, random_frames, random_rois, seed_gen, to_layout  # noqa: F401

from anonface.ops import FaceModify, face_modify, face_paste
from anonface.ops.face_reference import face_modify_reference

METHODS = [("pixelate", 5.0), ("pixelate", 1.0), ("blur", 0.1), ("blur", 0.02), ("solid", 77.0), ("noise", 40.0)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("method,strength", METHODS)
def test_modify_matches_reference(device, dtype, channels_last, method, strength):
    gen = seed_gen()
    b, h, w = 2, 35, 43
    frames = random_frames(b, h, w, dtype, channels_last, gen)
    rois = random_rois(6, b, h, w, gen)
    mask, feather = ("ellipse", 0.1) if channels_last else ("box", 0.05)
    out = face_modify(frames.to(device), rois.to(device), method, strength, mask, feather, seed=7)
    ref = face_modify_reference(frames, rois, method, strength, mask, feather, 7, channels_last)
    assert out.shape == frames.shape and out.dtype == frames.dtype and out.device.type == device
    if dtype == torch.uint8:
        diff = (out.cpu().int() - ref.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"seed {gen.initial_seed()}"
    else:
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(out.cpu(), ref, atol=tol, rtol=0, msg=f"seed {gen.initial_seed()}")
    if method == "noise" or (method == "pixelate" and dtype == torch.uint8):
        # integer-exact paths: identical to the reference, bit for bit
        assert torch.equal(out.cpu(), ref)


@pytest.mark.parametrize("device", DEVICES)
def test_modify_pixelate_cells_are_means(device):
    gen = seed_gen()
    frames = random_frames(1, 30, 40, torch.float64, True, gen).to(device)
    rois = torch.tensor([[0, 4, 6, 28, 24]], dtype=torch.float64, device=device)  # 24 x 18 px, 4 x 4 cells
    out = face_modify(frames, rois, "pixelate", 4, mask="box", feather=0.0)
    for cy in range(4):
        for cx in range(4):
            rows, cols = slice(6 + cy * 18 // 4, 6 + (cy + 1) * 18 // 4), slice(4 + cx * 6, 4 + (cx + 1) * 6)
            if 18 % 4:  # rows split 4.5 px per cell: use the pixel-centre rule
                r0 = 6 + int(torch.ceil(torch.tensor(cy * 4.5 - 0.5)).clamp(min=0))
                r1 = 6 + int(torch.ceil(torch.tensor((cy + 1) * 4.5 - 0.5)))
                rows = slice(r0, r1)
            want = frames[0, rows, cols].reshape(-1, 3).mean(0)
            got = out[0, rows, cols].reshape(-1, 3)
            torch.testing.assert_close(got, want.expand_as(got), atol=1e-12, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_modify_solid_fill_and_outside_untouched(device, dtype):
    gen = seed_gen()
    b, h, w = 2, 25, 31
    frames = random_frames(b, h, w, dtype, True, gen).to(device)
    rois = random_rois(5, b, h, w, gen).to(device)
    inside = covered(rois.cpu(), b, h, w)
    out = face_modify(frames, rois, "solid", 200.0, mask="box", feather=0.0).cpu()
    want = 200 if dtype == torch.uint8 else 200 / 255
    assert torch.allclose(out[inside].double(), torch.full_like(out[inside].double(), want))
    assert torch.equal(out[~inside], frames.cpu()[~inside])
    for method in ["pixelate", "blur", "noise"]:
        out = face_modify(frames, rois, method, mask="ellipse").cpu()
        assert torch.equal(out[~inside], frames.cpu()[~inside]), method


@pytest.mark.parametrize("device", DEVICES)
def test_modify_blur_smooths_and_keeps_constants(device):
    gen = seed_gen()
    frames = random_frames(1, 64, 64, torch.float32, True, gen).to(device)
    rois = torch.tensor([[0, 8, 8, 56, 56]], device=device)
    out = face_modify(frames, rois, "blur", 0.1, mask="box", feather=0.0)
    inner = (slice(None), slice(12, 52), slice(12, 52))
    assert out[inner].std() < 0.25 * frames[inner].std()
    const = torch.full((1, 40, 40, 3), 0.3, device=device)
    # partly outside the frame: the grid's weights are renormalised, so no dark border
    rois = torch.tensor([[0, -10, -10, 30, 30]], device=device)
    torch.testing.assert_close(face_modify(const, rois, "blur", 0.05), const, atol=1e-6, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_modify_noise_is_keyed(device):
    gen = seed_gen()
    frames = random_frames(2, 20, 24, torch.uint8, True, gen).to(device)
    rois = torch.tensor([[0, 2, 2, 18, 18], [1, 2, 2, 18, 18]], device=device)
    a = face_modify(frames, rois, "noise", 30.0, seed=5)
    assert torch.equal(a, face_modify(frames, rois, "noise", 30.0, seed=5))
    assert not torch.equal(a, face_modify(frames, rois, "noise", 30.0, seed=6))
    # the noise of a pixel does not depend on the box that covers it
    b = face_modify(frames, torch.tensor([[0, 0, 0, 24, 20]], device=device), "noise", 30.0, "box", 0.0, seed=5)
    assert torch.equal(a[0, 10, 10], b[0, 10, 10])
    # sigma: the added noise has roughly the asked spread (float frames: no clipping)
    f = torch.full((1, 100, 100, 3), 0.5, dtype=torch.float64, device=device)
    n = face_modify(f, torch.tensor([[0, 0, 0, 100, 100.0]], device=device), "noise", 25.5, "box", 0.0) - f
    assert abs(n.std().item() - 0.1) < 0.005 and abs(n.mean().item()) < 0.005


@pytest.mark.cuda
def test_modify_cpu_cuda_bitwise():
    gen = seed_gen()
    frames = random_frames(2, 50, 60, torch.uint8, True, gen)
    rois = random_rois(8, 2, 50, 60, gen)
    for method in ["noise", "pixelate", "solid"]:
        a = face_modify(frames, rois, method, seed=11)
        b = face_modify(frames.cuda(), rois.cuda(), method, seed=11).cpu()
        assert torch.equal(a, b), method


@pytest.mark.parametrize("device", DEVICES)
def test_modify_degenerate_empty_and_bad_input(device):
    gen = seed_gen()
    frames = random_frames(2, 16, 18, torch.uint8, False, gen).to(device)
    nan = float("nan")
    rois = torch.tensor([[0, 5, 5, 5, 9], [0, 8, 8, 3, 2], [1, nan, 1, 5, 5], [0, 50, 50, 70, 80]], device=device)
    for method in ["pixelate", "blur", "solid", "noise"]:
        assert torch.equal(face_modify(frames, rois, method), frames)
        assert torch.equal(face_modify(frames, torch.zeros(0, 5, device=device), method), frames)
    huge = torch.tensor([[1, -1e30, -1e30, 1e30, 1e30]], device=device)
    out = face_modify(frames, huge, "pixelate", 2, mask="box", feather=0.0)
    assert torch.equal(out[0], frames[0])
    with pytest.raises(ValueError, match="method"):
        face_modify(frames, rois, "swirl")
    with pytest.raises(ValueError, match="strength"):
        face_modify(frames, rois, "pixelate", 0.5)
    with pytest.raises(ValueError, match="strength"):
        face_modify(frames, rois, "blur", 0.0)
    with pytest.raises(ValueError, match="strength"):
        torch.ops.anonface.face_modify(frames, rois, "noise", -1.0, "box", 0.1, 0, False)
    with pytest.raises(ValueError, match="frame index"):
        face_modify(frames, torch.tensor([[2, 1, 1, 5, 5.0]], device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_modify_opcheck_and_module(device):
    gen = seed_gen()
    rois = random_rois(4, 2, 12, 14, gen).to(device)
    frames = random_frames(2, 12, 14, torch.uint8, True, gen).to(device)
    for method, strength in METHODS[::2]:
        torch.library.opcheck(torch.ops.anonface.face_modify.default,
                              (frames, rois, method, strength, "ellipse", 0.1, 3, True))
    assert torch.equal(FaceModify("blur", 0.1, seed=2)(frames, rois), face_modify(frames, rois, "blur", 0.1, seed=2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_inplace_variants_match(device, channels_last):
    from anonface.ops import face_modify_, face_paste_

    gen = seed_gen()
    frames = random_frames(2, 30, 34, torch.uint8, channels_last, gen).to(device)
    rois = random_rois(5, 2, 30, 34, gen).to(device)
    for method in ["pixelate", "blur", "solid", "noise"]:
        want = face_modify(frames, rois, method, seed=3)
        work = frames.clone()
        assert face_modify_(work, rois, method, seed=3) is work
        assert torch.equal(work, want), method
    faces = torch.randn(5, 3, 9, 8, generator=gen).to(device)
    want = face_paste(frames, faces, rois)
    work = frames.clone()
    face_paste_(work, faces, rois)
    assert torch.equal(work, want)
    torch.library.opcheck(torch.ops.anonface.face_modify_.default,
                          (frames.clone(), rois, "pixelate", 4.0, "ellipse", 0.1, 0, channels_last))
    torch.library.opcheck(torch.ops.anonface.face_paste_.default,
                          (frames.clone(), faces, rois, [0.5] * 3, [0.5] * 3, "box", 0.1, channels_last))
    with pytest.raises(ValueError, match="overlap"):
        torch.ops.anonface.face_modify_(frames[:1].expand(2, -1, -1, -1) if channels_last
                                        else frames[:1].expand(2, -1, -1, -1), rois, "solid", 0.0, "box", 0.1, 0,
                                        channels_last)
    with pytest.raises(ValueError, match="grad"):
        face_paste_(torch.rand(1, 5, 5, 3, requires_grad=True, device=device), faces[:0], rois[:0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method,strength", [("pixelate", 4.0), ("solid", 30.0), ("blur", 0.1)])
def test_modify_many_small_boxes_spread_across_a_wide_frame(device, method, strength):
    """Rows crossed by several boxes with gaps between them and overlaps among them (the kernel
    walks only the covered columns of a row): same as the reference, boxes blended in order."""
    gen = seed_gen()
    b, h, w = 1, 24, 320
    frames = random_frames(b, h, w, torch.uint8, True, gen)
    k = 14
    x0 = torch.rand(k, generator=gen, dtype=torch.float64) * (w - 12)
    y0 = torch.rand(k, generator=gen, dtype=torch.float64) * (h - 8)
    size = 4 + torch.rand(k, 2, generator=gen, dtype=torch.float64) * 14
    rois = torch.stack([torch.zeros(k, dtype=torch.float64), x0, y0, x0 + size[:, 0], y0 + size[:, 1]], 1).float()
    # two boxes overlapping a third, so the order of blending matters
    rois = torch.cat([rois, rois[:1] + torch.tensor([0, 2, 1, 2, 1]), rois[:1] + torch.tensor([0, -3, 0, 1, 2])])
    for mask, feather in (("ellipse", 0.2), ("box", 0.0)):
        out = face_modify(frames.to(device), rois.to(device), method, strength, mask, feather, seed=3)
        ref = face_modify_reference(frames, rois, method, strength, mask, feather, 3, True)
        diff = (out.cpu().int() - ref.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"seed {gen.initial_seed()}"
        changed = (out.cpu() != frames).any(-1)[0]
        assert changed.any(dim=0).sum() > 40  # many columns changed...
        assert not changed.all(dim=1).any()  # ...but no row wholly: the gaps stay untouched


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method,strength", METHODS)
@pytest.mark.parametrize("mask,feather", [("ellipse", 0.05), ("ellipse", 0.0), ("box", 0.3)])
def test_modify_crowded_frame_matches_reference(device, method, strength, mask, feather):
    """Many large overlapping boxes on a uint8 channels-last frame (the fast paths: alpha == 1 runs
    written directly, rows of one box vs rows where boxes overlap): same as the reference."""
    gen = seed_gen()
    b, h, w, k = 1, 120, 200, 20
    frames = random_frames(b, h, w, torch.uint8, True, gen)
    rois = random_rois(k, b, h, w, gen, min_size=12.0, max_size=90.0, outside=0.1)
    out = face_modify(frames.to(device), rois.to(device), method, strength, mask, feather, seed=5)
    ref = face_modify_reference(frames, rois, method, strength, mask, feather, 5, True)
    diff = (out.cpu().int() - ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"seed {gen.initial_seed()}"
    if method in ("noise", "pixelate"):
        assert torch.equal(out.cpu(), ref), f"seed {gen.initial_seed()}"
