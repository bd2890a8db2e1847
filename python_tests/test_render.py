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


# -- drawing onto the face's landmarks ---------------------------------------------------------------


def _landmark_rois(rel: np.ndarray, box=(0.0, 20.0, 30.0, 120.0, 130.0)) -> tuple[np.ndarray, np.ndarray]:
    """One roi ``[1, 5]`` and its landmarks ``[1, 10]`` at ``rel [5, 2]`` of the box."""
    roi = np.array([box], np.float32)
    wh = roi[0, 3:5] - roi[0, 1:3]
    return roi, (roi[0, 1:3] + rel * wh).reshape(1, 10).astype(np.float32)


def _read_position(theta: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Where (relative to the crop) the map ``theta [2, 3]`` reads the drawn face for box positions ``rel``."""
    p = 2 * rel - 1
    return ((p @ theta[:, :2].T + theta[:, 2]) + 1) / 2


def test_align_maps_the_face_s_landmarks_onto_the_canonical_ones() -> None:
    """A face whose landmarks are the canonical ones turned, scaled and shifted gets back exactly that
    move's inverse, with the detail kept whole; the canonical face gets the identity. A face of other
    proportions (stretched along one axis) gets a similarity too: its proportions are not copied."""
    from anonface.render import CANONICAL_LANDMARKS, align_to_landmarks

    rng = np.random.default_rng()
    canon = CANONICAL_LANDMARKS.astype(np.float64)
    roi, pts = _landmark_rois(canon)
    theta, weight = align_to_landmarks(roi, pts)
    np.testing.assert_allclose(theta[0], np.eye(2, 3), atol=1e-4)
    assert weight[0] == 1.0
    for _ in range(5):
        ang, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.25)
        lin = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        moved = (canon - 0.5) @ lin.T + 0.5 + rng.uniform(-0.1, 0.1, 2)
        roi, pts = _landmark_rois(moved)
        theta, weight = align_to_landmarks(roi, pts)
        np.testing.assert_allclose(_read_position(theta[0].astype(np.float64), moved), canon, atol=1e-3)
        assert weight[0] == 1.0
    wide = (canon - 0.5) * np.array([1.2, 0.9]) + 0.5
    roi, pts = _landmark_rois(wide)
    theta = align_to_landmarks(roi, pts)[0][0].astype(np.float64)
    (a, b, _), (c, d, _) = theta
    assert a == pytest.approx(d, abs=1e-6) and b == pytest.approx(-c, abs=1e-6)  # a turn and one scale
    assert not np.allclose(_read_position(theta, wide), canon, atol=1e-2)


def test_inverse_maps_undo_the_maps() -> None:
    """Random invertible affine maps: each inverse takes the map's image of random points back to the
    points, and the identity is its own inverse."""
    from anonface.render import inverse_maps

    g = torch.Generator().manual_seed(int(np.random.default_rng().integers(1 << 31)))
    theta = torch.randn(6, 2, 3, generator=g, dtype=torch.float64)
    theta[:, :, :2] += 2 * torch.eye(2, dtype=torch.float64)  # keep them well away from singular
    u = torch.randn(6, 2, 7, generator=g, dtype=torch.float64)
    there = theta[:, :, :2] @ u + theta[:, :, 2:]
    inv = inverse_maps(theta)
    assert inv.shape == (6, 2, 3) and inv.dtype == torch.float64
    torch.testing.assert_close(inv[:, :, :2] @ there + inv[:, :, 2:], u, rtol=1e-9, atol=1e-9)
    eye = torch.eye(2, 3, dtype=torch.float64)[None]
    torch.testing.assert_close(inverse_maps(eye), eye)


@pytest.mark.parametrize("case", ["nan", "inf", "huge", "mirror", "empty_box"])
def test_align_without_usable_landmarks_draws_the_face_unmoved(case: str) -> None:
    """Unknown (NaN), infinite or absurd landmarks, a mirror image of a face's and a box of no size
    give the identity map and the whole detail: the face as drawn without landmarks."""
    from anonface.render import CANONICAL_LANDMARKS, align_to_landmarks

    rel = CANONICAL_LANDMARKS.astype(np.float64).copy()
    box = (0.0, 20.0, 30.0, 120.0, 130.0)
    if case == "mirror":
        rel[:, 0] = 1 - rel[:, 0]
    if case == "empty_box":
        box = (0.0, 20.0, 30.0, 20.0, 30.0)
    roi, pts = _landmark_rois(rel, box)
    if case == "nan":
        pts[0, 3] = np.nan
    elif case == "inf":
        pts[0, 0] = np.inf
    elif case == "huge":
        pts[0, :] *= 1e30
    if case == "empty_box":
        pts[:] = 20.0
    theta, weight = align_to_landmarks(roi, pts)
    np.testing.assert_array_equal(theta[0], np.eye(2, 3, dtype=np.float32))
    assert weight[0] == 1.0
    none_t, none_w = align_to_landmarks(np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32))
    assert none_t.shape == (0, 2, 3) and none_w.shape == (0,)


def test_align_fades_the_detail_on_a_profile() -> None:
    """Landmarks bunched to one side, as on a head turned to profile, would need the drawn face
    squeezed beyond ALIGN_STRETCH: its detail fades out (the smooth mosaic alone); a moderate turn
    keeps part of it."""
    from anonface.render import CANONICAL_LANDMARKS, align_to_landmarks

    canon = CANONICAL_LANDMARKS.astype(np.float64)
    weights = []
    for squeeze in (1.0, 0.6, 0.3):
        rel = canon.copy()
        rel[:, 0] = 0.7 + (rel[:, 0] - 0.5) * squeeze
        roi, pts = _landmark_rois(rel)
        weights.append(float(align_to_landmarks(roi, pts)[1][0]))
    assert weights[0] == 1.0 and 0.0 < weights[1] < 1.0 and weights[2] == 0.0


def test_warp_affine_moves_the_drawing_and_keeps_what_it_need_not_move() -> None:
    from anonface.models.composite import warp_affine

    rng = np.random.default_rng()
    img = torch.zeros(3, 1, 32, 32)
    img[:, :, 10, 12] = torch.from_numpy(rng.uniform(0.2, 1.0, (3, 1)).astype(np.float32))  # one texel each
    noise = torch.from_numpy(rng.uniform(-1, 1, (3, 1, 32, 32)).astype(np.float32))
    ident = torch.eye(2, 3).expand(3, 2, 3).clone()
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert torch.equal(warp_affine(noise, ident, ones), noise)  # exactly, not resampled
    assert float(warp_affine(noise, ident, zeros).abs().max()) == 0.0
    half = warp_affine(noise, ident, torch.full((3,), 0.5))
    torch.testing.assert_close(half, noise * 0.5, atol=1e-5, rtol=0)
    shifted = ident.clone()
    shifted[:, 0, 2] = -4 / 16  # read 4 texels to the left: the drawing shows 4 texels to the right
    moved = warp_affine(img, shifted, ones)
    torch.testing.assert_close(moved[:, :, 10, 16], img[:, :, 10, 12], atol=1e-5, rtol=0)
    torch.testing.assert_close(moved.sum((1, 2, 3)), img.sum((1, 2, 3)), atol=1e-4, rtol=0)


def test_composite_moves_only_its_detail() -> None:
    """The composite's ``align``: its detail is moved, the mosaic under it is not (a zero map with
    weight 0 leaves the mosaic alone)."""
    from anonface.models.anonymizer import load_pretrained
    from anonface.models.composite import composite_weights_path

    model = load_pretrained(composite_weights_path())
    rng = np.random.default_rng()
    x = torch.from_numpy(rng.uniform(-0.6, 0.6, (2, 3, 64, 64)).astype(np.float32))
    z = torch.randn(2, model.latent_dim)
    with torch.no_grad():
        plain = model(x, z)
        same = model(x, z, align=(torch.eye(2, 3).expand(2, 2, 3), torch.ones(2)))
        bare = model(x, z, align=(torch.eye(2, 3).expand(2, 2, 3), torch.zeros(2)))
        mosaic = model.smooth_mosaic()(x)
    assert torch.equal(same, plain)
    torch.testing.assert_close(bare, mosaic.clamp(-1, 1), atol=1e-6, rtol=0)


def test_anonymize_faces_draws_the_composite_onto_the_landmarks() -> None:
    """The composite's face moves with the landmarks a box carries (per-frame ``[K, 15]`` or rois
    ``[K, 15]``); without landmarks, NaN ones, ``align=False`` or a kernel method nothing changes, and
    outside the scaled box no pixel does."""
    from anonface.models.anonymizer import load_pretrained
    from anonface.models.composite import composite_weights_path
    from anonface.render import CANONICAL_LANDMARKS, anonymize_faces, scale_boxes

    model = load_pretrained(composite_weights_path())
    rng = np.random.default_rng()
    frame = torch.from_numpy(rng.integers(60, 200, (1, 200, 200, 3), dtype=np.uint8))
    box = np.array([[60.0, 50.0, 140.0, 150.0, 0.9]], np.float32)
    big = scale_boxes(box, 1.3)[0]
    rel = CANONICAL_LANDMARKS.astype(np.float64).copy()
    rel[:, 0] += 0.08  # the face's features a little to the right
    pts = (big[:2] + rel * (big[2:] - big[:2])).reshape(1, 10).astype(np.float32)
    marked = np.concatenate([box, pts], 1)

    def run(boxes, **kw):
        return anonymize_faces(frame.clone(), boxes, method="composite", model=model, seed=5, **kw)

    plain = run([box])
    aligned = run([marked])
    assert not torch.equal(aligned, plain)
    rois = np.concatenate([[[0.0]], marked[:, :4], marked[:, 5:]], 1).astype(np.float32)
    bare = np.concatenate([[[0.0]], box[:, :4]], 1).astype(np.float32)
    assert not torch.equal(run(rois), run(bare))  # rois [K, 15] carry landmarks as well
    assert torch.equal(run([marked], align=False), plain)
    unknown = marked.copy()
    unknown[:, 5:] = np.nan
    assert torch.equal(run([unknown]), plain)
    x1, y1, x2, y2 = (int(v) for v in big)
    outside = torch.ones(200, 200, dtype=torch.bool)
    outside[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = False
    assert torch.equal(aligned[0][outside], frame[0][outside])
    pix = anonymize_faces(frame.clone(), [marked], method="pixelate")
    assert torch.equal(pix, anonymize_faces(frame.clone(), [box], method="pixelate"))


def test_the_shipped_learned_anonymizer_is_drawn_onto_landmarks() -> None:
    """The shipped M (v3) learned on aligned faces: a face's landmarks move its drawing, which a box
    without landmarks gets as M draws it."""
    from anonface.models.anonymizer import load_pretrained
    from anonface.render import anonymize_faces

    model = load_pretrained()
    assert model.aligns_to_landmarks
    rng = np.random.default_rng()
    frame = torch.from_numpy(rng.integers(60, 200, (1, 160, 160, 3), dtype=np.uint8))
    box = np.array([[40.0, 30.0, 110.0, 120.0, 0.9]], np.float32)
    pts = np.array([[62, 62, 90, 58, 78, 80, 66, 96, 90, 94]], np.float32)  # tilted, off-centre
    marked = np.concatenate([box, pts], 1)
    plain = anonymize_faces(frame.clone(), [box], method="learned", model=model)
    moved = anonymize_faces(frame.clone(), [marked], method="learned", model=model)
    assert float((moved.float() - plain.float()).abs().mean()) > 0.05
    assert torch.equal(anonymize_faces(frame.clone(), [marked], method="learned", model=model, align=False), plain)


def test_an_aligned_learned_anonymizer_is_drawn_onto_landmarks() -> None:
    """An M trained on aligned faces (``aligned``) gets each face's map: its drawing moves with the
    landmarks, a box without landmarks is drawn as without them, and nothing outside the box changes."""
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer
    from anonface.render import anonymize_faces

    model = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=8, aligned=True)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    rng = np.random.default_rng()
    frame = torch.from_numpy(rng.integers(60, 200, (1, 160, 160, 3), dtype=np.uint8))
    box = np.array([[40.0, 30.0, 110.0, 120.0, 0.9]], np.float32)
    pts = np.array([[62, 62, 90, 58, 78, 80, 66, 96, 90, 94]], np.float32)  # tilted, off-centre
    marked = np.concatenate([box, pts], 1)
    run = lambda b, **kw: anonymize_faces(frame.clone(), [b], method="learned", model=model, **kw)  # noqa: E731
    plain = run(box)
    aligned = run(marked)
    assert not torch.equal(aligned, plain)
    assert torch.equal(run(marked, align=False), plain)
    unknown = marked.copy()
    unknown[:, 5:] = np.nan
    assert torch.equal(run(unknown), plain)
    outside = torch.ones(160, 160, dtype=torch.bool)  # mask_scale 1.3: each side out by 0.3x the box
    outside[int(30 - 0.3 * 90) - 1 : int(120 + 0.3 * 90) + 2, int(40 - 0.3 * 70) - 1 : int(110 + 0.3 * 70) + 2] = False
    assert torch.equal(aligned[0][outside], frame[0][outside])


@pytest.mark.parametrize("bad", ["no", 0, 1, None, np.bool_(True)])
def test_anonymize_faces_align_must_be_a_bool(bad: object) -> None:
    from anonface.render import anonymize_faces

    frame = torch.zeros(1, 40, 40, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="align"):
        anonymize_faces(frame, [np.array([[5.0, 5.0, 30.0, 30.0]], np.float32)], method="pixelate", align=bad)


class _Recording(torch.nn.Module):
    """A stand-in anonymizer that takes a code, draws from it and from the crop, and records how many
    faces each call drew."""

    crop_size = 16
    latent_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        return (-x + 0.3 * torch.tanh(z[:, :1, None, None])).clamp(-1, 1)


def _crowd(rng: np.random.Generator, n_frames: int, per_frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames with ``per_frame`` boxes each (many overlapping), their rows shuffled across frames."""
    frames = torch.from_numpy(rng.integers(0, 256, (n_frames, 72, 96, 3), dtype=np.uint8))
    rows = []
    for f in range(n_frames):
        xy = rng.uniform(-6, 70, (per_frame, 2))
        side = rng.uniform(8, 30, (per_frame, 1))
        rows.append(np.concatenate([np.full((per_frame, 1), f), xy, xy + side], axis=1))
    rois = np.concatenate(rows).astype(np.float32)
    return frames, torch.from_numpy(rois[rng.permutation(len(rois))])


