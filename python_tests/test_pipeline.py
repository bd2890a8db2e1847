"""anonymize / Anonymizer: input types round trip, results equal the face kernels, fail-closed."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest
import torch

from anonface import ops
from anonface.pipeline import AnonymizationError, Anonymizer, anonymize, frame_seed, scale_boxes


def _frames(rng: np.random.Generator, n: int = 3, h: int = 48, w: int = 64) -> np.ndarray:
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


BOX = np.array([[12.0, 8.0, 40.0, 36.0]], np.float32)


def _expected(frames: np.ndarray, box: np.ndarray, method: str = "pixelate", strength: float = 10.0,
              mask_scale: float = 1.3) -> np.ndarray:
    """The face kernel applied directly with the pipeline's box enlargement."""
    n, h, w = frames.shape[:3]
    sb = scale_boxes(box, mask_scale)
    if method == "noise":  # the pipeline seeds each frame's noise with its stream index
        rois = torch.tensor([[0, *b] for b in sb], dtype=torch.float32)
        return np.stack([ops.face_modify(torch.from_numpy(frames[i : i + 1]), rois, method, strength,
                                         "ellipse", 0.05, frame_seed(0, i)).numpy()[0] for i in range(n)])
    rois = torch.tensor([[i, *b] for i in range(n) for b in sb], dtype=torch.float32)
    return ops.face_modify(torch.from_numpy(frames), rois, method, strength, "ellipse", 0.05, 0).numpy()


def test_numpy_sequence_with_boxes_equals_kernel() -> None:
    frames = _frames(np.random.default_rng())
    out = anonymize(frames, boxes=[BOX] * 3, device="cpu")
    assert isinstance(out, np.ndarray) and out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _expected(frames, BOX))
    assert (out != frames).any()
    # Outside the enlarged box nothing changes.
    np.testing.assert_array_equal(out[:, 46:, :], frames[:, 46:, :])


def test_numpy_single_image() -> None:
    img = _frames(np.random.default_rng(), 1)[0]
    out = anonymize(img, boxes=BOX, device="cpu", method="solid")
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _expected(img[None], BOX, "solid", 0.0)[0])


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "hwc", "chw"])
def test_torch_layouts_round_trip(layout: str) -> None:
    frames = _frames(np.random.default_rng(), 2)
    exp = _expected(frames, BOX)
    t = torch.from_numpy(frames)
    if layout == "nchw":
        t = t.permute(0, 3, 1, 2).contiguous()
    elif layout == "hwc":
        t, exp = t[0], exp[0]
    elif layout == "chw":
        t, exp = t[0].permute(2, 0, 1).contiguous(), exp[0]
    boxes = BOX if layout in ("hwc", "chw") else [BOX, BOX]
    out = anonymize(t, boxes=boxes, device="cpu")
    assert isinstance(out, torch.Tensor) and out.shape == t.shape and out.dtype == torch.uint8
    if layout == "nchw":
        out = out.permute(0, 2, 3, 1)
    elif layout == "chw":
        out = out.permute(1, 2, 0)
    np.testing.assert_array_equal(out.numpy(), exp)


def test_float_tensor_keeps_dtype_and_untouched_pixels() -> None:
    frames = torch.rand(2, 48, 64, 3, dtype=torch.float32)
    out = anonymize(frames, boxes=[BOX, BOX], device="cpu")
    assert out.dtype == torch.float32 and out.shape == frames.shape
    assert torch.equal(out[:, 46:], frames[:, 46:])
    exp = _expected((frames * 255).round().to(torch.uint8).numpy(), BOX)
    changed = (out != frames).any(-1)
    assert changed.any()
    np.testing.assert_allclose(out[changed].numpy(), exp[changed.numpy()] / 255.0, atol=1e-6)


def test_method_none_changes_nothing() -> None:
    frames = _frames(np.random.default_rng())
    np.testing.assert_array_equal(anonymize(frames, boxes=[BOX] * 3, method="none", device="cpu"), frames)


def test_detects_the_astronaut_face() -> None:
    from skimage import data
    img = np.ascontiguousarray(data.astronaut())
    out = anonymize(img, device="cpu")
    changed = (out != img).any(-1)
    ys, xs = np.nonzero(changed)
    # The face (x ~180-270, y ~60-180) is replaced; the suit below is not, and the rest of the picture
    # hardly (the default threshold 0.05 also takes two faint specks of ~14 px for faces: < 1%).
    assert changed[100:150, 200:250].mean() > 0.9
    outside = changed.copy()
    outside[30:210, 140:320] = False
    assert not changed[260:].any() and outside.mean() < 0.01
    # Pixelated: few distinct colours inside the face.
    assert len(np.unique(out[90:160, 190:260].reshape(-1, 3), axis=0)) < 60


class _Flaky:
    """A detector that raises on chosen frames and otherwise returns BOX."""

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.calls = bad, []

    def detect(self, frames, frame_indices=None):
        self.calls.append(list(frame_indices))
        if any(i in self.bad for i in frame_indices):
            raise RuntimeError("detector exploded")
        return [BOX.copy() for _ in frame_indices]


