"""Video reading and writing with PyAV.

* Every frame is kept: the decoder is flushed at the end of the stream (PyAV's demuxer yields
  an empty packet per stream for this), so the last frames are not lost.
* Timestamps are kept: frames are written with their input ``pts`` in the input stream's time
  base, and the output stream's frame rate is the input's.
* Audio packets are copied unchanged (no re-encoding) when asked.
* Writes go to a temporary file in the destination folder that is renamed into place only when
  everything was written (:func:`atomic_output`): a failed run leaves no half-written file, and
  the input is never overwritten.

Frames are numpy ``[H, W, 3]`` uint8 RGB.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from anonface.io.files import MediaError, atomic_output

__all__ = [
    "MediaError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "BackgroundWriter",
    "atomic_output",
    "encoder_settings",
    "prefetch",
    "probe_video",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video's first video stream."""

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int  # as stated by the container; 0 when unknown
    codec: str
    has_audio: bool
    audio_codec: str | None
    #: Degrees (counter-clockwise, a multiple of 90) the stored pictures are turned to be upright,
    #: from the stream's display matrix (phones record portrait video this way). ``width`` and
    #: ``height`` are those of the upright picture, which is what :class:`VideoReader` yields.
    rotation: int = 0


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise ImportError("video I/O needs PyAV: `pip install av`") from exc
    return av


def _open_input(path: str) -> Any:
    av = _av()
    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path}")
    try:
        container = av.open(path, mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot open {path} as a video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path} has no video stream")
    return container


def _display_rotation(path: str) -> int:
    """The display rotation of the first video frame of ``path``, rounded to a multiple of 90.

    Read from a separate opening of the file (the display matrix travels as frame side data),
    so the reader's own demuxing starts at the beginning. Unreadable files give 0: the reader
    itself then reports the error.
    """
    av = _av()
    try:
        with av.open(path, mode="r") as c:
            frame = next(c.decode(video=0), None)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return 0
    angle = float(getattr(frame, "rotation", 0) or 0) if frame is not None else 0.0
    quarter = round(angle / 90.0)
    if abs(angle - 90.0 * quarter) > 1.0:
        log.warning("%s: display rotation %.1f degrees is not a multiple of 90; using %d", path, angle, 90 * (quarter % 4))
    return 90 * (quarter % 4)


def _info(container: Any, rotation: int = 0) -> VideoInfo:
    v = container.streams.video[0]
    a = container.streams.audio[0] if container.streams.audio else None
    rate = v.average_rate or v.guessed_rate or v.base_rate or Fraction(25)
    w, h = int(v.codec_context.width), int(v.codec_context.height)
    if rotation % 180 == 90:
        w, h = h, w
    return VideoInfo(
        width=w,
        height=h,
        fps=Fraction(rate),
        time_base=Fraction(v.time_base) if v.time_base else Fraction(1, int(rate * 1000) or 1),
        frames=int(v.frames or 0),
        codec=str(v.codec_context.name),
        has_audio=a is not None,
        audio_codec=str(a.codec_context.name) if a is not None else None,
        rotation=rotation,
    )


def probe_video(path: str) -> VideoInfo:
    """Read a video's header facts (size, frame rate, time base, stated frame count, audio)."""
    container = _open_input(path)
    try:
        return _info(container, _display_rotation(path))
    finally:
        container.close()


