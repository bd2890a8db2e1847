"""CUDA twins of the pipeline, the detector and the models: the same inputs on the CPU and on the GPU
give the same result (bit for bit where the CPU and CUDA kernels promise it, within float tolerance
for the networks). Skipped without a GPU and a CUDA build (they run in ``tools``' GPU check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import anonface

pytestmark = pytest.mark.cuda  # skipped without a GPU and CUDA kernels (conftest)


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _boxes(n: int, h: int, w: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 4))
        x1 = rng.uniform(-10, w - 20, k)
        y1 = rng.uniform(-10, h - 20, k)
        s = rng.uniform(12, 60, k)
        out.append(np.stack([x1, y1, x1 + s, y1 + s * 1.2], 1).astype(np.float32))
    return out


@pytest.mark.parametrize("method", ["pixelate", "solid", "noise"])
def test_pipeline_cuda_matches_cpu_bitwise(method: str) -> None:
    """Integer-exact methods: the CUDA pipeline writes the same bytes as the CPU one."""
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    frames = _frames(6, 90, 130, seed)
    boxes = _boxes(6, 90, 130, seed)
    kw = dict(boxes=boxes, method=method, batch_size=4, seed=3)
    cpu = anonface.anonymize(frames, device="cpu", **kw)
    gpu = anonface.anonymize(frames, device="cuda", **kw)
    assert isinstance(gpu, np.ndarray)
    assert np.array_equal(cpu, gpu), f"seed {seed}: {method} differs between CPU and CUDA"
    assert not np.array_equal(cpu, frames) or all(len(b) == 0 for b in boxes)


def test_pipeline_cuda_tensor_in_tensor_out_stays_on_gpu() -> None:
    frames = torch.from_numpy(_frames(3, 64, 80, 1)).cuda()
    box = np.array([[10, 10, 40, 50]], np.float32)
    out = anonface.anonymize(frames, boxes=[box] * 3, device="cuda", method="solid")
    assert out.device.type == "cuda" and out.dtype == torch.uint8 and out.shape == frames.shape
    assert not torch.equal(out[:, 20:40, 15:35], frames[:, 20:40, 15:35])
    # the same bytes as the CPU pipeline (the mask reaches past the box: it is enlarged, not clipped)
    cpu = anonface.anonymize(frames.cpu(), boxes=[box] * 3, device="cpu", method="solid")
    assert torch.equal(out.cpu(), cpu)
    assert torch.equal(out[:, :, 70:], frames[:, :, 70:])  # far from the box: untouched


def test_centerface_torch_cuda_matches_onnxruntime_cpu() -> None:
    """The batched PyTorch CenterFace on the GPU finds the faces onnxruntime finds on the CPU."""
    skimage = pytest.importorskip("skimage.data")
    from anonface.detect.centerface import CenterFace
    from anonface.detect.decode import box_iou

    img = np.ascontiguousarray(skimage.astronaut())
    ref = CenterFace(0.5, backend="onnxruntime", precision="fp32")
    gpu = CenterFace(0.5, backend="torch", device="cuda")
    a = ref.detect(img[None])[0]
    b = gpu.detect(torch.from_numpy(img).cuda()[None])[0]
    assert len(a) >= 1 and len(a) == len(b)
    iou = box_iou(a, b)
    assert iou.max(1).min() > 0.98
    np.testing.assert_allclose(np.sort(a[:, 4]), np.sort(b[:, 4]), atol=2e-3)


def test_pipeline_cuda_detects_and_covers_like_cpu() -> None:
    skimage = pytest.importorskip("skimage.data")
    img = np.ascontiguousarray(skimage.astronaut())
    frames = np.stack([img, img[:, ::-1].copy()])
    cpu = anonface.anonymize(frames, device="cpu", method="solid",
                             detector_options={"threshold": 0.5, "precision": "fp32"})
    gpu = anonface.anonymize(frames, device="cuda", method="solid",
                             detector_options={"threshold": 0.5, "backend": "torch"})
    changed_cpu = (cpu != frames).any(-1)
    changed_gpu = (gpu != frames).any(-1)
    assert changed_cpu.sum() > 1000
    inter = (changed_cpu & changed_gpu).sum() / max(1, (changed_cpu | changed_gpu).sum())
    assert inter > 0.95


def test_anonymizer_network_cuda_matches_cpu() -> None:
    from anonface.models.anonymizer import load_pretrained

    m_cpu = load_pretrained(map_location="cpu").float().eval()
    m_gpu = load_pretrained(map_location="cuda").float().eval()
    s = m_cpu.crop_size
    x = torch.rand(5, 3, s, s) * 2 - 1
    with torch.no_grad():
        a = m_cpu(x)
        b = m_gpu(x.cuda()).cpu()
    torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)


def test_learned_method_runs_on_cuda() -> None:
    frames = _frames(2, 120, 160, 5)
    box = np.array([[30, 20, 100, 110]], np.float32)
    cpu = anonface.anonymize(frames, boxes=[box, box], method="learned", device="cpu")
    gpu = anonface.anonymize(frames, boxes=[box, box], method="learned", device="cuda")
    diff = np.abs(cpu.astype(int) - gpu.astype(int))
    assert diff.max() <= 3, diff.max()
    assert (gpu[:, 40:90, 50:80] != frames[:, 40:90, 50:80]).any()


def test_composite_drawn_onto_landmarks_on_cuda_matches_cpu() -> None:
    """The composite moved onto landmarks (the warp runs where the frames are) draws on the GPU what it
    draws on the CPU, within rounding."""
    from anonface.render import CANONICAL_LANDMARKS, scale_boxes

    frames = _frames(2, 160, 200, 7)
    box = np.array([40.0, 30.0, 120.0, 130.0, 0.9], np.float32)
    big = scale_boxes(box[None], 1.3)[0]
    rel = CANONICAL_LANDMARKS + np.array([0.06, -0.02], np.float32)
    row = np.concatenate([box, (big[:2] + rel * (big[2:] - big[:2])).reshape(10)]).astype(np.float32)[None]
    cpu = anonface.anonymize(frames, boxes=[row, row], method="composite", device="cpu")
    gpu = anonface.anonymize(frames, boxes=[row, row], method="composite", device="cuda")
    assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 3
    plain = anonface.anonymize(frames, boxes=[row[:, :5]] * 2, method="composite", device="cuda")
    assert not np.array_equal(gpu, plain)  # the landmarks moved the face on the GPU too


def test_action_detector_cuda_matches_cpu_and_trains() -> None:
    from anonface.models.action import ActionDetector
    from anonface.train.action import small_detector_config

    torch.manual_seed(0)
    model = ActionDetector(small_detector_config(num_classes=3)).eval()
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        feat_cpu = model.backbone(x)
        feat_gpu = model.cuda().backbone(x.cuda()).cpu()
    torch.testing.assert_close(feat_cpu, feat_gpu, atol=1e-3, rtol=1e-3)
    # one training step on the GPU: RPN + RoI heads (roi_align/roi_pool CUDA backward) give finite grads
    model.train()
    targets = [{"boxes": torch.tensor([[20.0, 20.0, 90.0, 120.0]], device="cuda"),
                "labels": torch.tensor([1], device="cuda")} for _ in range(2)]
    losses = model(x.cuda(), targets)
    loss = sum(losses.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
