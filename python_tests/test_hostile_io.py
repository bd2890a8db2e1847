"""Hostile input and output paths (issue 10): every case fails closed, loses no file, and ends
with one clear line and a non-zero exit instead of a traceback.

All media are made here (PyAV, Pillow, numpy); nothing is committed. Detection is not the point
of most tests, so they use ``--method solid``; the EXIF test runs CenterFace on one small photo.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")
Image = pytest.importorskip("PIL.Image")

from anonface import cli  # noqa: E402
from anonface.files import anonymize_video  # noqa: E402
from anonface.io import MediaError, read_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- media makers


def _pattern(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A picture with no symmetry (so any flip or turn shows), in large flat blocks (so JPEG
    keeps it close)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(cells, 16, 0), 16, 1)[:h, :w]
    img[:16, :16] = (255, 0, 0)  # a marked corner
    return np.ascontiguousarray(img)


def _video(path: Path, n: int = 12, size: tuple[int, int] = (64, 48), codec: str = "libx264",
           audio_tracks: int = 0, fmt: str | None = None) -> None:
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            v.options = {"preset": "ultrafast"}
        tracks = []
        for k in range(audio_tracks):
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo"
            tracks.append((a, 300 + 200 * k))
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(_pattern(h, w, i), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, 25)
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        seconds = n / 25
        for a, hz in tracks:
            t = np.arange(int(48000 * seconds)) / 48000.0
            tone = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            samples = np.stack([tone, tone])
            for s in range(0, samples.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, s:s + 1024]), format="fltp",
                                                layout="stereo")
                af.sample_rate, af.pts = 48000, s
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _run(*argv: str) -> int:
    return cli.main([*argv])


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err, err


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


# --------------------------------------------------------------------------- EXIF orientation

#: EXIF orientation -> how the upright picture is stored (what the camera wrote).
_STORED = {
    3: lambda up: np.rot90(up, 2),  # upside down
    6: lambda up: np.rot90(up, 1),  # viewers turn it 90 degrees clockwise
    8: lambda up: np.rot90(up, -1),  # viewers turn it 90 degrees counter-clockwise
    2: lambda up: up[:, ::-1],  # mirrored
}


def _save_with_orientation(path: Path, stored: np.ndarray, orientation: int, **kw) -> None:
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(str(path), exif=exif, **kw)


@pytest.mark.parametrize("orientation", sorted(_STORED))
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_exif_orientation_is_applied_when_reading(tmp_path: Path, orientation: int, ext: str) -> None:
    up = _pattern(48, 80)
    path = tmp_path / f"o{orientation}{ext}"
    _save_with_orientation(path, _STORED[orientation](up), orientation, **({"quality": 100} if ext == ".jpg" else {}))
    got = read_image(str(path))
    assert got.shape == up.shape
    err = np.abs(got.astype(int) - up.astype(int)).mean()
    assert err < (4 if ext == ".jpg" else 0.01), err


def test_upside_down_jpeg_is_detected_and_written_upright(tmp_path: Path) -> None:
    """Orientation=3 with a face: covered as if stored upright, written upright, no tag."""
    data = pytest.importorskip("skimage.data")
    pytest.importorskip("onnxruntime")
    up = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256x256, face ~50 px
    src = tmp_path / "flipped.jpg"
    _save_with_orientation(src, np.rot90(up, 2), 3, quality=95)
    out = tmp_path / "out.png"
    assert _run(str(src), "-o", str(out), "--method", "solid", "--device", "cpu", "-q") == 0
    with Image.open(out) as im:
        assert im.getexif().get(0x0112) in (None, 1)
        res = np.asarray(im.convert("RGB"))
    assert res.shape == up.shape
    # The face (eyes near y 50-60, x 100-130 in the upright half-size photo) is black...
    assert (res[45:65, 100:130] < 10).all()
    # ...and the picture is upright: the bottom rows match the upright original, not the stored one.
    assert np.abs(res[200:].astype(int) - up[200:].astype(int)).mean() < 6


# --------------------------------------------------------------------------- pixel formats


def test_16bit_grey_png_keeps_its_tones(tmp_path: Path) -> None:
    grey16 = (np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) * 10).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grey16).save(str(path))
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # a 16-bit grey image, as the test means
    got = read_image(str(path))
    expect = np.round(grey16 / 257.0)
    assert got.dtype == np.uint8 and got.shape == (64, 96, 3)
    assert np.abs(got[..., 0].astype(int) - expect).max() <= 1
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    out = tmp_path / "out.png"
    assert _run(str(path), "-o", str(out), "--method", "solid", "-q") == 0
    res = np.asarray(Image.open(out).convert("RGB"))
    assert (res == 255).mean() < 0.01  # not a white silhouette: the tones are kept
    assert abs(res.mean() - expect.mean()) < 2


def test_float_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)).save(str(path))
    with pytest.raises(MediaError, match="floating-point"):
        read_image(str(path))


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif"])
def test_animated_or_multipage_image_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, ext: str) -> None:
    frames = [Image.fromarray(_pattern(48, 64, i)) for i in range(3)]
    path = tmp_path / f"anim{ext}"
    frames[0].save(str(path), save_all=True, append_images=frames[1:], duration=100)
    with Image.open(path) as im:
        assert im.n_frames == 3
    assert _run(str(path), "--method", "solid", "-q") == 1
    err = capsys.readouterr().err
    assert "animated" in err and "3 pictures" in err
    _no_traceback(err)
    assert not (tmp_path / f"anim_anonymized{ext}").exists()


def test_animated_gif_keeps_every_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(_pattern(48, 64, i)) for i in range(4)]
    path = tmp_path / "anim.gif"
    frames[0].save(str(path), save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert _run(str(path), "--method", "solid", "-q") == 0
    assert len(_frames(tmp_path / "anim_anonymized.mp4")) == 4


def _bomb_png(path: Path, w: int = 20000, h: int = 20000) -> None:
    """A tiny PNG file whose header claims ``w x h`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def test_decompression_bomb_fails_that_file_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _bomb_png(folder / "a_bomb.png")
    Image.fromarray(_pattern(48, 64)).save(str(folder / "b_fine.png"))
    with pytest.raises(MediaError, match="decompression bomb"):
        read_image(str(folder / "a_bomb.png"))
    assert _run(str(folder), "-o", str(tmp_path / "out"), "--method", "solid", "-q") == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "a_bomb.png" in err and "1 of 2 inputs failed" in err
    assert (tmp_path / "out" / "b_fine_anonymized.png").exists()  # the later file was processed
    assert not (tmp_path / "out" / "a_bomb_anonymized.png").exists()


# --------------------------------------------------------------------------- outputs


def test_outputs_that_collide_are_refused_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        Image.fromarray(_pattern(48, 64)).save(str(tmp_path / d / "x.png"))
    out = tmp_path / "out"
    assert _run(str(tmp_path / "d1" / "x.png"), str(tmp_path / "d2" / "x.png"), "-o", f"{out}/",
                "--method", "solid", "-q") == 2
    err = capsys.readouterr().err
    assert "both be written" in err and "x_anonymized.png" in err
    assert not out.exists() or not any(out.iterdir())
    # The same file given twice collides too, and so do two folders with equal file names...
    assert _run(str(tmp_path / "d1" / "x.png"), str(tmp_path / "d1" / "x.png"), "-o", str(out), "-q") == 2
    assert _run(str(tmp_path / "d1"), str(tmp_path / "d2"), "-o", str(out), "--method", "solid", "-q") == 2
    # ...but the subfolders of a folder input are kept under -o, so its files do not collide.
    assert _run(str(tmp_path), "-o", str(out), "--method", "solid", "-q") == 0
    assert (out / "d1" / "x_anonymized.png").exists() and (out / "d2" / "x_anonymized.png").exists()


def test_an_output_is_never_an_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = tmp_path / "a.png", tmp_path / "a_anonymized.png"
    Image.fromarray(_pattern(48, 64, 1)).save(str(a))
    Image.fromarray(_pattern(48, 64, 2)).save(str(b))
    before = b.read_bytes()
    assert _run(str(a), str(b), "--method", "solid", "-q") == 2
    assert "overwrite an input" in capsys.readouterr().err
    assert b.read_bytes() == before
    # Through a symlink and a hard link to the input.
    (tmp_path / "link.png").symlink_to(a)
    os.link(a, tmp_path / "hard.png")
    before_a = a.read_bytes()
    for other in ("link.png", "hard.png"):
        assert _run(str(a), "-o", str(tmp_path / other), "--method", "solid", "-q") == 2
    assert a.read_bytes() == before_a
    _no_traceback(capsys.readouterr().err)


def test_folder_output_with_trailing_slash_is_created(tmp_path: Path) -> None:
    src = tmp_path / "v.mp4"
    _video(src, n=4)
    out = tmp_path / "nodir"
    assert _run(str(src), "-o", f"{out}{os.sep}", "--method", "solid", "-q") == 0
    assert out.is_dir()
    assert len(_frames(out / "v_anonymized.mp4")) == 4


def test_output_mode_follows_the_umask(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(_pattern(48, 64)).save(str(src))
    old = os.umask(0o022)
    try:
        assert _run(str(src), "--method", "solid", "-q") == 0
        assert (tmp_path / "a_anonymized.png").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert _run(str(src), "-o", str(tmp_path / "private.png"), "--method", "solid", "-q") == 0
        assert (tmp_path / "private.png").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_folder_runs_recurse_and_skip_non_media_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_pattern(48, 64)).save(str(folder / "top.png"))
    Image.fromarray(_pattern(48, 64)).save(str(folder / "sub" / "deep.png"))
    (folder / "notes.txt").write_text("not a video")
    (folder / "top_anonymized.png").write_bytes(b"an earlier result")
    assert _run(str(folder), "--method", "solid", "-q") == 0
    err = capsys.readouterr().err
    assert (folder / "sub" / "deep_anonymized.png").exists()  # beside its input
    assert "notes.txt" in err and "not images or videos" in err and "error" not in err
    assert "earlier results" in err
    assert not (folder / "notes_anonymized.mp4").exists()


@pytest.mark.parametrize("ext,codec", [(".webm", "libvpx-vp9"), (".ogv", "libvpx")])
def test_video_whose_container_cannot_hold_h264_gets_mp4(tmp_path: Path, ext: str, codec: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this FFmpeg")
    src = tmp_path / f"v{ext}"
    _video(src, n=4, codec=codec)
    assert _run(str(src), "--method", "solid", "-q") == 0
    assert len(_frames(tmp_path / "v_anonymized.mp4")) == 4


def test_every_audio_track_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "two.mkv"
    _video(src, n=25, audio_tracks=2)
    with av.open(str(src)) as c:
        assert len(c.streams.audio) == 2
    out = tmp_path / "out.mkv"
    assert _run(str(src), "-o", str(out), "-k", "--method", "solid", "-q") == 0
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 2


@pytest.mark.parametrize("ext,codec", [(".mkv", "libx264"), (".mpg", "mpeg2video"), (".avi", "libx264")])
def test_truncated_video_fails_loudly(tmp_path: Path, capsys: pytest.CaptureFixture, ext: str, codec: str) -> None:
    whole = tmp_path / f"whole{ext}"
    _video(whole, n=60, size=(128, 96), codec=codec)
    cut = tmp_path / f"cut{ext}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert _run(str(whole), "--method", "solid", "-q") == 0  # the whole file is fine
    assert _run(str(cut), "--method", "solid", "-q") == 1
    err = capsys.readouterr().err
    assert "truncated" in err
    _no_traceback(err)
    assert not (tmp_path / f"cut_anonymized{ext}").exists()
    with pytest.raises(MediaError, match="truncated"):
        anonymize_video(str(cut), str(tmp_path / "api.mp4"), method="solid")
    assert not (tmp_path / "api.mp4").exists() and not _parts(tmp_path)


def test_valid_mpeg4_mp3_avi_is_not_called_truncated(tmp_path: Path) -> None:
    """FFmpeg's AVI muxer states 32 frames for these 31 (mpeg4 video, mp3 audio)."""
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("no mp3 encoder in this FFmpeg")
    src = tmp_path / "m.avi"
    with av.open(str(src), "w") as c:
        v = c.add_stream("mpeg4", rate=30)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("libmp3lame", rate=44100)
        a.layout = "stereo"
        for i in range(31):
            vf = av.VideoFrame.from_ndarray(_pattern(48, 64, i), format="rgb24")
            vf.pts = i
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        dtype = {"s16p": np.int16, "s32p": np.int32, "fltp": np.float32}[a.format.name]
        for i in range(40):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1152), dtype), format=a.format.name, layout="stereo")
            af.sample_rate, af.pts = 44100, i * 1152
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    out = tmp_path / "out.avi"
    assert _run(str(src), "-o", str(out), "-k", "--method", "solid", "-q") == 0
    assert len(_frames(out)) == 31


# --------------------------------------------------------------------------- crashes -> one line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(_pattern(48, 64)).save(str(src))
    assert _run(str(src), "--device", "cuda", "-q") == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "--device cpu" in err
    _no_traceback(err)
    assert not (tmp_path / "a_anonymized.png").exists()


@pytest.mark.parametrize("config", ['{"fps": 0}', '{"fps": -5}', '{"fps": "nan"}', '{"bitrate": "lots"}',
                                    '{"quality": 99}', '{"crf": -1}'])
def test_bad_encoder_settings(tmp_path: Path, capsys: pytest.CaptureFixture, config: str) -> None:
    src = tmp_path / "v.mp4"
    _video(src, n=3)
    assert _run(str(src), "--ffmpeg-config", config, "--method", "solid", "-q") == 2
    err = capsys.readouterr().err
    assert "encoder setting" in err
    _no_traceback(err)
    assert not _parts(tmp_path) and not (tmp_path / "v_anonymized.mp4").exists()


@pytest.mark.parametrize("n", ["0", "-3"])
def test_max_frames_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, n: str) -> None:
    src = tmp_path / "v.mp4"
    _video(src, n=3)
    assert _run(str(src), "--max-frames", n, "--method", "solid", "-q") == 2
    assert "--max-frames" in capsys.readouterr().err
    assert not (tmp_path / "v_anonymized.mp4").exists()
    with pytest.raises(ValueError, match="max_frames"):
        anonymize_video(str(src), str(tmp_path / "api.mp4"), method="solid", max_frames=0)
    assert not (tmp_path / "api.mp4").exists()


def _start_slow_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    src = tmp_path / "long.mp4"
    _video(src, n=1600, size=(160, 120))
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "anonface", str(src), "-o", str(out / "long_out.mp4"), "--method", "solid",
         "--device", "cpu", "-q"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
        # Ctrl-C as a terminal delivers it: a test run started in the background (nohup, `&`) ignores
        # SIGINT, its children inherit that, and Python then never raises KeyboardInterrupt (exit 0)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not _parts(out):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no partial output appeared (rc {proc.returncode}): {proc.communicate()[1]}")
        time.sleep(0.05)
    time.sleep(0.5)  # well into the stream loop
    return proc, out


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_remove_partial_output(tmp_path: Path, sig: int, code: int) -> None:
    proc, out = _start_slow_run(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    _no_traceback(err)
    assert len(err.strip().splitlines()) == 1, err
    assert not list(out.iterdir())  # neither the hidden .part file nor a short output


# --------------------------------------------------------------------------- learned checkpoints


class _Evil:
    def __reduce__(self):
        return (print, ("PWNED by a checkpoint",))


def _checkpoint(path: Path, payload: object) -> Path:
    torch.save(payload, str(path))
    return path


@pytest.mark.parametrize("kind", ["code", "list_config", "str_state", "train_ckpt_shape", "not_a_zip"])
def test_bad_learned_checkpoints_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str) -> None:
    from anonface.models.anonymizer import CHECKPOINT_FORMAT

    ckpt = tmp_path / f"{kind}.pt"
    if kind == "code":
        _checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "config": {}, "state_dict": {}, "x": _Evil()})
    elif kind == "list_config":
        _checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "config": [1, 2], "state_dict": {}})
    elif kind == "str_state":
        _checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "config": {}, "state_dict": {"w": "not a tensor"}})
    elif kind == "train_ckpt_shape":
        _checkpoint(ckpt, {"format": "anonface.train/1", "config": [], "models": 3})
    else:
        ckpt.write_bytes(b"garbage" * 10)
    src = tmp_path / "a.png"
    Image.fromarray(_pattern(48, 64)).save(str(src))
    assert _run(str(src), "--method", "learned", "--checkpoint", str(ckpt), "--device", "cpu", "-q") == 2
    captured = capsys.readouterr()
    _no_traceback(captured.err)
    assert "weights_only" not in captured.err and "PWNED" not in captured.out + captured.err
    assert "checkpoint" in captured.err and str(ckpt) in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert not (tmp_path / "a_anonymized.png").exists()


def test_preview_with_an_unreachable_display_is_ignored_not_fatal(tmp_path: Path) -> None:
    """-p with DISPLAY naming a display that does not answer: OpenCV used to abort the process
    (exit 134) and leave the unfinished output's temporary file. Now the preview is skipped with a
    note and the file is anonymized."""
    img = np.random.default_rng().integers(0, 256, (48, 64, 3), dtype=np.uint8)
    src = tmp_path / "a.png"
    from anonface.io import write_image

    write_image(str(src), img)
    env = {**os.environ, "DISPLAY": ":987", "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    res = subprocess.run([sys.executable, "-m", "anonface", str(src), "-p", "--method", "solid", "-q"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "--preview ignored" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "a_anonymized.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