class VideoReader:
    """Iterates the frames of a video file as ``(rgb [H, W, 3] uint8, pts)``.

    Args:
        path: the video file.
        audio_sink: called with each audio packet of every audio stream (for copying them to
            an output); ``None`` skips audio.
        strict: raise :class:`MediaError` when the file turns out truncated or damaged instead
            of only logging a warning: fewer video packets than the container states, packets
            the demuxer marks corrupt (a partial read at the end of an MPEG file), or a
            Matroska/WebM video track that ends before the duration its header states.
        autorotate: turn frames upright by the stream's display rotation (as the ffmpeg tool
            does), so that faces are upright for the detector and the output needs no rotation
            metadata. ``info`` then describes the upright frames.

    Raises:
        FileNotFoundError: no such file.
        MediaError: not a readable video, or corrupt/truncated data.
    """

    def __init__(
        self,
        path: str,
        *,
        audio_sink: Callable[[Any], None] | None = None,
        strict: bool = True,
        autorotate: bool = True,
    ) -> None:
        self.path = str(path)
        self._container = _open_input(self.path)
        self.info = _info(self._container, _display_rotation(self.path) if autorotate else 0)
        self.audio_sink = audio_sink
        self.strict = strict
        self.frames_read = 0
        v = self._container.streams.video[0]
        v.thread_type = "AUTO"  # frame + slice threads: decoding is not the bottleneck

    @property
    def audio_stream(self) -> Any | None:
        """The first audio stream (``None`` when there is none)."""
        s = self._container.streams.audio
        return s[0] if s else None

    @property
    def audio_streams(self) -> list[Any]:
        """Every audio stream (a second language, a commentary track...), in file order."""
        return list(self._container.streams.audio)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        av = _av()
        v = self._container.streams.video[0]
        streams = [v]
        turns = self.info.rotation // 90  # quarter turns counter-clockwise to make frames upright
        if self.audio_sink is not None:
            streams.extend(self.audio_streams)
        packets = corrupt = 0
        end: float | None = None  # seconds: where the last decoded frame ends
        try:
            for packet in self._container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None and packet.size > 0:
                        self.audio_sink(packet)  # type: ignore[misc]
                    continue
                if packet.size > 0:
                    packets += 1
                    corrupt += bool(packet.is_corrupt)
                # The final empty packet flushes the decoder's buffered frames.
                for frame in packet.decode():
                    self.frames_read += 1
                    if frame.pts is not None and frame.time_base:
                        t = float((frame.pts + max(int(frame.duration or 0), 0)) * frame.time_base)
                        end = t if end is None else max(end, t)
                    rgb = frame.to_ndarray(format="rgb24")
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                    yield rgb, frame.pts
        except av.error.FFmpegError as exc:
            raise MediaError(
                f"{self.path}: video data is corrupt after {self.frames_read} frames: {exc}"
            ) from exc
        if self.frames_read == 0:
            raise MediaError(f"{self.path}: no frame could be decoded (corrupt or empty video)")
        problem = self._damage(packets, corrupt, end)
        if problem:
            msg = f"{self.path}: {problem} (truncated or corrupt file)"
            if self.strict:
                raise MediaError(msg)
            log.warning(msg)

    def _damage(self, packets: int, corrupt: int, end: float | None) -> str | None:
        """What shows the file was cut short or damaged, after the whole video was read."""
        stated = self.info.frames
        fmt = str(getattr(self._container.format, "name", ""))
        # Packets, not frames: a valid file may hold packets that decode to no picture (the
        # placeholders of packed MPEG-4 B-frames in AVI), so only missing packets are damage.
        # AVI headers written by FFmpeg itself state one frame more than a valid mpeg4 + mp3
        # file holds, so one missing frame there is not taken as damage.
        slack_frames = 1 if fmt == "avi" else 0
        if stated and packets + slack_frames < stated and self.frames_read + slack_frames < stated:
            return f"the container states {stated} frames but only {packets} were found"
        if corrupt:
            return f"{corrupt} video packets are incomplete"
        tag = self._container.streams.video[0].metadata.get("DURATION")
        if "matroska" in fmt and tag and end is not None:
            stated_s = _parse_duration(tag)
            slack = max(0.5, 3.0 / float(self.info.fps or 25))
            if stated_s is not None and end < stated_s - slack:
                return f"the video track should last {stated_s:.2f} s but ends at {end:.2f} s"
        return None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_duration(text: str) -> float | None:
    """Seconds from Matroska's ``HH:MM:SS.fffffffff`` DURATION tag (``None`` if malformed)."""
    try:
        h, m, s = str(text).strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def encoder_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """Normalise encoder settings, accepting deface's ``--ffmpeg-config`` keys.

    Recognised keys: ``codec`` (default ``libx264``), ``pix_fmt``/``pixelformat``, ``bitrate``/
    ``bit_rate`` (bits/s or strings like ``"4M"``), ``crf``, ``preset``, ``quality`` (imageio's
    0-10 scale, mapped to libx264 crf as imageio does: ``int((1 - q / 10) * 51)``),
    ``ffmpeg_params``/``output_params`` (lists like ``["-preset", "fast"]``), ``options`` (a
    dict of encoder options) and ``fps`` (output frame rate; timestamps are then regenerated).

    Returns ``{"codec", "pix_fmt", "bit_rate", "options", "fps"}``.

    Raises:
        ValueError: an unknown key, or a value of the wrong type or out of range (``fps`` and
            the bit rate must be positive and finite, ``quality`` within 0-10, ``crf`` >= 0).
    """
    cfg = dict(config or {})
    codec = str(cfg.pop("codec", "libx264"))
    pix_fmt = cfg.pop("pix_fmt", cfg.pop("pixelformat", None))
    bit_rate = cfg.pop("bit_rate", cfg.pop("bitrate", None))
    if bit_rate is not None:
        try:
            if isinstance(bit_rate, str):
                mult = {"k": 1e3, "m": 1e6, "g": 1e9}.get(bit_rate[-1:].lower(), 1.0)
                bit_rate = float(bit_rate.rstrip("kKmMgG")) * mult
            bit_rate = _positive("bitrate", bit_rate)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"encoder setting bitrate must be a positive number of bits/s (e.g. 4000000 "
                             f"or \"4M\"), got {bit_rate!r}") from None
        bit_rate = int(bit_rate)
    raw_options = cfg.pop("options", {})
    if not isinstance(raw_options, dict):
        raise ValueError(f"encoder setting options must be an object of encoder options, got {raw_options!r}")
    options: dict[str, str] = {str(k): str(v) for k, v in raw_options.items()}
    quality = cfg.pop("quality", None)
    if quality is not None:
        q = _number("quality", quality)
        if not 0 <= q <= 10:
            raise ValueError(f"encoder setting quality must be within 0-10 (imageio's scale), got {quality!r}")
        if codec in ("libx264", "h264", "libx265", "hevc"):
            options.setdefault("crf", str(int((1 - q / 10.0) * 51)))
    for key in ("ffmpeg_params", "output_params"):
        params = list(cfg.pop(key, []) or [])
        for name, value in zip(params[0::2], params[1::2]):
            options[str(name).lstrip("-").split(":")[0]] = str(value)
    for key in ("crf", "preset", "tune", "profile", "x264-params", "threads"):
        if key in cfg:
            options[key] = str(cfg.pop(key))
    if "crf" in options and _number("crf", options["crf"]) < 0:
        raise ValueError(f"encoder setting crf must be >= 0, got {options['crf']!r}")
    fps_in = cfg.pop("fps", None)
    fps: Fraction | None = None
    if fps_in is not None:
        try:
            fps = Fraction(fps_in if isinstance(fps_in, str) else _number("fps", fps_in)).limit_denominator(100000)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            fps = None
        if fps is None or fps <= 0:
            raise ValueError('encoder setting fps must be a positive frame rate (e.g. 25 or "30000/1001"), '
                             f"got {fps_in!r}")
    for ignored in ("macro_block_size", "audio_path", "audio_codec", "format", "mode"):
        cfg.pop(ignored, None)
    if cfg:
        raise ValueError(f"unknown encoder settings {sorted(cfg)}; known: codec, pix_fmt, "
                         "bitrate, crf, preset, tune, quality, ffmpeg_params, options, fps")
    if codec in ("libx264", "h264") and "crf" not in options and bit_rate is None:
        options["crf"] = "20"
    return {
        "codec": codec,
        "pix_fmt": pix_fmt,
        "bit_rate": bit_rate,
        "options": options,
        "fps": fps,
    }