def test_detector_failure_masks_the_frame(caplog: pytest.LogCaptureFixture) -> None:
    frames = _frames(np.random.default_rng(), 5)
    anon = Anonymizer(detector=_Flaky({2}), device="cpu", track=False, batch_size=5)
    with caplog.at_level(logging.WARNING):
        out = anon(frames)
    assert (out[2] == 0).all()  # fail closed: the whole frame is hidden
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(out[i], _expected(frames[i : i + 1], BOX)[0])
    assert "frame 2" in caplog.text and "masked" in caplog.text


def test_detector_failure_can_stop() -> None:
    frames = _frames(np.random.default_rng(), 3)
    anon = Anonymizer(detector=_Flaky({1}), device="cpu", on_error="stop")
    with pytest.raises(AnonymizationError, match="frame 1: face detection failed"):
        anon(frames)


def test_modification_failure_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(ops, "face_modify", boom)
    monkeypatch.setattr(ops, "face_modify_", boom, raising=False)
    frames = _frames(np.random.default_rng(), 2)
    out = anonymize(frames, boxes=[BOX, BOX], device="cpu")
    assert (out == 0).all()
    with pytest.raises(AnonymizationError, match="modification"):
        anonymize(frames, boxes=[BOX, BOX], device="cpu", on_error="stop")


def test_detect_every_k_runs_the_detector_on_keyframes_and_covers_all() -> None:
    frames = _frames(np.random.default_rng(), 10)
    det = _Flaky(set())
    out = Anonymizer(detector=det, device="cpu", detect_every=4, batch_size=3)(frames)
    called = sorted(i for c in det.calls for i in c)
    assert called == [0, 4, 8, 9]  # keyframes, and the last frame of the stream
    np.testing.assert_array_equal(out, _expected(frames, BOX))


def test_tracks_carry_across_calls() -> None:
    frames = _frames(np.random.default_rng(), 2)

    class Once:
        def __init__(self):
            self.n = 0

        def detect(self, f, idx=None):
            self.n += 1
            return [BOX.copy() if self.n == 1 else np.zeros((0, 5), np.float32) for _ in idx]

    anon = Anonymizer(detector=Once(), device="cpu", batch_size=1, linger=3)
    first = anon(frames[:1])
    second = anon(frames[1:])  # the detector finds nothing now; the face lingers
    np.testing.assert_array_equal(first[0], _expected(frames[:1], BOX)[0])
    np.testing.assert_array_equal(second[0], _expected(frames[1:], BOX)[0])


def test_learned_without_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anonface.models.anonymizer", None)
    with pytest.raises(RuntimeError, match="learned"):
        Anonymizer("learned", boxes=[BOX], device="cpu")


def test_learned_missing_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("anonface.models.anonymizer")

    def load_pretrained(path=None, map_location="cpu"):
        raise FileNotFoundError("no checkpoint shipped")

    mod.load_pretrained = load_pretrained
    monkeypatch.setitem(sys.modules, "anonface.models.anonymizer", mod)
    with pytest.raises(RuntimeError, match="checkpoint"):
        Anonymizer("learned", boxes=[BOX], device="cpu")


def test_learned_is_crop_model_paste(monkeypatch: pytest.MonkeyPatch) -> None:
    class Negate(torch.nn.Module):
        crop_size = 16

        def forward(self, x):
            return -x

    mod = types.ModuleType("anonface.models.anonymizer")
    mod.load_pretrained = lambda path=None, map_location="cpu": Negate()
    monkeypatch.setitem(sys.modules, "anonface.models.anonymizer", mod)
    frames = _frames(np.random.default_rng(), 2)
    out = anonymize(frames, method="learned", boxes=[BOX, BOX], device="cpu", temporal_smoothing=0)
    sb = scale_boxes(BOX, 1.3)
    rois = torch.tensor([[i, *sb[0]] for i in range(2)], dtype=torch.float32)
    f = torch.from_numpy(frames)
    crops = ops.face_crop(f, rois, 16, (0.5,) * 3, (0.5,) * 3)
    exp = ops.face_paste(f, -crops, rois, (0.5,) * 3, (0.5,) * 3, "ellipse", 0.05)
    np.testing.assert_array_equal(out, exp.numpy())


class _Counter(torch.nn.Module):
    """Draws flat faces of value -0.9, -0.6, -0.3, ... for the successive faces it is given (in one
    call or several), whatever the crop: what changes between frames is then only what the memory
    adds."""

    crop_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.faces = 0

    def forward(self, x):
        level = -1.2 + 0.3 * (self.faces + 1 + torch.arange(x.shape[0], dtype=x.dtype))
        self.faces += int(x.shape[0])
        return level[:, None, None, None].expand_as(x).clone()


