"""Reading and writing videos (PyAV) and images, with atomic writes."""

from __future__ import annotations

from anonface.io.image import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaWalk,
    media_kind,
    read_image,
    walk_media,
    write_image,
)
from anonface.io.video import (
    BackgroundWriter,
    MediaError,
    VideoInfo,
    VideoReader,
    VideoWriter,
    atomic_output,
    encoder_settings,
    prefetch,
    probe_video,
)

__all__ = [
    "BackgroundWriter",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "MediaWalk",
    "atomic_output",
    "encoder_settings",
    "media_kind",
    "prefetch",
    "probe_video",
    "read_image",
    "walk_media",
    "write_image",
]
