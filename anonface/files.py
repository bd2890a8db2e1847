"""Files in, files out: anonymize an image or a video file with an :class:`~anonface.Anonymizer`.

The layer above :mod:`anonface.pipeline` (which works on frames): reading, writing and their
threads (:mod:`anonface.io`), the atomic output, the per-run statistics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from anonface.pipeline import Anonymizer, RunStats
from anonface.render import MODEL_METHODS

__all__ = ["anonymize_image", "anonymize_video"]

log = logging.getLogger(__name__)


def _anonymizer(anonymizer: Anonymizer | None, kwargs: dict[str, Any]) -> Anonymizer:
    """``anonymizer``, or one built from ``kwargs``; both at once would drop the options unseen."""
    if anonymizer is None:
        return Anonymizer(**kwargs)
    if kwargs:
        raise ValueError(f"options for a new Anonymizer ({', '.join(sorted(kwargs))}) were given with a "
                         "configured anonymizer, which keeps its own: give one or the other")
    return anonymizer


def anonymize_image(
    src: str,
    dst: str,
    *,
    anonymizer: Anonymizer | None = None,
    on_frame: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
    **kwargs: Any,
) -> RunStats:
    """Anonymize one image file into ``dst`` (written atomically; metadata is not copied).

    ``anonymizer`` is a configured :class:`Anonymizer`; else one is built from ``**kwargs``
    (``method``, ``detector_options``, ``device``...: see :class:`Anonymizer`).
    """
    from anonface.io.image import read_image, write_image

    anon = _anonymizer(anonymizer, kwargs)
    anon.reset()
    t0 = time.perf_counter()
    img = read_image(src)
    stats = RunStats(boxes=[])
    out = np.asarray(list(anon.stream([img], stats))[0])
    if on_frame is not None:
        assert stats.boxes is not None
        replaced = on_frame(out, stats.boxes[0])
        out = out if replaced is None else replaced
    write_image(dst, out, inputs=(src,))
    stats.seconds = time.perf_counter() - t0
    return stats


@contextlib.contextmanager
def _kernel_threads(anon: Anonymizer) -> Iterator[None]:
    """One torch thread for the face kernels while a video is processed on the CPU.

    The decoder and the encoder run beside the pipeline and keep the cores busy; splitting a
    frame's few face boxes across threads then only adds waiting (measured on 2 cores while
    another job held one of them: ~8% more time per frame with 2 threads). The learned and composite
    models keep torch's threads.
    """
    if anon.device.type != "cpu" or anon.method in MODEL_METHODS or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def anonymize_video(
    src: str,
    dst: str,
    *,
    anonymizer: Anonymizer | None = None,
    keep_audio: bool = False,
    encoder: dict[str, Any] | None = None,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
    record_boxes: bool = False,
    on_frame: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
    **kwargs: Any,
) -> RunStats:
    """Anonymize a video file into ``dst`` (H.264 by default), keeping every frame's timestamp.

    Args:
        src: input video.
        dst: output path; written to a temporary file renamed into place at the end.
        anonymizer: a configured :class:`Anonymizer` (else one is built from ``**kwargs``:
            ``method``, ``detector_options``, ``device``...; see :class:`Anonymizer`).
        keep_audio: copy the packets of every audio stream unchanged.
        encoder: encoder settings (see :func:`anonface.io.video.encoder_settings`).
        max_frames: stop after this many frames (for previews and tests); at least 1.
        progress: called with the number of frames written so far.
        record_boxes: keep each frame's face boxes in the returned stats.
        on_frame: called with each anonymized frame and its face boxes ``[K, 5]`` before it is
            written; may return a replacement frame (e.g. with scores drawn) or None.

    Returns:
        :class:`RunStats` (frames, seconds, fps, faces, frames masked because of errors).

    Raises:
        FileNotFoundError, anonface.io.MediaError: unreadable input or unwritable output; a
            truncated or damaged input (nothing is written then).
        ValueError: ``max_frames`` below 1, bad encoder settings, or Anonymizer options given with
            ``anonymizer``.
        AnonymizationError: a frame failed and ``on_error="stop"``.
    """
    from anonface.io.video import (
        BackgroundWriter,
        VideoReader,
        VideoWriter,
        atomic_output,
        encoder_settings,
        prefetch,
    )

    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer))
                                   or max_frames < 1):
        raise ValueError(f"max_frames must be a positive whole number of frames (or None for all), got {max_frames!r}")
    anon = _anonymizer(anonymizer, kwargs)
    anon.reset()
    enc = encoder_settings(encoder)
    stats = RunStats(boxes=[] if (record_boxes or on_frame is not None) else None)
    t0 = time.perf_counter()
    with atomic_output(dst, (src,)) as tmp:
        writer: BackgroundWriter | None = None
        decoded: Iterator[tuple[np.ndarray, int | None]] | None = None
        # Decoding, the pipeline and encoding run in three threads (PyAV and cv2 release the
        # GIL); audio packets go through the writer's thread, which does all the muxing.
        reader = VideoReader(src, audio_sink=(lambda p: writer.mux_audio(p)) if keep_audio else None)  # type: ignore[union-attr]
        try:
            info = reader.info
            fmt = None if os.path.splitext(dst)[1] else "mp4"
            writer = BackgroundWriter(VideoWriter(
                tmp, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                encoder=enc, audio_template=reader.audio_streams if keep_audio else None, format=fmt,
            ))
            pts_queue: deque[int | None] = deque()
            decoded = prefetch(reader)

            def frames() -> Iterator[np.ndarray]:
                for n, (frame, pts) in enumerate(decoded):
                    if max_frames is not None and n >= max_frames:
                        break
                    pts_queue.append(pts)
                    yield frame

            with _kernel_threads(anon):
                for out in anon.stream(frames(), stats, consume=True):
                    out = np.asarray(out)
                    if on_frame is not None:
                        assert stats.boxes is not None
                        replaced = on_frame(out, stats.boxes[stats.frames - 1])
                        out = out if replaced is None else replaced
                    writer.write(out, pts_queue.popleft())
                    if progress is not None:
                        progress(stats.frames)
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            if decoded is not None:
                decoded.close()  # stops the decoding thread before its container is closed
            reader.close()
    stats.seconds = time.perf_counter() - t0
    log.info("%s -> %s: %d frames in %.2f s (%.1f fps)", src, dst, stats.frames, stats.seconds, stats.fps)
    return stats
