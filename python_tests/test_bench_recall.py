"""The recall benchmark's metric and composite generator (benchmarks/bench_recall.py), on synthetic input."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recall.py"
_spec = importlib.util.spec_from_file_location("bench_recall", _PATH)
br = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_recall", br)  # dataclasses look their module up
_spec.loader.exec_module(br)


def _mask(h=100, w=120, region=None):
    m = np.zeros((h, w), bool)
    if region is not None:
        x1, y1, x2, y2 = region
        m[y1:y2, x1:x2] = True
    return m


# -- coverage ----------------------------------------------------------------------------------------
def test_box_inside_anonymized_region_is_covered():
    m = _mask(region=(10, 10, 60, 70))
    assert br.box_fraction_inside(m, (20, 20, 40, 50)) == pytest.approx(1.0)
    assert br.is_covered(m, (20, 20, 40, 50))
    assert br.box_fraction_inside(m, (10, 10, 60, 70)) == pytest.approx(1.0)  # exactly the region


def test_89_percent_inside_is_not_covered_90_is():
    m = _mask(region=(0, 0, 89, 100))
    assert br.box_fraction_inside(m, (0, 10, 100, 20)) == pytest.approx(0.89)
    assert not br.is_covered(m, (0, 10, 100, 20))
    m = _mask(region=(0, 0, 90, 100))
    assert br.box_fraction_inside(m, (0, 10, 100, 20)) == pytest.approx(0.90)
    assert br.is_covered(m, (0, 10, 100, 20))


def test_fractional_box_edges_weigh_pixels_by_overlap():
    m = _mask(region=(10, 0, 11, 100))  # one anonymized column, x in [10, 11)
    # Box x in [10.5, 12.5): half of column 10, all of 11, half of 12 -> 0.5 / 2.0 of its width.
    assert br.box_fraction_inside(m, (10.5, 5, 12.5, 15)) == pytest.approx(0.25)
    assert br.box_fraction_inside(m, (10.25, 5, 10.75, 15)) == pytest.approx(1.0)


def test_box_parts_outside_the_frame_count_as_uncovered():
    m = np.ones((50, 50), bool)
    assert br.box_fraction_inside(m, (-10, 0, 10, 10)) == pytest.approx(0.5)
    assert br.box_fraction_inside(m, (60, 60, 70, 70)) == 0.0
    with pytest.raises(ValueError):
        br.box_fraction_inside(m, (5, 5, 5, 9))


def test_fill_weight_reads_the_blend_of_a_solid_fill():
    rng = np.random.default_rng(0)
    inp = rng.integers(0, br.CLIP_MAX + 1, (40, 50, 3)).astype(np.uint8)
    w = np.zeros((40, 50), np.float64)
    w[:, 10:20], w[:, 20:30], w[:, 30:40] = 0.3, 0.6, 1.0
    out = np.round(w[:, :, None] * br.FILL + (1 - w[:, :, None]) * inp).astype(np.uint8)
    est = br.fill_weight(inp, out)
    assert np.abs(est - w).max() < 0.05  # uint8 rounding over >= 3 * 25 grey levels
    m = br.anonymized_mask_fill(inp, out)
    assert not m[:, :20].any() and m[:, 20:40].all() and not m[:, 40:].any()


def test_checkerboard_marker_shows_every_blurred_pixel():
    import cv2

    marker = br.checkerboard(30, 40)
    out = marker.copy()
    out[5:15, 8:20] = cv2.blur(out[5:15, 8:20], (2, 1))
    m = br.changed_mask(marker, out)
    assert m[5:15, 8:20].all() and m.sum() == 10 * 12


def test_boxes_mask_scales_about_the_centre():
    m = br.boxes_mask([np.array([10, 10, 20, 30])], 60, 60, 2.0)
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (5, 25, 0, 40)


# -- the tools' masks against known boxes ------------------------------------------------------------
def _frame(h=120, w=160, level=90):
    return np.full((h, w, 3), level, np.uint8)


def test_anonface_solid_covers_its_own_boxes_and_not_a_shifted_face():
    from anonface import Anonymizer

    fr = _frame()
    face = np.array([60.0, 40.0, 90.0, 78.0])
    anon = Anonymizer(method="solid", strength=br.FILL, device="cpu", boxes=[np.array([[*face, 1.0]])])
    out = np.asarray(anon(fr[None])[0])
    m = br.anonymized_mask_fill(fr, out)
    assert br.is_covered(m, face)  # the 1.6x ellipse holds the whole box
    assert not br.is_covered(m, face + [30, 0, 30, 0])  # the same face 30 px to the right
    assert m.mean() < 0.2


def test_deface_marker_covers_its_detection():
    from deface.deface import anonymize_frame

    marker = br.checkerboard(120, 160)
    out = marker.copy()
    face = np.array([60.0, 40.0, 90.0, 78.0])
    anonymize_frame(np.array([[*face, 0.9]], np.float32), out, mask_scale=1.3, replacewith="blur", ellipse=True,
                    draw_scores=False, replaceimg=None, mosaicsize=20)
    m = br.changed_mask(marker, out)
    assert br.is_covered(m, face)
    assert not br.is_covered(m, face + [0, 35, 0, 35])


# -- composites ----------------------------------------------------------------------------------------
def _synthetic_lfw(level=200):
    """A 250x250 'LFW image' whose face box region is a flat bright patch on a dark photo background."""
    img = np.full((250, 250, 3), 40, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in br.LFW_FACE_BOX)
    img[y1:y2, x1:x2] = level
    return img


def test_face_patch_alpha_is_one_over_the_box_and_zero_at_the_edge():
    patch, alpha = br.face_patch(_synthetic_lfw())
    ox, oy = br.patch_origin()
    x1, y1, x2, y2 = br.LFW_FACE_BOX
    hw, hh = (x2 - x1) / 2, (y2 - y1) / 2
    box = alpha[int(oy - hh):int(oy + hh), int(ox - hw):int(ox + hw)]
    assert box.min() > 0.999
    assert max(alpha[0].max(), alpha[-1].max(), alpha[:, 0].max(), alpha[:, -1].max()) < 0.01
    assert patch.shape[:2] == alpha.shape


@pytest.mark.parametrize("angle,squeeze,flip", [(0.0, 1.0, False), (0.0, 0.6, True), (30.0, 1.0, False)])
def test_pasted_face_lands_in_its_true_box(angle, squeeze, flip):
    patch, alpha = br.face_patch(_synthetic_lfw())
    fr = _frame(200, 260, 60)
    cx, cy, size = 131.3, 97.6, 80.0
    box = br.paste_face(fr, patch, alpha, cx, cy, size, angle, squeeze, flip)
    k = size / (br.LFW_FACE_BOX[3] - br.LFW_FACE_BOX[1])
    assert (box[0] + box[2]) / 2 == pytest.approx(cx) and (box[1] + box[3]) / 2 == pytest.approx(cy)
    if angle == 0:
        assert box[3] - box[1] == pytest.approx(size)
        assert box[2] - box[0] == pytest.approx(100 * k * squeeze)
        # The bright face fills its box (but a pixel at the edges) and nothing bright lies outside.
        bright = fr[:, :, 0] > 150
        inner = (int(math.ceil(box[0])) + 1, int(math.ceil(box[1])) + 1, int(box[2]) - 1, int(box[3]) - 1)
        assert bright[inner[1]:inner[3], inner[0]:inner[2]].all()
        assert br.box_fraction_inside(bright, box) > 0.9
        assert bright.sum() <= (box[2] - box[0] + 2) * (box[3] - box[1] + 2)
    else:
        # The rotated face's centre is bright, and the box holds the rotated ellipse: wider than the face.
        assert fr[int(cy), int(cx), 0] > 150
        assert box[2] - box[0] > 100 * k
    # The pasted region (1.5x the box, rotated) is all that changed.
    changed = (fr != 60).any(axis=2)
    ys, xs = np.nonzero(changed)
    diag = math.hypot(br.PATCH_SCALE * 100 * k * squeeze, br.PATCH_SCALE * size) / 2
    assert np.hypot(xs + 0.5 - cx, ys + 0.5 - cy).max() <= diag + 2


def test_make_tracks_is_seeded_and_keeps_faces_apart_and_inside():
    a = br.make_tracks(np.random.default_rng(5), 20, 640, 360, n_faces=10, density=6)
    b = br.make_tracks(np.random.default_rng(5), 20, 640, 360, n_faces=10, density=6)
    assert [(t.start, t.length, t.size0, t.c0) for t in a] == [(t.start, t.length, t.size0, t.c0) for t in b]
    assert len(a) > 5
    for f in range(20):
        regions = []
        for t in a:
            if t.start <= f < t.start + t.length:
                cx, cy, s, ang = t.at(f)
                assert br.SIZE_BUCKETS[0][0] - 1e-6 <= s <= br.SIZE_BUCKETS[-1][1] + 1e-6
                ex, ey = t.half_extent(s, ang)
                assert ex <= cx <= 640 - ex and ey <= cy <= 360 - ey
                regions.append((cx - ex, cy - ey, cx + ex, cy + ey))
        for i, r in enumerate(regions):
            for o in regions[:i]:
                assert not (r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3])


def test_composite_ground_truth_and_occlusion():
    faces = [br.face_patch(_synthetic_lfw(200)), br.face_patch(_synthetic_lfw(220))]
    bg = [_frame(180, 240, 60 + i) for i in range(4)]
    t1 = br.FaceTrack(face=0, start=0, length=3, size0=40, size1=44, c0=(60.0, 60.0), vel=(2.0, 0.0), tags=["frontal"])
    t2 = br.FaceTrack(face=1, start=2, length=1, size0=50, size1=50, c0=(170.0, 110.0), vel=(0.0, 0.0),
                      occlude=("bottom", 0.4), tags=["occluded"])
    frames, gts = br.composite_segment(bg, [t1, t2], faces, seed=0)
    assert [len(g) for g in gts] == [1, 1, 2, 0]
    assert all(f.max() <= br.CLIP_MAX for f in frames)
    g = gts[1][0]
    assert g.duration == 3 and g.box[0] + g.box[2] == pytest.approx(2 * 62.0)
    occ = gts[2][1]
    assert occ.box[3] - occ.box[1] == pytest.approx(0.6 * 50)  # the visible top 60% of the face
    assert occ.size == 50 and br.size_bucket(occ.size) == "32-64"
    # The occluder (background from elsewhere: level 62) hides the bottom of the face.
    x = 170
    assert frames[2][int(occ.box[3]) + 3, x, 0] < 100 and frames[2][int(occ.box[1]) + 3, x, 0] > 150


def test_buckets():
    assert br.size_bucket(12) == "12-16" and br.size_bucket(19.9) == "16-20" and br.size_bucket(200) == "128-200"
    assert br.size_bucket(11.9) is None
    assert [br.duration_bucket(n) for n in (1, 2, 3, 5, 6, 10, 11, 30)] == ["1", "2", "3-5", "3-5", "6-10", "6-10", ">10", ">10"]


def test_run_composites_scores_a_perfect_and_a_blind_tool():
    """End to end: composites, then anonface drawing exactly the true boxes (recall 1), or nothing (0)."""
    from anonface import Anonymizer

    faces = [br.face_patch(_synthetic_lfw(200 + 5 * i)) for i in range(3)]
    bg = [_frame(240, 320, 70) for _ in range(8)]
    tracks = br.make_tracks(np.random.default_rng(3), 8, 320, 240, n_faces=3, density=3)
    frames, gts = br.composite_segment(bg, tracks, faces, seed=1)
    n = sum(len(g) for g in gts)
    assert n >= 8

    class Perfect:
        def masks(self, fr):
            boxes = [np.array([[*g.box, 1.0] for g in gt]).reshape(-1, 5) for gt in gts]
            anon = Anonymizer(method="solid", strength=br.FILL, device="cpu", boxes=boxes)
            out = anon(np.stack(fr))
            for i, o in zip(fr, out):
                yield br.anonymized_mask_fill(i, np.asarray(o))

    class Blind:
        def masks(self, fr):
            for f in fr:
                yield np.zeros(f.shape[:2], bool)

    ignore = [[np.zeros((0, 5))] * len(frames)]
    rec, fp = br.run_composites(Perfect(), [(frames, gts)], ignore)
    s = br.summarise(rec, fp)
    assert s["faces"] == n and s["recall"] == 1.0
    assert s["fp_spurious"] == 0.0 and 0 < s["fp_outside_boxes"] < 0.5  # only the 1.3 margin around faces
    rec, fp = br.run_composites(Blind(), [(frames, gts)], ignore)
    s = br.summarise(rec, fp)
    assert s["recall"] == 0.0 and s["fp_outside_boxes"] == 0.0


def test_every_benchmark_row_builds_an_anonymizer():
    """The rows of bench_recall and bench_video are flat dicts mixing Anonymizer arguments and
    detector options: each must build the Anonymizer it names (a signature change broke them once
    without any test noticing)."""
    sys.path.insert(0, str(_PATH.parent))
    try:
        from _common import anonymizer_kwargs

        vspec = importlib.util.spec_from_file_location("bench_video", _PATH.parent / "bench_video.py")
        bv = importlib.util.module_from_spec(vspec)
        vspec.loader.exec_module(bv)
    finally:
        sys.path.remove(str(_PATH.parent))
    from anonface import Anonymizer

    rows = {**{f"recall:{k}": v for k, v in br.row_configs().items() if v is not None},
            **{f"video:{k}": v for k, v in bv.CONFIGS.items()}}
    assert len(rows) >= 8
    for name, cfg in rows.items():
        kwargs = anonymizer_kwargs(cfg)
        anon = Anonymizer(method="solid", strength=0.0, device="cpu", **kwargs)
        options = kwargs.get("detector_options", {})
        for key in ("threshold", "precision", "backend"):
            if key in options:
                assert getattr(anon.detector, key) == options[key], (name, key)
        if "detect_every" in cfg:
            assert anon.detect_every == cfg["detect_every"], name


@pytest.mark.parametrize("bad", ["abc", "nan", "0", "-0.1", "1.5", "0.05,inf"])
def test_thresholds_option_refuses_what_is_not_a_score(bad: str, capsys: pytest.CaptureFixture) -> None:
    """--thresholds is checked before anything is read (also without the shared data)."""
    with pytest.raises(SystemExit) as exc:
        br.main(["--thresholds", bad])
    assert exc.value.code == 2 and "--thresholds" in capsys.readouterr().err


def test_out_and_plot_on_one_path_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        br.main(["--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.json")])
    assert exc.value.code == 2 and "same file" in capsys.readouterr().err
