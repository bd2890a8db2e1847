"""What every writer of anonface shares: the error for unreadable or unwritable media, and atomic
outputs (a temporary file renamed into place, so a result is never half-written)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["MediaError", "atomic_output"]


class MediaError(RuntimeError):
    """A file could not be read or written as a video/image (corrupt, truncated, unsupported)."""


def _umask() -> int:
    """The process umask (read without changing it where /proc tells it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str, inputs: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    The temporary file keeps ``path``'s extension (muxers pick the format from it) and is
    deleted if the block raises (``KeyboardInterrupt`` included). Refuses to overwrite any of
    ``inputs`` (the same path, or the same file through a link). The result gets the mode new
    files get (``0666`` less the umask), not the temporary file's private ``0600``.

    Raises:
        ValueError: ``path`` is one of ``inputs``.
        MediaError: the destination folder does not exist or is not writable.
    """
    path = os.path.abspath(path)
    for src in inputs:
        if os.path.exists(src) and os.path.exists(path) and os.path.samefile(src, path):
            raise ValueError(f"output {path} is the input file; refusing to overwrite the input")
        if os.path.abspath(src) == path:
            raise ValueError(f"output {path} is the input file; refusing to overwrite the input")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise MediaError(f"output folder {folder} does not exist")
    stem, ext = os.path.splitext(os.path.basename(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=folder)
    except OSError as exc:
        raise MediaError(f"cannot write to {folder}: {exc}") from exc
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); the result gets the mode any new file gets.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