@pytest.mark.parametrize("per_frame", [5, 40])
def test_cpu_model_draws_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch, per_frame: int) -> None:
    """On the CPU a model draws at most CPU_DRAW_CHUNK faces per call; without a FaceMemory the faces
    go frame group by frame group (crop, draw, paste); either way the frames come out exactly as from
    one call (crops never read another group's pasted faces; each box keeps its code)."""
    import anonface.render as R

    rng = np.random.default_rng()
    frames, rois = _crowd(rng, 6, per_frame)
    chunked, whole = _Recording(), _Recording()
    for inplace in (False, True):
        chunked.calls.clear()
        src = frames.clone()
        out = modify_faces(src, rois, method="learned", strength=None, model=chunked, seed=7, inplace=inplace)
        assert max(chunked.calls) <= R.CPU_DRAW_CHUNK and sum(chunked.calls) == len(rois)
        assert len(chunked.calls) >= int(np.ceil(len(rois) / R.CPU_DRAW_CHUNK))
        assert (out is src) == inplace and (inplace or torch.equal(src, frames))
        with monkeypatch.context() as m:
            m.setattr(R, "CPU_DRAW_CHUNK", 10**6)
            whole.calls.clear()
            one = modify_faces(frames.clone(), rois, method="learned", strength=None, model=whole, seed=7)
        assert whole.calls == [len(rois)]
        assert torch.equal(out, one)
        assert (out != frames).any()