def _centre(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box[0, :4]
    return frame[int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(np.float64)


def _level(v: float) -> float:
    """A face value in [-1, 1] as the grey level face_paste writes."""
    return (v * 0.5 + 0.5) * 255


@pytest.mark.parametrize("weight", [0.0, 0.5, 0.7])
def test_learned_faces_are_steadied_along_the_stream(weight: float) -> None:
    """Frame t's face is (1 - w) x its own drawing + w x frame t-1's face for the same box; a box
    elsewhere starts afresh, and a new stream (reset) forgets the last one."""
    frames = np.random.default_rng().integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    moved = BOX + np.array([[30.0, 0.0, 30.0, 0.0]], np.float32)  # no overlap with BOX
    anon = Anonymizer("learned", boxes=[BOX, BOX, moved], device="cpu", checkpoint=_Counter(),
                      temporal_smoothing=weight)
    out = anon(frames)
    a, b, c = -0.9, -0.6, -0.3
    expect = [a, (1 - weight) * b + weight * a, c]
    got = [_centre(out[0], BOX), _centre(out[1], BOX), _centre(out[2], moved)]
    for g, e in zip(got, expect):
        np.testing.assert_allclose(g, _level(e), atol=1.0)
    anon.reset()  # a new stream: its first face is drawn afresh
    again = anon(frames[:1])
    np.testing.assert_allclose(_centre(again[0], BOX), _level(0.0), atol=1.0)


def test_face_memory_pairs_boxes_one_to_one() -> None:
    from anonface.render import FaceMemory

    mem = FaceMemory(0.5)
    first = np.array([[0, 10, 10, 50, 50]], np.float32)
    np.testing.assert_array_equal(mem.place(first), first)  # nothing before: drawn where given
    mem.blend(torch.full((1, 3, 4, 4), 1.0))
    # two boxes on the old one: only the better-overlapping one is paired with it
    cur = np.array([[0, 12, 12, 52, 52], [0, 20, 20, 60, 60]], np.float32)
    placed = mem.place(cur)
    np.testing.assert_array_equal(placed[1], cur[1])
    # it moved by 5% of its size: between jitter (2%) and motion (8%), so a quarter of the way back
    # (weight 0.5 x 0.5), then grown to contain its box
    np.testing.assert_allclose(placed[0], [0, 11.5, 11.5, 52, 52])
    out = mem.blend(torch.zeros((2, 3, 4, 4)))
    assert torch.equal(out[0], torch.full((3, 4, 4), 0.5)) and torch.equal(out[1], torch.zeros((3, 4, 4)))
    # frames of one call are steadied in order: frame 1 pairs with frame 0 of the same call
    mem.reset()
    two = np.array([[0, 10, 10, 50, 50], [1, 10, 10, 50, 50]], np.float32)
    mem.place(two)
    out = mem.blend(torch.stack([torch.full((3, 4, 4), 1.0), torch.full((3, 4, 4), -1.0)]))
    assert torch.equal(out[1], torch.zeros((3, 4, 4)))
    # a drawing that failed between place and blend: the next frame starts afresh
    mem.place(two[:1])
    np.testing.assert_array_equal(mem.place(cur[:1]), cur[:1])
    for bad in (float("nan"), -0.1, 0.95, 1.0, "0.5", True, None, float("inf")):
        with pytest.raises(ValueError, match="temporal_smoothing"):
            FaceMemory(bad)


class _CodeRecorder(torch.nn.Module):
    """A model that takes a code per face (``latent_dim``) and records the codes it was given."""

    crop_size = 8
    latent_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def forward(self, x, z):
        assert z.shape == (x.shape[0], self.latent_dim)
        self.codes.append(z.clone())
        return torch.zeros_like(x)


@pytest.mark.parametrize("weight", [0.0, 0.8])
def test_learned_codes_are_one_per_track(weight: float) -> None:
    """A model with a code gets one code per track (the same along a track, whatever the smoothing),
    a different one for another track; a track missed for a frame comes back with its code."""
    frames = np.random.default_rng().integers(0, 256, (4, 48, 96, 3), dtype=np.uint8)
    other = BOX + np.array([[50.0, 0.0, 50.0, 0.0]], np.float32)
    both = np.concatenate([BOX, other])
    model = _CodeRecorder()
    anon = Anonymizer("learned", boxes=[both, both, BOX, both], device="cpu", checkpoint=model,
                      temporal_smoothing=weight)
    anon(frames[:2])  # one call, two frames
    anon(frames[2:])  # tracks carry across calls
    z = torch.cat(model.codes)  # rows: f0 (BOX, other), f1 (BOX, other), f2 (BOX), f3 (BOX, other)
    assert z.shape == (7, 4) and torch.isfinite(z).all()
    for row in (2, 4, 5):
        assert torch.equal(z[row], z[0]), "one track keeps its code"
    assert torch.equal(z[3], z[1])
    assert not torch.equal(z[0], z[1]), "two tracks, two codes"
    # 'other' was missed in frame 2: in frame 3 it is the same made-up person again
    assert torch.equal(z[6], z[1])
    anon.reset()  # a new stream starts from the same seeded codes
    anon(frames[:1])
    assert torch.equal(model.codes[-1], z[:2])


def test_face_memory_codes_outlive_short_misses() -> None:
    """A face the detector misses comes back as the same person within CODE_HOLD frames (where it
    was last seen), as a new person after that or somewhere else; two missed faces get their own
    codes back."""
    from anonface.render import CODE_HOLD, FaceMemory

    a = np.array([[0, 10, 10, 50, 50], [0, 60, 10, 100, 50]], np.float32)
    elsewhere = np.array([[0, 200, 10, 240, 50]], np.float32)

    def step(mem: FaceMemory, rois: np.ndarray) -> np.ndarray:
        mem.place(rois)
        z = mem.codes(4)
        mem.blend(torch.zeros(len(rois), 3, 4, 4))
        return z

    mem = FaceMemory(0.8, seed=1)
    first = step(mem, a)
    step(mem, elsewhere)  # both missed; a third face appears elsewhere
    for _ in range(3):
        step(mem, elsewhere)
    back = step(mem, a[::-1].copy())  # both back, listed the other way round
    np.testing.assert_array_equal(back, first[::-1])
    new_there = step(mem, np.concatenate([elsewhere, a[:1] + np.array([[0, 0, 200, 0, 200]], np.float32)]))
    assert not np.isin(new_there[1], first).all(), "no overlap with a lost box: a new person"
    mem2 = FaceMemory(0.8, seed=1)
    step(mem2, a)
    for _ in range(CODE_HOLD + 1):
        step(mem2, elsewhere)
    late = step(mem2, a)
    assert not np.array_equal(late[0], first[0]) and not np.array_equal(late[1], first[1])


def test_face_memory_codes() -> None:
    from anonface.render import FaceMemory

    mem = FaceMemory(0.0, seed=3)
    a = np.array([[0, 10, 10, 50, 50], [0, 60, 10, 100, 50]], np.float32)
    mem.place(a)
    first = mem.codes(5)
    assert first.shape == (2, 5) and first.dtype == np.float32 and not np.array_equal(first[0], first[1])
    mem.blend(torch.zeros(2, 3, 4, 4))
    swapped = a[::-1].copy()  # the same boxes listed the other way round keep their codes
    mem.place(swapped)
    np.testing.assert_array_equal(mem.codes(5), first[::-1])
    mem.blend(torch.zeros(2, 3, 4, 4))
    # a drawing that failed (place without blend): the next place starts afresh, with new codes
    mem.place(a)
    mem.place(a)
    fresh = mem.codes(5)
    assert not np.array_equal(fresh, first)
    mem.blend(torch.zeros(2, 3, 4, 4))
    # a code of another length (another model) is never reused
    mem.place(a)
    assert mem.codes(3).shape == (2, 3)


def test_learned_codes_without_memory_are_random_per_face() -> None:
    from anonface.render import anonymize_faces

    model = _CodeRecorder()
    frames = torch.from_numpy(np.random.default_rng().integers(0, 256, (1, 48, 96, 3), dtype=np.uint8))
    two = [np.concatenate([BOX, BOX + np.array([[50.0, 0.0, 50.0, 0.0]], np.float32)])]
    anonymize_faces(frames, two, method="learned", model=model, seed=1)
    anonymize_faces(frames, two, method="learned", model=model, seed=1)
    anonymize_faces(frames, two, method="learned", model=model, seed=2)
    z1, z1b, z2 = model.codes
    assert not torch.equal(z1[0], z1[1]) and torch.equal(z1, z1b) and not torch.equal(z1, z2)


def test_face_memory_boxes_contain_the_given_ones_and_jitter_less() -> None:
    """Placed boxes always contain the given box (what the tracker asked to cover), and a box that
    jitters around a still face moves less than it."""
    from anonface.render import FaceMemory

    rng = np.random.default_rng()
    mem = FaceMemory(0.7)
    given, placed = [], []
    for _ in range(40):
        box = np.array([[0, *(np.array([100, 80, 160, 150]) + rng.normal(0, 0.6, 4))]], np.float32)  # ~1% jitter
        p = mem.place(box)
        mem.blend(torch.zeros((1, 3, 4, 4)))
        assert (p[0, 1:3] <= box[0, 1:3]).all() and (p[0, 3:5] >= box[0, 3:5]).all()
        given.append(box[0, 1:])
        placed.append(p[0, 1:])
    jitter = lambda b: np.abs(np.diff(np.array(b), axis=0)).mean()  # noqa: E731
    assert jitter(placed) < 0.8 * jitter(given)


def test_face_memory_follows_a_moving_face_without_lag() -> None:
    """A box moving by >= 8% of its size a frame is drawn where it is (a lagging box would average
    misaligned faces); a still one stays put."""
    from anonface.render import FaceMemory

    mem = FaceMemory(0.8)
    for t in range(12):
        box = np.array([[0, 100 + 8 * t, 80, 180 + 8 * t, 160]], np.float32)  # 8 px/frame on 80 px: 10%
        np.testing.assert_array_equal(mem.place(box), box)
        mem.blend(torch.zeros((1, 3, 4, 4)))
    still = np.array([[0, 300, 80, 380, 160]], np.float32)
    mem.reset()
    mem.place(still)
    mem.blend(torch.zeros((1, 3, 4, 4)))
    nudged = still + np.array([[0, 1, 0, 1, 0]], np.float32)  # 1.25%: jitter
    np.testing.assert_allclose(mem.place(nudged), [[0, 300.2, 80, 381, 160]], rtol=1e-6)


def test_learned_draws_faces_only_on_sure_boxes() -> None:
    """method 'learned': a box scored below LEARNED_MIN_SCORE gets the model's smooth mosaic input,
    a sure one the model's face; boxes without scores (rois) all get the model."""
    from anonface.models.anonymizer import load_pretrained
    from anonface.render import LEARNED_MIN_SCORE, anonymize_faces

    model = load_pretrained()
    rng = np.random.default_rng()
    frame = torch.from_numpy(rng.integers(0, 256, (1, 160, 320, 3), dtype=np.uint8))
    sure, faint = [40.0, 40.0, 100.0, 110.0, 0.9], [200.0, 40.0, 260.0, 110.0, LEARNED_MIN_SCORE / 2]
    out = anonymize_faces(frame, [np.array([sure, faint], np.float32)], method="learned", model=model)
    drawn = anonymize_faces(frame, np.array([[0, *sure[:4]], [0, *faint[:4]]], np.float32), method="learned",
                            model=model)
    mosaic = anonymize_faces(frame, np.array([[0, *faint[:4]]], np.float32), method="learned",
                             model=model.smooth_mosaic())
    left, right = slice(0, 160), slice(160, 320)  # the scaled boxes stay on their own half
    assert torch.equal(out[:, :, left], drawn[:, :, left])
    assert torch.equal(out[:, :, right], mosaic[:, :, right])
    assert not torch.equal(out[:, :, right], drawn[:, :, right])
    # a NaN score counts as faint: the mosaic, never an uncovered face
    unsure = [*faint[:4], float("nan")]
    out_nan = anonymize_faces(frame, [np.array([sure, unsure], np.float32)], method="learned", model=model)
    assert torch.equal(out_nan, out)


def test_learned_faces_fade_into_their_mosaic_at_the_rim() -> None:
    """A sure box gets M's face whose rim (outside RIM_FADE[0] of the crop's ellipse) fades into M's
    smooth mosaic input: the face is M's drawing, the rim the mosaic, never the frame."""
    from anonface.models.anonymizer import load_pretrained
    from anonface.render import RIM_FADE, RimFade, anonymize_faces, modify_faces

    model = load_pretrained()
    mosaic = model.smooth_mosaic()
    rng = np.random.default_rng()
    crops = torch.from_numpy(rng.uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32))
    faded = RimFade(model, mosaic)
    with torch.no_grad():
        got, face, base = faded(crops), model(crops), mosaic(crops)
    c = (torch.arange(64) + 0.5) / 64 * 2 - 1
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    inner, outer = r <= RIM_FADE[0], r >= RIM_FADE[1]
    assert torch.equal(got[..., inner], face[..., inner]) and torch.equal(got[..., outer], base[..., outer])
    ring = ~inner & ~outer
    lo = torch.minimum(face, base)[..., ring] - 1e-6
    hi = torch.maximum(face, base)[..., ring] + 1e-6
    assert ((got[..., ring] >= lo) & (got[..., ring] <= hi)).all()  # a blend of the two, nothing else
    # the pipeline's learned path pastes exactly that
    frame = torch.from_numpy(rng.integers(0, 256, (1, 160, 200, 3), dtype=np.uint8))
    box = np.array([[50.0, 40.0, 130.0, 130.0, 0.9]], np.float32)
    out = anonymize_faces(frame, [box], method="learned", model=model)
    rois = torch.tensor([[0, *scale_boxes(box, 1.3)[0]]], dtype=torch.float32)
    assert torch.equal(out, modify_faces(frame, rois, method="learned", strength=None, model=faded))


def test_learned_with_a_model_object() -> None:
    """checkpoint= may be a built model: it is used as it is (crop -> it -> paste), no file read."""

    class Negate(torch.nn.Module):
        crop_size = 16

        def forward(self, x):
            return -x

    frames = _frames(np.random.default_rng(), 2)
    out = Anonymizer("learned", boxes=[BOX, BOX], device="cpu", checkpoint=Negate(), temporal_smoothing=0)(frames)
    sb = scale_boxes(BOX, 1.3)
    rois = torch.tensor([[i, *sb[0]] for i in range(2)], dtype=torch.float32)
    f = torch.from_numpy(frames)
    crops = ops.face_crop(f, rois, 16, (0.5,) * 3, (0.5,) * 3)
    np.testing.assert_array_equal(out, ops.face_paste(f, -crops, rois, (0.5,) * 3, (0.5,) * 3, "ellipse", 0.05).numpy())
    with pytest.raises(ValueError, match="crop_size"):
        Anonymizer("learned", boxes=[BOX], device="cpu", checkpoint=torch.nn.Identity())
    for wrong in (42, 0.5, float("nan"), [Negate()]):
        with pytest.raises(TypeError, match="checkpoint must be a path, a model"):
            Anonymizer("learned", boxes=[BOX], device="cpu", checkpoint=wrong)


def test_cpu_pipeline_draws_a_batch_of_frames_in_one_model_call() -> None:
    """On the CPU too, a model method draws the faces of a whole batch of frames in one network call
    (a face or two per frame would leave it half idle); the frames come out as drawn one by one, and
    the caller's frames stay untouched. The kernel methods still go frame by frame."""

    class Counting(torch.nn.Module):
        crop_size = 16

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def forward(self, x):
            self.calls.append(int(x.shape[0]))
            return -x

    rng = np.random.default_rng()
    frames = _frames(rng, 10, 96, 128)  # every scaled box inside the frame (no edge to hold)
    keep = frames.copy()
    model = Counting()
    boxes = [BOX, np.concatenate([BOX, BOX + 16])] * 5  # 1 or 2 faces per frame
    out = Anonymizer("learned", boxes=boxes, device="cpu", checkpoint=model, temporal_smoothing=0,
                     batch_size=4, track=False)(frames)
    assert model.calls == [6, 6, 3]  # frames 0-3, 4-7, 8-9
    np.testing.assert_array_equal(frames, keep)
    for t in range(10):
        rois = torch.from_numpy(np.concatenate([np.zeros((len(boxes[t]), 1), np.float32),
                                                scale_boxes(boxes[t], 1.3)], axis=1))
        f = torch.from_numpy(frames[t : t + 1])
        crops = ops.face_crop(f, rois, 16, (0.5,) * 3, (0.5,) * 3)
        want = ops.face_paste(f, -crops, rois, (0.5,) * 3, (0.5,) * 3, "ellipse", 0.05)[0].numpy()
        np.testing.assert_array_equal(out[t], want)
    assert Anonymizer("pixelate", boxes=boxes, device="cpu")._render_per_frame()
    assert not Anonymizer("learned", boxes=boxes, device="cpu", checkpoint=model)._render_per_frame()


def test_cpu_model_stream_of_frames_of_two_sizes() -> None:
    """A stream may mix frame sizes (photos of a folder): a batch that cannot be stacked is drawn frame
    by frame, each frame as it would be alone."""

    class Negate(torch.nn.Module):
        crop_size = 16

        def forward(self, x):
            return -x

    class Fixed:
        def detect(self, frames, idx=None):
            return [BOX.copy() for _ in idx]

    rng = np.random.default_rng()
    sizes = [(48, 64), (96, 128), (48, 64), (60, 50), (48, 64)]
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]

    def anon() -> Anonymizer:
        return Anonymizer("learned", detector=Fixed(), device="cpu", checkpoint=Negate(), temporal_smoothing=0,
                          track=False, batch_size=4)

    out = list(anon().stream(frames))
    assert [o.shape[:2] for o in out] == sizes
    for f, o in zip(frames, out):
        np.testing.assert_array_equal(o, anon()(f))
        assert (o != f).any()


