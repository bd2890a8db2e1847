"""roi_align / roi_pool against hand-computed values, the pure-PyTorch reference, gradcheck and opcheck."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anonface.ops import RoIAlign, RoIPool, convert_boxes_to_rois, roi_align, roi_pool
from anonface.ops.roi_reference import roi_align_reference, roi_pool_reference


def random_rois(k: int, n: int, h: int, w: int, *, scale: float = 1.0, gen=None, dtype=torch.float64):
    """Boxes in image coordinates (feature size / scale), some partly outside the map."""
    H, W = h / scale, w / scale
    x1 = torch.rand(k, generator=gen, dtype=dtype) * W * 1.2 - 0.1 * W
    y1 = torch.rand(k, generator=gen, dtype=dtype) * H * 1.2 - 0.1 * H
    bw = torch.rand(k, generator=gen, dtype=dtype) * W * 0.8 + 0.5
    bh = torch.rand(k, generator=gen, dtype=dtype) * H * 0.8 + 0.5
    b = torch.randint(0, n, (k,), generator=gen).to(dtype)
    return torch.stack([b, x1, y1, x1 + bw, y1 + bh], 1)


def tol(dtype):
    return {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]


# ---------------------------------------------------------------- hand-computed values

ARANGE = torch.arange(25, dtype=torch.float64).reshape(1, 1, 5, 5)  # value = 5 * y + x


@pytest.mark.parametrize(
    "box, size, sr, aligned, expected",
    [
        # aligned: box (1,1)-(3,3) covers pixels 1..2 -> their mean (6 + 7 + 11 + 12) / 4
        ((1, 1, 3, 3), 1, 2, True, [[9.0]]),
        # legacy: samples at 1.5 and 2.5 along each axis -> 5 * 2 + 2
        ((1, 1, 3, 3), 1, 2, False, [[12.0]]),
        # legacy 2x2 bins of the box (0,0)-(4,4), one sample per bin at 1 and 3
        ((0, 0, 4, 4), 2, 1, False, [[6.0, 8.0], [16.0, 18.0]]),
        # a sample at the bottom-right pixel centre, then one past the border (clamped to the edge)
        ((4, 4, 5, 5), 1, -1, True, [[24.0]]),
        ((4, 4, 5.8, 5.8), 1, 1, True, [[24.0]]),
        # fully outside the map: every sample is empty
        ((10, 10, 12, 12), 1, -1, True, [[0.0]]),
        # zero-size aligned box: empty adaptive grid -> 0
        ((2, 2, 2, 2), 1, -1, True, [[0.0]]),
    ],
)
def test_roi_align_hand_computed(device, box, size, sr, aligned, expected):
    rois = torch.tensor([[0.0, *box]], dtype=torch.float64, device=device)
    out = roi_align(ARANGE.to(device), rois, size, 1.0, sr, aligned)
    torch.testing.assert_close(out[0, 0].cpu(), torch.tensor(expected, dtype=torch.float64))


def test_roi_pool_hand_computed(device):
    rois = torch.tensor([[0.0, 1, 1, 3, 3], [0.0, 0, 0, 4, 4]], dtype=torch.float64, device=device)
    out, argmax = torch.ops.anonface.roi_pool(ARANGE.to(device), rois, 1.0, 1, 1)
    assert out.flatten().tolist() == [18.0, 24.0]
    assert argmax.flatten().tolist() == [18, 24]
    # 2x2 bins of a 5x5 box: bins cover rows/cols [0, 3) and [2, 5)
    out2 = roi_pool(ARANGE.to(device), rois[1:], 2, 1.0)
    assert out2[0, 0].cpu().tolist() == [[12.0, 14.0], [22.0, 24.0]]


# ---------------------------------------------------------------- against the reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
def test_roi_align_matches_reference(device, dtype, aligned, sampling_ratio):
    n, c, h, w = 3, 5, 17, 23
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    rois = random_rois(40, n, h, w, scale=0.25).to(device)
    out = roi_align(x, rois, (5, 4), 0.25, sampling_ratio, aligned)
    ref = roi_align_reference(x.double(), rois, 0.25, 5, 4, sampling_ratio, aligned)
    torch.testing.assert_close(out.double(), ref, atol=tol(dtype), rtol=tol(dtype))
    assert out.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_pool_matches_reference(device, dtype):
    n, c, h, w = 2, 4, 19, 13
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    rois = random_rois(30, n, h, w, scale=0.5).to(device)
    out, argmax = torch.ops.anonface.roi_pool(x, rois, 0.5, 3, 5)
    ref, ref_arg = roi_pool_reference(x, rois, 0.5, 3, 5)
    torch.testing.assert_close(out, ref)
    assert torch.equal(argmax.cpu(), ref_arg.cpu())
    assert (argmax >= 0).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_ops_low_precision(device, dtype):
    x = torch.randn(2, 3, 12, 14, device=device)
    rois = random_rois(16, 2, 12, 14).to(device)
    out = roi_align(x.to(dtype), rois, 4, 1.0, -1, True)
    ref = roi_align_reference(x.double(), rois, 1.0, 4, 4, -1, True)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, atol=tol(dtype), rtol=tol(dtype))
    pooled = roi_pool(x.to(dtype), rois, 3)
    ref_pool, _ = roi_pool_reference(x.to(dtype).double(), rois, 1.0, 3, 3)
    torch.testing.assert_close(pooled.double(), ref_pool)


def test_roi_align_backward_matches_reference(device):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, device=device, requires_grad=True)
    rois = random_rois(12, 2, 9, 11).to(device)
    g = torch.randn(12, 3, 3, 3, dtype=torch.float64, device=device)
    (ours,) = torch.autograd.grad(roi_align(x, rois, 3, 1.0, -1, True), x, g)
    (ref,) = torch.autograd.grad(roi_align_reference(x, rois, 1.0, 3, 3, -1, True), x, g)
    torch.testing.assert_close(ours, ref)
    assert ours.abs().sum() > 0


def test_gradcheck(device):
    x = torch.randn(2, 2, 7, 8, dtype=torch.float64, device=device, requires_grad=True)
    rois = random_rois(6, 2, 7, 8).to(device)
    for aligned in (True, False):
        assert torch.autograd.gradcheck(lambda t, a=aligned: roi_align(t, rois, (3, 2), 1.0, 2, a), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 1.0), (x,))


def test_opcheck(device):
    x = torch.randn(2, 3, 8, 9, device=device, requires_grad=True)
    rois = random_rois(5, 2, 8, 9, dtype=torch.float32).to(device)
    for op, args in ((torch.ops.anonface.roi_align.default, (x, rois, 0.5, 3, 3, -1, True)),
                     (torch.ops.anonface.roi_pool.default, (x, rois, 1.0, 2, 2))):
        results = torch.library.opcheck(op, args)
        assert results and set(results.values()) == {"SUCCESS"}, results


def test_torch_compile_fullgraph(device):
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.align = RoIAlign(3, 0.5, -1, True)
            self.pool = RoIPool(3, 0.5)
            self.fc = torch.nn.Linear(2 * 3 * 3 * 3, 4)

        def forward(self, feats, rois):
            z = torch.cat([self.align(feats, rois), self.pool(feats, rois)], 1)
            return self.fc(z.flatten(1))

    model = Head().to(device)
    feats = torch.randn(2, 3, 10, 10, device=device, requires_grad=True)
    rois = random_rois(7, 2, 10, 10, scale=0.5, dtype=torch.float32).to(device)
    eager = model(feats, rois)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(feats, rois)
    torch.testing.assert_close(compiled, eager)
    compiled.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


# ---------------------------------------------------------------- edge cases


def test_empty_inputs(device):
    x = torch.randn(2, 3, 5, 5, device=device)
    no_rois = torch.zeros(0, 5, device=device)
    assert roi_align(x, no_rois, 2).shape == (0, 3, 2, 2)
    assert roi_pool(x, no_rois, 2).shape == (0, 3, 2, 2)
    empty_batch = torch.randn(0, 3, 5, 5, device=device)
    assert roi_align(empty_batch, no_rois, 2).shape == (0, 3, 2, 2)
    # gradients of empty outputs are zeros of the input's shape
    xg = x.clone().requires_grad_()
    roi_align(xg, no_rois, 2).sum().backward()
    assert torch.equal(xg.grad, torch.zeros_like(x))


def test_degenerate_boxes_are_defined(device):
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, device=device)
    nan = float("nan")
    rois = torch.tensor(
        [
            [0, 1, 1, 1, 1],  # zero size
            [0, 4, 4, 1, 1],  # inverted
            [0, nan, 1, 3, 3],  # NaN coordinate
            [0, 1, 1, math.inf, 3],  # infinite coordinate
            [0, -50, -50, -40, -40],  # fully outside
            [0, 1e6, 1e6, 2e6, 2e6],  # far outside, huge
        ],
        dtype=torch.float64,
        device=device,
    )
    for aligned in (True, False):
        out = roi_align(x, rois, 2, 1.0, -1, aligned)
        assert torch.isfinite(out).all()
        ref = roi_align_reference(x, rois, 1.0, 2, 2, -1, aligned)
        torch.testing.assert_close(out, ref)
        assert out[2:].abs().sum() == 0  # non-finite and outside boxes give zeros
    pooled, argmax = torch.ops.anonface.roi_pool(x, rois, 1.0, 2, 2)
    ref, ref_arg = roi_pool_reference(x, rois, 1.0, 2, 2)
    torch.testing.assert_close(pooled, ref)
    assert torch.equal(argmax.cpu(), ref_arg.cpu())
    assert (argmax[2:] == -1).all()


def test_non_contiguous_inputs(device):
    base = torch.randn(2, 8, 12, 10, device=device)
    x = base[:, ::2]  # strided channels
    cl = base.to(memory_format=torch.channels_last)
    rois = random_rois(9, 2, 12, 10, dtype=torch.float32).to(device)
    rois_nc = torch.cat([rois, rois], 1)[:, ::2].clone()
    rois_nc = torch.stack([rois[:, i] for i in range(5)], 1).t().contiguous().t()  # column-major
    assert not rois_nc.is_contiguous()
    torch.testing.assert_close(roi_align(x, rois_nc, 3, 1.0, -1, True), roi_align(x.contiguous(), rois, 3, 1.0, -1, True))
    torch.testing.assert_close(roi_align(cl, rois, 3), roi_align(base, rois, 3))
    torch.testing.assert_close(roi_pool(cl, rois, 3), roi_pool(base, rois, 3))


def test_list_of_boxes_and_modules(device):
    x = torch.randn(2, 3, 10, 10, device=device)
    b0 = torch.tensor([[1.0, 1, 6, 7], [0, 0, 9, 9]], device=device)
    b1 = torch.tensor([[2.0, 3, 8, 8]], device=device)
    rois = convert_boxes_to_rois([b0, b1])
    assert rois[:, 0].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(roi_align(x, [b0, b1], 2, 1.0, -1, True), roi_align(x, rois, 2, 1.0, -1, True))
    torch.testing.assert_close(RoIAlign(2, 1.0, -1, True)(x, rois), roi_align(x, rois, 2, 1.0, -1, True))
    torch.testing.assert_close(RoIPool((2, 3), 1.0)(x, rois), roi_pool(x, rois, (2, 3)))
    assert "output_size=(2, 2)" in repr(RoIAlign(2))


def test_bad_arguments_raise_clear_errors(device):
    x = torch.randn(2, 3, 5, 5, device=device)
    rois = torch.tensor([[0.0, 0, 0, 2, 2]], device=device)
    with pytest.raises(ValueError, match="4-D"):
        roi_align(x[0], rois, 2)
    with pytest.raises(ValueError, match="floating"):
        roi_align(x.to(torch.int32), rois, 2)
    with pytest.raises(ValueError, match=r"\[K, 5\]"):
        torch.ops.anonface.roi_align(x, rois[:, :4], 1.0, 2, 2, -1, True)
    with pytest.raises(ValueError, match="Tensor\\[L, 4\\]"):
        roi_align(x, [rois], 2)
    with pytest.raises(ValueError, match="positive"):
        roi_align(x, rois, 0)
    for bad in (2.0, -1.0, float("nan")):
        r = rois.clone()
        r[0, 0] = bad
        with pytest.raises(IndexError, match="batch index"):
            roi_align(x, r, 2)
        with pytest.raises(IndexError, match="batch index"):
            roi_pool(x, r, 2)


@pytest.mark.cuda
def test_device_mismatch():
    x = torch.randn(1, 1, 4, 4, device="cuda")
    with pytest.raises(ValueError, match="device|cuda"):
        roi_align(x, torch.tensor([[0.0, 0, 0, 2, 2]]), 2)


# ---------------------------------------------------------------- property-based


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    k=st.integers(0, 6),
    ph=st.integers(1, 4),
    pw=st.integers(1, 4),
    scale=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    sr=st.integers(-1, 3),
    aligned=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_roi_ops_match_reference(n, c, h, w, k, ph, pw, scale, sr, aligned, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    # corners anywhere from well outside to well inside, in any order (inverted boxes included)
    coords = (torch.rand(k, 4, generator=gen, dtype=torch.float64) * 1.6 - 0.3) * torch.tensor(
        [w, h, w, h], dtype=torch.float64
    ) / scale
    b = torch.randint(0, n, (k, 1), generator=gen).double()
    rois = torch.cat([b, coords], 1)
    out = roi_align(x, rois, (ph, pw), scale, sr, aligned)
    torch.testing.assert_close(out, roi_align_reference(x, rois, scale, ph, pw, sr, aligned))
    pooled, argmax = torch.ops.anonface.roi_pool(x, rois, scale, ph, pw)
    ref, ref_arg = roi_pool_reference(x, rois, scale, ph, pw)
    torch.testing.assert_close(pooled, ref)
    assert torch.equal(argmax, ref_arg)
    assert ((argmax >= -1) & (argmax < h * w)).all()


def test_backward_ops_check_their_arguments(device):
    rois = torch.tensor([[0.0, 0, 0, 3, 3]], device=device)
    good = torch.randn(1, 2, 2, 2, device=device)
    with pytest.raises(ValueError, match="grad must be"):
        torch.ops.anonface._roi_align_backward(good[:, :1], rois, 1.0, 2, 2, 1, 2, 5, 5, -1, True)
    with pytest.raises(IndexError, match="batch index"):
        torch.ops.anonface._roi_align_backward(good, rois + torch.tensor([3.0, 0, 0, 0, 0], device=device), 1.0, 2, 2, 1, 2, 5, 5, -1, True)
    argmax = torch.zeros(1, 2, 2, 2, dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match="grad must be"):
        torch.ops.anonface._roi_pool_backward(good[..., :1], rois, argmax, 1.0, 2, 2, 1, 2, 5, 5)
    with pytest.raises(ValueError, match="argmax must be int32"):
        torch.ops.anonface._roi_pool_backward(good, rois, argmax.long(), 1.0, 2, 2, 1, 2, 5, 5)
    # a well-formed call scatters every gradient to pixel 0 of the first map
    out = torch.ops.anonface._roi_pool_backward(good, rois, argmax, 1.0, 2, 2, 1, 2, 5, 5)
    torch.testing.assert_close(out[0, :, 0, 0], good[0].sum(dim=(1, 2)))
    assert out.flatten(2)[:, :, 1:].abs().sum() == 0


def test_absurd_sizes_and_sampling_are_refused_at_once():
    """A sampling_ratio of 10**6 ran for minutes; an output size of 10**12 overflowed the kernels'
    int arithmetic with a confusing message. Both are refused up front, through the wrappers and
    through the ops themselves."""
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 0.0, 0.0, 7.0, 7.0]])
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(x, rois, 2, 1.0, 10**6)
    with pytest.raises(ValueError, match="sampling_ratio"):
        torch.ops.anonface.roi_align(x, rois, 1.0, 2, 2, 10**6, True)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(x, rois, 2, 1.0, -5)
    for size in (10**12, (3, 10**9), 0, -2, (2.5, 3), True):
        with pytest.raises(ValueError, match="output_size"):
            roi_pool(x, rois, size)
    with pytest.raises(ValueError, match="output_size"):
        torch.ops.anonface.roi_pool(x, rois, 1.0, 10**12, 2)
    assert roi_align(x, rois, 2, 1.0, 64).shape == (1, 2, 2, 2)