def test_cpu_model_draws_a_memory_s_faces_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a FaceMemory (one code per track, faces steadied across calls) the draw is chunked and the
    result is that of one call, codes included."""
    import anonface.render as R

    rng = np.random.default_rng()
    frames, rois = _crowd(rng, 2, 45)
    rois = rois[torch.argsort(rois[:, 0], stable=True)]  # a memory's boxes come in stream order
    outs = []
    for chunk in (R.CPU_DRAW_CHUNK, 10**6):
        model = _Recording()
        with monkeypatch.context() as m:
            m.setattr(R, "CPU_DRAW_CHUNK", chunk)
            memory = R.FaceMemory(0.5, seed=3)
            placed = torch.from_numpy(memory.place(rois.numpy()))
            outs.append(modify_faces(frames.clone(), placed, method="learned", strength=None, model=model,
                                     memory=memory))
        assert max(model.calls) <= chunk and sum(model.calls) == len(rois)
    assert torch.equal(outs[0], outs[1])


def test_frame_groups_hold_whole_frames() -> None:
    from anonface.render import _frame_groups

    rng = np.random.default_rng()
    counts = rng.integers(0, 12, 9)
    counts[4] = 30  # one frame with more boxes than a group
    frame_index = rng.permutation(np.repeat(np.arange(9), counts)).astype(np.float32)
    groups = _frame_groups(frame_index, 20)
    assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(len(frame_index)))  # each row once
    seen: set[float] = set()
    for g in groups:
        frames = set(frame_index[g].tolist())
        assert not frames & seen  # a frame lies in one group only
        seen |= frames
        assert len(g) <= 20 or len(frames) == 1
        for f in frames:  # within a frame the rows keep their order
            rows = g[frame_index[g] == f]
            assert np.array_equal(rows, np.sort(rows))
    assert _frame_groups(np.zeros(0, np.float32), 20) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 6.0, 0.5])
@pytest.mark.parametrize("chunked", [True, False])
def test_model_rois_with_a_bad_frame_index_are_refused(monkeypatch: pytest.MonkeyPatch, bad: float,
                                                       chunked: bool) -> None:
    """A roi whose frame index is no frame is refused (naming its row) whether the faces go in one call
    or frame group by frame group: never dropped from every group and left unpasted."""
    import anonface.render as R

    rng = np.random.default_rng()
    frames, rois = _crowd(rng, 6, 10)
    row = int(rng.integers(0, len(rois)))
    rois[row, 0] = bad
    if not chunked:
        monkeypatch.setattr(R, "CPU_DRAW_CHUNK", 10**6)
    src = frames.clone()
    with pytest.raises(ValueError, match=rf"rois\[{row}, 0\] must be an integral frame index"):
        modify_faces(src, rois, method="learned", strength=None, model=_Recording(), inplace=True)
    assert torch.equal(src, frames)  # refused before anything was pasted