def _number(name: str, value: Any) -> float:
    """``value`` as a finite float, or a ValueError naming the encoder setting."""
    import math

    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"encoder setting {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise ValueError(f"encoder setting {name} must be a finite number, got {value!r}")
    return out


def _positive(name: str, value: Any) -> float:
    out = _number(name, value)
    if out <= 0:
        raise ValueError(f"encoder setting {name} must be positive, got {value!r}")
    return out


class VideoWriter:
    """Encodes RGB frames to a video file (H.264 by default), optionally copying audio packets.

    Args:
        path: output file (its extension picks the container format unless ``format`` is set).
        width, height: frame size.
        fps: frame rate.
        time_base: the time base of the ``pts`` passed to :meth:`write` (default ``1 / fps``).
        encoder: settings as returned by :func:`encoder_settings` (or its input).
        audio_template: an input audio stream, or a list of them, to copy packets of (see
            :meth:`mux_audio`).
        format: container format name (e.g. ``"mp4"``) when the path's extension does not say.
    """

    def __init__(
        self,
        path: str,
        *,
        width: int,
        height: int,
        fps: Fraction | float,
        time_base: Fraction | None = None,
        encoder: dict[str, Any] | None = None,
        audio_template: Any | None = None,
        format: str | None = None,
    ) -> None:
        av = _av()
        enc = encoder if encoder is not None and "options" in encoder else encoder_settings(encoder)
        self.path = str(path)
        fps = Fraction(fps).limit_denominator(100000)
        self._regen_pts = enc.get("fps") is not None
        if self._regen_pts:
            fps = enc["fps"]
            time_base = None
        self.fps = fps
        self.time_base = Fraction(time_base) if time_base else 1 / fps
        try:
            self._container = av.open(self.path, mode="w", format=format)
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot create {self.path}: {exc}") from exc
        try:
            stream = self._container.add_stream(enc["codec"], rate=fps)
            pix_fmt = enc["pix_fmt"]
            if pix_fmt is None:
                pix_fmt = "yuv420p"
                if (width % 2 or height % 2) and enc["codec"] in ("libx264", "h264"):
                    # 4:2:0 needs even sizes; keep every pixel rather than cropping one off.
                    pix_fmt = "yuv444p"
            stream.width, stream.height, stream.pix_fmt = int(width), int(height), pix_fmt
            if enc["bit_rate"]:
                stream.bit_rate = int(enc["bit_rate"])
            stream.options = dict(enc["options"])
            stream.codec_context.time_base = self.time_base
            stream.time_base = self.time_base
            self._stream = stream
            templates = (
                [] if audio_template is None
                else list(audio_template) if isinstance(audio_template, (list, tuple))
                else [audio_template]
            )
            # input stream index -> output stream: every audio track is kept, in order.
            self._audio = {int(t.index): self._container.add_stream_from_template(t) for t in templates}
        except (av.error.FFmpegError, ValueError, TypeError) as exc:
            self._container.close()
            raise MediaError(f"cannot set up the encoder for {self.path}: {exc}") from exc
        self._av = av
        self.frames_written = 0
        self._last_pts: int | None = None

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Encode one ``[H, W, 3]`` uint8 RGB frame at ``pts`` (in ``time_base``; None = next)."""
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if pts is None or self._regen_pts:
            pts = self.frames_written if self._regen_pts else self._next_pts()
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject non-increasing timestamps
        vf.pts = int(pts)
        vf.time_base = self.time_base
        self._last_pts = int(pts)
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except self._av.error.FFmpegError as exc:
            raise MediaError(f"encoding {self.path} failed: {exc}") from exc
        self.frames_written += 1

    def _next_pts(self) -> int:
        if self._last_pts is None:
            return 0
        step = max(1, round(1 / (self.fps * self.time_base)))
        return self._last_pts + step

    def mux_audio(self, packet: Any) -> None:
        """Copy one audio packet (from a template stream's container) into the output."""
        out = self._audio.get(int(packet.stream.index))
        if out is None:
            return
        packet.stream = out
        self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without flushing (the file is discarded by :func:`atomic_output`)."""
        with contextlib.suppress(Exception):
            self._container.close()


_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(iterable: Any, depth: int = 8) -> Iterator[Any]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    Decoding (PyAV releases the GIL) then overlaps with detection and encoding. Exceptions
    raised by the iterable are re-raised in the caller's thread; closing the generator early
    stops the thread at its next item.
    """
    import queue
    import threading

    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(_Raised(exc))

    thread = threading.Thread(target=work, name="anonface-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundWriter:
    """Runs a :class:`VideoWriter` in its own thread so encoding overlaps with the pipeline.

    Same methods as :class:`VideoWriter` (``write``, ``mux_audio``, ``close``, ``abort``); all
    muxing happens in the writer thread, so audio packets handed over from a reader thread
    are safe. An encoder error is re-raised by the next call (or by :meth:`close`).
    """

    def __init__(self, writer: VideoWriter, depth: int = 8) -> None:
        import queue
        import threading

        self.writer = writer
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="anonface-encode", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # drain so producers never block
            kind, a, b = item
            try:
                if kind == "v":
                    self.writer.write(a, b)
                else:
                    self.writer.mux_audio(a)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        self._check()
        self._q.put(("v", frame, pts))

    def mux_audio(self, packet: Any) -> None:
        self._q.put(("a", packet, None))

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

    def close(self) -> None:
        self._q.put(_END)
        self._thread.join()
        self._check()
        self.writer.close()

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._q.put(_END)
        self._thread.join(timeout=10)
        self.writer.abort()