@pytest.mark.parametrize("bad", ["shape", "raises", "nan", "code -1", "code '4'", "code 2.5", "code True"])
def test_learned_with_a_broken_model_object_fails_closed(bad: str) -> None:
    """A model object that returns the wrong shape, raises, returns NaN or states a code length that
    is no length never lets the face through: the frame is masked whole (on_error='mask'), the run
    stops ('stop'), or the face is painted black (NaN faces round to 0)."""

    class Broken(torch.nn.Module):
        crop_size = 16
        latent_dim = {"code -1": -1, "code '4'": "4", "code 2.5": 2.5, "code True": True}.get(bad)

        def forward(self, x, z=None):
            if bad == "shape":
                return x[:, :, :8]
            if bad == "raises":
                raise RuntimeError("model exploded")
            return torch.full_like(x, float("nan"))

    frames = _frames(np.random.default_rng(), 2)
    out = Anonymizer("learned", boxes=[BOX, BOX], device="cpu", checkpoint=Broken())(frames)
    x1, y1, x2, y2 = (int(v) for v in BOX[0, :4])
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    assert (out[:, cy - 2 : cy + 2, cx - 2 : cx + 2] == 0).all()  # the face's centre is black either way
    if bad != "nan":
        assert (out == 0).all()  # the whole frame masked
        with pytest.raises(AnonymizationError):
            Anonymizer("learned", boxes=[BOX, BOX], device="cpu", checkpoint=Broken(), on_error="stop")(frames)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "smudge"}, "method"), ({"mask": "star"}, "mask"), ({"on_error": "ignore"}, "on_error"),
     ({"mask_scale": 0.5}, "mask_scale"), ({"detect_every": 0}, "detect_every")],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        anonymize(np.zeros((8, 8, 3), np.uint8), boxes=BOX, device="cpu", **kwargs)


