"""One home for every argument check of the compiled ops (issue #11).

The ops check their arguments in C++ (csrc/face_plan.h, csrc/roi_ops.cpp; ValueError naming the
argument). The Python wrappers only convert Python values, and the fake kernels check shapes,
dtypes and devices with the ops' own messages, so eager calls, the wrappers and fake tensors
(torch.compile, opcheck) refuse the same calls the same way.
"""

from __future__ import annotations

import pytest
import torch
from face_testing import DEVICES
from torch._subclasses.fake_tensor import FakeTensorMode

from anonface.ops import face_crop, face_modify, face_modify_, face_paste, face_paste_, roi_align

ops = torch.ops.anonface
F = [0.5] * 3


def _frames(device="cpu", dtype=torch.float32):
    return torch.rand(2, 10, 12, 3, device=device).to(dtype)


ROIS = [[0, 1.0, 1.0, 5.0, 5.0]]

# (name, op call on real tensors built by make(), the message every path gives)
BAD_CALLS = [
    ("crop frames 3-D", lambda t: ops.face_crop(t["frames"][0], t["rois"], [4, 4], F, F, True), "4-D"),
    ("crop frames int32", lambda t: ops.face_crop(t["frames"].int(), t["rois"], [4, 4], F, F, True),
     "uint8, float32 or float64"),
    ("crop channels", lambda t: ops.face_crop(t["frames"], t["rois"], [4, 4], F, F, False), "3 channels in dim 1"),
    ("crop rois [K, 4]", lambda t: ops.face_crop(t["frames"], t["rois"][:, :4], [4, 4], F, F, True), r"\[K, 5\]"),
    ("crop rois int", lambda t: ops.face_crop(t["frames"], t["rois"].long(), [4, 4], F, F, True), "floating point"),
    ("crop size", lambda t: ops.face_crop(t["frames"], t["rois"], [4], F, F, True), "size"),
    ("crop size 0", lambda t: ops.face_crop(t["frames"], t["rois"], [0, 4], F, F, True), "size"),
    ("paste faces K", lambda t: ops.face_paste(t["frames"], t["faces"][:0], t["rois"], F, F, "box", 0.1, True),
     r"faces must be \[K=1"),
    ("paste faces float64", lambda t: ops.face_paste(t["frames"], t["faces"].double(), t["rois"], F, F, "box", 0.1,
                                                     True), "faces must be"),
    ("paste faces int", lambda t: ops.face_paste(t["frames"], t["faces"].int(), t["rois"], F, F, "box", 0.1, True),
     "faces must be floating point"),
    ("modify frames 5-D", lambda t: ops.face_modify(t["frames"][None], t["rois"], "solid", 0.0, "box", 0.1, 0, True),
     "4-D"),
    ("modify_ rois 1-D", lambda t: ops.face_modify_(t["frames"], t["rois"][0], "solid", 0.0, "box", 0.1, 0, True),
     r"\[K, 5\]"),
    ("paste_ faces shape", lambda t: ops.face_paste_(t["frames"], t["faces"][:, :2], t["rois"], F, F, "box", 0.1,
                                                     True), "faces must be"),
    ("roi_align 3-D", lambda t: ops.roi_align(t["nchw"][0], t["rois"], 1.0, 2, 2, -1, True), "4-D"),
    ("roi_pool rois", lambda t: ops.roi_pool(t["nchw"], t["rois"][:, :4], 1.0, 2, 2), r"\[K, 5\]"),
    ("roi_pool size", lambda t: ops.roi_pool(t["nchw"], t["rois"], 1.0, 0, 2), "output_size"),
]


def _make(device="cpu"):
    return {"frames": _frames(device), "rois": torch.tensor(ROIS, device=device),
            "faces": torch.rand(1, 3, 4, 4, device=device), "nchw": torch.rand(2, 3, 8, 8, device=device)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "call", "match"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_op_and_fake_kernel_refuse_alike(device, name, call, match):
    with pytest.raises(ValueError, match=match):
        call(_make(device))
    with FakeTensorMode() as mode:
        fake = {k: mode.from_tensor(v) for k, v in _make(device).items()}
        with pytest.raises(ValueError, match=match):
            call(fake)


def test_wrappers_leave_the_checks_to_the_ops():
    """The wrappers convert (scalars to triples, an int size to a pair, integer rois to float)
    and read the layout; everything else is the op's error, on the CPU and CUDA paths alike."""
    frames, rois, faces = _frames(), torch.tensor(ROIS), torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="mean must have 3 values"):
        face_crop(frames, rois, 4, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="std must be non-zero"):
        face_paste(frames, faces, rois, std=0.0)
    with pytest.raises(ValueError, match="size must be"):
        face_crop(frames, rois, (4, 4, 4))
    with pytest.raises(ValueError, match="mask must be 'ellipse' or 'box'"):
        face_modify(frames, rois, mask="circle")
    with pytest.raises(ValueError, match=r"feather must be in \[0, 0.5\]"):
        face_modify_(frames.clone(), rois, feather=-0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        face_modify(frames, rois, "swirl")  # strength None: no default for an unknown method, the op says why
    with pytest.raises(ValueError, match="3 channels in dim 3 .* or dim 1"):
        face_crop(torch.rand(1, 4, 5, 6), rois, 4)  # the layout cannot be read from the shape
    with pytest.raises(ValueError, match="4-D"):
        face_crop(frames[0], rois, 4)
    assert torch.equal(face_crop(frames, rois.long(), 4), face_crop(frames, rois.long().float(), 4))
    for bad in ([[0, 1, 1, 5, 5]], None):
        with pytest.raises(TypeError, match="rois must be a torch.Tensor"):
            face_crop(frames, bad, 4)
    with pytest.raises(TypeError, match="frames must be a torch.Tensor"):
        face_modify(frames.numpy(), rois)
    with pytest.raises(TypeError, match="faces must be a torch.Tensor"):
        face_paste(frames, faces.numpy(), rois)
    with pytest.raises(ValueError, match="sampling_ratio must be an int"):
        roi_align(torch.rand(1, 2, 8, 8), rois, 2, 1.0, 1.5)


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_ops_refuse_frames_that_require_grad(device):
    """The op itself (its Autograd kernel, every backend), not only the wrapper, refuses to write
    into frames whose gradient it would silently break; faces that require grad are only read."""
    frames = torch.rand(1, 6, 6, 3, device=device, requires_grad=True)
    rois = torch.tensor(ROIS, device=device)
    faces = torch.rand(1, 3, 2, 2, device=device, requires_grad=True)
    with pytest.raises(ValueError, match="face_modify_ writes into frames and has no autograd"):
        ops.face_modify_(frames, rois, "solid", 0.0, "box", 0.1, 0, True)
    with pytest.raises(ValueError, match="face_paste_ writes into frames and has no autograd"):
        ops.face_paste_(frames, faces, rois, F, F, "box", 0.1, True)
    with pytest.raises(ValueError, match="use face_paste"):
        face_paste_(frames * 1, faces, rois)
    work = frames.detach().clone()
    assert face_paste_(work, faces, rois, mask="box", feather=0.0) is work
    assert not work.requires_grad
    torch.testing.assert_close(work, face_paste(frames.detach(), faces.detach(), rois, mask="box", feather=0.0))
