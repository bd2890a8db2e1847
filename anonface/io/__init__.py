"""Reading and writing videos (PyAV) and images, with atomic writes."""

from __future__ import annotations

from anonface.io.image import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    media_kind,
    read_image,
    write_image,
)
from anonface.io.video import (
    MediaError,
    VideoInfo,
    VideoReader,
    VideoWriter,
    atomic_output,
    encoder_settings,
    probe_video,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "atomic_output",
    "encoder_settings",
    "media_kind",
    "probe_video",
    "read_image",
    "write_image",
]