def test_bad_frames() -> None:
    with pytest.raises(ValueError, match="frames"):
        anonymize(np.zeros((8, 8), np.uint8), boxes=BOX, device="cpu")
    with pytest.raises(ValueError, match="channels"):
        anonymize(np.zeros((2, 8, 8, 4), np.uint8), boxes=[BOX, BOX], device="cpu")
    with pytest.raises(ValueError, match="numpy array or a torch tensor"):
        anonymize([[1, 2, 3]], boxes=BOX, device="cpu")


@pytest.mark.parametrize(("method", "strength"), [("pixelate", 4.0), ("blur", 0.2), ("solid", 128.0), ("noise", 120.0)])
def test_every_method_equals_its_kernel(method: str, strength: float) -> None:
    frames = _frames(np.random.default_rng(), 2)
    out = anonymize(frames, boxes=[BOX, BOX], method=method, strength=strength, device="cpu", mask_scale=1.1)
    np.testing.assert_array_equal(out, _expected(frames, BOX, method, strength, mask_scale=1.1))
    assert (out != frames).any(-1).mean() > 0.1


def test_mosaic_cells_of_fixed_pixel_size() -> None:
    frames = _frames(np.random.default_rng(), 1, 96, 128)
    small = np.array([[10, 10, 30, 30]], np.float32)  # 20 px -> 1.2 x 20 = 24 px mask box
    big = np.array([[50, 20, 110, 80]], np.float32)  # 60 px -> 72 px mask box
    both = np.concatenate([small, big])
    out = anonymize(frames, boxes=[both], method="pixelate", mosaic_px=12, mask_scale=1.1, device="cpu")
    exp = _expected(frames, small, "pixelate", 2.0, mask_scale=1.1)  # 24 / 12 = 2 cells
    exp = _expected(exp, big, "pixelate", 6.0, mask_scale=1.1)  # 72 / 12 = 6 cells
    np.testing.assert_array_equal(out, exp)


