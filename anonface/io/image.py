"""Still images (jpg, png, ...) read as and written from RGB ``[H, W, 3]`` uint8 arrays.

Metadata (EXIF, GPS) is not copied to the output: it can identify people too.
"""

from __future__ import annotations

import os

import numpy as np

from anonface.io.video import MediaError, atomic_output

__all__ = ["read_image", "write_image", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "media_kind"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
     ".mts", ".m2ts", ".3gp", ".ogv", ".gif"}
)


def media_kind(path: str) -> str:
    """``"image"``, ``"video"`` or ``"unknown"`` from the file extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"


def read_image(path: str) -> np.ndarray:
    """Read an image as RGB ``[H, W, 3]`` uint8 (grayscale is expanded, alpha dropped).

    Raises:
        FileNotFoundError: no such file.
        MediaError: not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MediaError(f"cannot read {path} as an image: {exc}") from exc


def write_image(path: str, image: np.ndarray, *, inputs: tuple[str, ...] = (), quality: int = 95) -> None:
    """Write RGB ``[H, W, 3]`` uint8 ``image`` to ``path`` (format from the extension), atomically."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8, got {arr.shape} {arr.dtype}")
    ext = os.path.splitext(path)[1].lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF", ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise ValueError(f"output image extension must be one of {sorted(IMAGE_EXTENSIONS)}, got {ext!r}")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_output(path, inputs) as tmp:
        try:
            Image.fromarray(arr).save(tmp, format=fmt, **kwargs)
        except OSError as exc:
            raise MediaError(f"cannot write {path}: {exc}") from exc
