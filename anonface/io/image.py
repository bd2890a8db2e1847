"""Still images (jpg, png, ...) read as and written from RGB ``[H, W, 3]`` uint8 arrays.

Images are read upright (the EXIF orientation is applied) and written without metadata (EXIF,
GPS, orientation): metadata can identify people too, and the written pixels are already upright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anonface.io.files import MediaError, atomic_output

__all__ = ["read_image", "write_image", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "media_kind", "MediaWalk",
           "walk_media"]

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


@dataclass
class MediaWalk:
    """What :func:`walk_media` found below a folder."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (path, folder relative to the root)
    not_media: list[str] = field(default_factory=list)  # neither image nor video by the extension
    links: list[str] = field(default_factory=list)  # symlinked folders, not followed


def walk_media(folder: str, exclude: str | None = None) -> MediaWalk:
    """Every image and video below ``folder``, recursively and in sorted order.

    Hidden files and folders and the folder ``exclude`` (e.g. the output folder) are left out
    silently; files of another kind and symlinked folders are left out and listed, so callers
    can say so.
    """
    out = MediaWalk()
    skip = os.path.realpath(exclude) if exclude is not None else None
    for root, dirs, files in os.walk(folder):
        keep = []
        for d in sorted(dirs):
            full = os.path.join(root, d)
            if d.startswith(".") or (skip is not None and os.path.realpath(full) == skip):
                continue
            if os.path.islink(full):
                out.links.append(full)
                continue
            keep.append(d)
        dirs[:] = keep
        rel = os.path.relpath(root, folder)
        rel = "" if rel == "." else rel
        for f in sorted(files):
            full = os.path.join(root, f)
            if f.startswith(".") or not os.path.isfile(full):
                continue
            if media_kind(full) == "unknown":
                out.not_media.append(full)
            else:
                out.files.append((full, rel))
    return out


def _to_rgb8(im: Any, path: str) -> np.ndarray:
    """``im`` (any Pillow mode) as RGB ``[H, W, 3]`` uint8, keeping the full tonal range.

    Pillow's own ``convert("RGB")`` clips 16-bit grey ("I;16", or "I" as some versions open
    16-bit PNGs) at 255, which turns every picture into a white silhouette: those are scaled
    from 0-65535 to 0-255 here instead. Float images ("F") and 32-bit integers outside 0-65535
    have no agreed range and are refused.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(im)
        if grey.ndim != 2:
            raise MediaError(f"cannot read {path}: unexpected {mode} image layout {grey.shape}")
        grey = grey.astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise MediaError(f"cannot read {path}: 32-bit integer pixels outside 0-65535 have no known "
                             "range; convert the image to 8 or 16 bits first")
        grey8 = ((grey * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if mode == "F" or mode.startswith(("I;32", "F;")):
        raise MediaError(f"cannot read {path}: floating-point pixels ({mode}) have no known range; "
                         "convert the image to 8 or 16 bits first")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: str) -> np.ndarray:
    """Read an image as upright RGB ``[H, W, 3]`` uint8 (grayscale is expanded, alpha dropped).

    The EXIF orientation is applied (a photo stored upside-down with ``Orientation=3`` is
    returned as viewers show it), so faces are upright for the detector; the array carries no
    orientation any more, and :func:`write_image` writes no metadata. 16-bit grey is scaled to
    8 bits (not clipped).

    Raises:
        FileNotFoundError: no such file.
        MediaError: not a readable image; an animated or multi-page image (only one picture
            would be anonymized: convert it to a video first); more pixels than Pillow's
            decompression-bomb limit; pixels without a known range (float).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.exists(path):
        raise FileNotFoundError(f"input not found: {path}")
    try:
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                raise MediaError(
                    f"{path} is animated or has several pages ({frames} pictures); anonface would "
                    "anonymize only the first, so it refuses: convert it to a video first "
                    f"(e.g. ffmpeg -i {os.path.basename(path)} frames.mp4) and anonymize that"
                )
            im.load()
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception as exc:  # noqa: BLE001 - a malformed EXIF block: refuse, not guess
                raise MediaError(f"cannot read the EXIF orientation of {path}: {exc}") from exc
            return _to_rgb8(upright if upright is not None else im, path)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"refusing {path}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
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