def test_blinking_detector_faces_stay_hidden_in_every_frame() -> None:
    """A face moving across the frames, found by the detector on only some of them."""
    rng = np.random.default_rng()
    n = 16
    frames = _frames(rng, n, 64, 160)
    truth = [np.array([[8 + 6 * t, 16, 38 + 6 * t, 46]], np.float32) for t in range(n)]
    seen = {0, 1, 5, 6, 11, 15}  # the detector blinks for up to 4 frames at a time

    class Blinking:
        def detect(self, f, idx=None):
            return [truth[i].copy() if i in seen else np.zeros((0, 5), np.float32) for i in idx]

    out = Anonymizer(detector=Blinking(), device="cpu", method="solid", mask="box", batch_size=4)(frames)
    for t in range(n):
        x1, y1, x2, y2 = truth[t][0].astype(int)
        assert (out[t, y1:y2, x1:x2] == 0).all(), f"face visible in frame {t}"
    untracked = Anonymizer(detector=Blinking(), device="cpu", method="solid", mask="box", track=False)(frames)
    assert not (untracked[3, 16:46, 26:56] == 0).all()  # without tracking the face shows through


def test_noise_differs_between_frames_and_inputs_stay_untouched() -> None:
    """Each frame gets its own noise (keyed by its stream index); the caller's frames are not written."""
    frame = _frames(np.random.default_rng(), 1)[0]
    frames = np.stack([frame, frame, frame])
    before = frames.copy()
    out = anonymize(frames, boxes=[BOX] * 3, method="noise", strength=120.0, device="cpu")
    np.testing.assert_array_equal(frames, before)
    changed = (out[0] != frame).any(-1)
    assert changed.mean() > 0.05
    assert (out[0][changed] != out[1][changed]).any(-1).mean() > 0.5
    assert (out[1][changed] != out[2][changed]).any(-1).mean() > 0.5
    # Tensors given to a reusable Anonymizer are left untouched too.
    t = torch.from_numpy(before.copy())
    Anonymizer(boxes=[BOX] * 3, device="cpu")(t)
    assert torch.equal(t, torch.from_numpy(before))


