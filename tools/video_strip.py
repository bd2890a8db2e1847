"""A strip of video frames for the README: the demo clip through each method, frame by frame.

The clip is the one ``examples/demo.py`` makes from scikit-image's astronaut photo (public domain,
installed with a dependency; the research-only videos stay out of the repository): the photo pans and
zooms across a 640x360 frame, encoded with libx264 and decoded again, so the frames carry real
compression noise. Each method runs through ``anonface.Anonymizer`` over the whole clip as a stream
(CenterFace, tracking, and for ``learned`` its steadying along the stream), as ``anonface run`` does;
the smooth mosaic (the learned anonymizer's 12x12 input) runs as the evaluation runs it. Rows are
methods, columns frames; each panel is the face's surroundings, enlarged.

Run: ``.venv/bin/python tools/video_strip.py [OUT.jpg]`` (default ``docs/video_strip.jpg``).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from method_sheet import face_window, labelled_panel, write_jpeg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["none", "pixelate", "smooth-mosaic", "learned", "composite"]
FRAMES = [0, 8, 16, 24, 32, 40, 49]
PANEL = 160


def clip_frames() -> list[np.ndarray]:
    import av
    from skimage import data

    spec = importlib.util.spec_from_file_location("anonface_demo", ROOT / "examples" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        demo.make_clip(np.ascontiguousarray(data.astronaut()), path)
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def run(method: str, frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The anonymized frames and the face boxes found on each."""
    from anonface import Anonymizer
    from anonface.eval.methods import build_pipeline, parse_methods
    from anonface.pipeline import RunStats

    if method == "smooth-mosaic":
        anon = build_pipeline(parse_methods(["smooth-mosaic"])[0], device="cpu")
    else:
        anon = Anonymizer(method, device="cpu")
    stats = RunStats(boxes=[])
    out = [np.asarray(f) for f in anon.stream([f.copy() for f in frames], stats)]
    return out, stats.boxes


def strip() -> np.ndarray:
    frames = clip_frames()
    _, boxes = run("none", frames)
    rows = []
    for method in METHODS:
        out, _ = run(method, frames)
        panels = []
        for t in FRAMES:
            b = boxes[t]
            if len(b) == 0:
                raise RuntimeError(f"no face found on frame {t} of the demo clip")
            rows_, cols = face_window(b[np.argmax(b[:, 4])], out[t].shape, 2.0)
            panels.append(labelled_panel(out[t][rows_, cols], f"{method} #{t}", PANEL))
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str]) -> int:
    write_jpeg(Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "video_strip.jpg", strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