@pytest.mark.parametrize("method", ["solid", "pixelate"])
def test_face_cut_by_the_frame_edge_is_covered_whole(method: str) -> None:
    """Boxes are enlarged without clipping: a clipped box's inscribed ellipse is narrower and left
    the part of a face at the border (the detected box's corners) visible."""
    rng = np.random.default_rng()
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for box in ([-12.0, 10.0, 20.0, 42.0], [44.0, -10.0, 64.0, 20.0], [30.0, 40.0, 70.0, 70.0]):
        b = np.array([box], np.float32)
        out = anonymize(frame, boxes=b, method=method, device="cpu")
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        sl = (slice(max(y1, 0), min(y2, 64)), slice(max(x1, 0), min(x2, 64)))
        if method == "solid":
            assert (out[sl] == 0).all(), box
        else:
            assert (out[sl] != frame[sl]).any(-1).mean() > 0.9, box


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"boxes": np.array([[0, np.nan, 5, 20, 20]], np.float32)}, "finite"),
    ({"boxes": np.array([[0, 5, 5, np.inf, 20]], np.float32)}, "finite"),
    ({"mask_scale": float("nan")}, "mask_scale"),
    ({"mask_scale": 0.5}, "mask_scale"),
    ({"feather": 0.9}, "feather"),
    ({"boxes": [np.zeros((0, 4))] * 3}, "one"),  # 3 per-frame arrays for 2 frames
])
def test_render_refuses_what_would_hide_nothing(kwargs, match) -> None:
    """anonymize_faces is public (the evaluation calls it too): what would draw nothing is refused."""
    from anonface.render import anonymize_faces

    frames = torch.from_numpy(_frames(np.random.default_rng(), 2))
    args = {"boxes": np.array([[0, 5, 5, 20, 20]], np.float32), **kwargs}
    with pytest.raises(ValueError, match=match):
        anonymize_faces(frames, args.pop("boxes"), method="solid", **args)


def test_learned_model_with_a_code_keeps_one_person_per_track(tmp_path) -> None:
    """Through the pipeline's own path (the rim fading into the mosaic, the memory): the same face in
    two places is drawn as two people, and each stays the same person in the next frame."""
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer, save_anonymizer

    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4, latent_dim=4))
    for mod in m.modulate.values():
        torch.nn.init.normal_(mod.affine.weight, std=0.5)
    torch.nn.init.normal_(m.net[-1].weight, std=0.1)
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    rng = np.random.default_rng()
    face = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    frame = np.zeros((48, 112, 3), np.uint8)
    frame[4:44, 4:44] = face
    frame[4:44, 64:104] = face  # the same face twice
    boxes = np.array([[12.0, 12.0, 36.0, 36.0], [72.0, 12.0, 96.0, 36.0]], np.float32)
    frames = np.stack([frame, frame])
    out = Anonymizer("learned", boxes=[boxes, boxes], device="cpu", checkpoint=str(tmp_path / "m.pt"),
                     temporal_smoothing=0)(frames)
    left, right = out[:, 4:44, 4:44].astype(int), out[:, 4:44, 64:104].astype(int)
    assert np.abs(left[0] - right[0]).max() > 8, "two tracks, two people"
    np.testing.assert_array_equal(left[1], left[0])  # one track, one person (same crop, same code)
    np.testing.assert_array_equal(right[1], right[0])
    assert np.abs(left[0] - face).max() > 8  # and the face is changed


@pytest.mark.parametrize("seed", [0, -1, 2**63, 2**70, -(2**70)])
def test_learned_codes_take_any_integer_seed(seed: int) -> None:
    """The pipeline takes any integer seed (noise folds it to 63 bits); the codes' generators do too,
    in the memory (the Anonymizer) and without one (anonymize_faces), and the face is still drawn."""
    from anonface.render import FaceMemory, anonymize_faces

    frames = _frames(np.random.default_rng(), 1)
    model = _CodeRecorder()
    outs = [Anonymizer("learned", boxes=[BOX], device="cpu", checkpoint=model, seed=seed)(frames)[0],
            anonymize_faces(torch.from_numpy(frames), [BOX], method="learned", model=model, seed=seed)[0].numpy()]
    for out in outs:  # the recorder draws a flat grey face (0 in [-1, 1])
        assert np.abs(_centre(out, BOX) - _level(0.0)).max() <= 1
    assert len(model.codes) == 2 and all(z.shape == (1, 4) and torch.isfinite(z).all() for z in model.codes)
    mem = FaceMemory(0.0, seed=seed)
    mem.place(np.array([[0, *BOX[0]]], np.float32))
    assert np.array_equal(mem.codes(4), model.codes[0].numpy())  # the Anonymizer's memory, same seed


@pytest.mark.parametrize("track", [True, False])
def test_composite_through_the_pipeline_follows_the_landmarks(track: bool) -> None:
    """With a detector giving landmarks, the pipeline draws the composite onto them (the frames differ
    from the same boxes without landmarks), covers the same boxes, and reports ``[K, 5]`` boxes; a
    detector that gives landmarks on some frames only is handled (with and without the tracker)."""
    from anonface import Anonymizer
    from anonface.pipeline import RunStats
    from anonface.render import CANONICAL_LANDMARKS, scale_boxes

    box = np.array([60.0, 50.0, 140.0, 150.0, 0.9], np.float32)
    big = scale_boxes(box[None], 1.3)[0]
    rel = CANONICAL_LANDMARKS + np.array([0.08, 0.0], np.float32)
    row = np.concatenate([box, (big[:2] + rel * (big[2:] - big[:2])).reshape(10)]).astype(np.float32)

    class Marked:
        def __init__(self, with_points: bool, every_other: bool = False) -> None:
            self.with_points, self.every_other = with_points, every_other

        def detect(self, frames, indices):
            out = []
            for i in indices:
                marked = self.with_points and not (self.every_other and i % 2)
                out.append(row[None].copy() if marked else box[None].copy())
            return out

    rng = np.random.default_rng()
    frames = rng.integers(60, 200, (4, 200, 200, 3), dtype=np.uint8)
    outs, boxes = [], []
    for det in (Marked(True), Marked(False), Marked(True, every_other=True)):
        stats = RunStats(boxes=[])
        anon = Anonymizer("composite", detector=det, device="cpu", track=track)
        outs.append(np.stack(list(anon.stream(list(frames), stats))))
        boxes.append(stats.boxes)
    assert not np.array_equal(outs[0], outs[1])
    assert all(b.shape == (1, 5) for b in boxes[0] + boxes[2])
    for a, b in zip(boxes[0], boxes[1]):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.array_equal(outs[2][0], outs[0][0])  # frame 0 had its landmarks


def test_user_boxes_with_landmarks_place_the_composite() -> None:
    """``anonymize(frames, boxes=[K, 15] rows)``: the caller's landmarks move the composite's face,
    exactly as a detector's would; the covered boxes are the same."""
    from anonface.render import CANONICAL_LANDMARKS, scale_boxes

    box = np.array([60.0, 50.0, 140.0, 150.0, 1.0], np.float32)
    big = scale_boxes(box[None], 1.3)[0]
    rel = CANONICAL_LANDMARKS + np.array([-0.07, 0.04], np.float32)
    row = np.concatenate([box, (big[:2] + rel * (big[2:] - big[:2])).reshape(10)]).astype(np.float32)
    frames = np.random.default_rng().integers(60, 200, (2, 200, 200, 3), dtype=np.uint8)
    plain = anonymize(frames, boxes=[box[None, :4]] * 2, method="composite", device="cpu")
    moved = anonymize(frames, boxes=[row[None]] * 2, method="composite", device="cpu")
    assert not np.array_equal(plain, moved)
    outside = np.ones((200, 200), bool)
    x1, y1, x2, y2 = (int(v) for v in big)
    outside[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = False
    assert np.array_equal(moved[:, outside], frames[:, outside])
