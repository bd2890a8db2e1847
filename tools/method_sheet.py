"""A picture of what each anonymization method does to a face, for the README.

The faces are the two people in scikit-image's sample pictures (the astronaut, NASA, and the
cameraman) and matplotlib's sample portrait of Grace Hopper (US Navy): all public domain and installed
with a dependency (matplotlib comes with the ``eval`` extra). The research-only face data of the
evaluation may not be copied into the repository, so its example sheets stay out of it. Each method
runs through ``anonface.Anonymizer`` with the faces CenterFace finds, as the tool does; the
evaluation-only smooth mosaic (the 12x12 input the learned anonymizer sees, up-sampled bilinearly)
runs as the evaluation runs it. Each panel is the face's surroundings, enlarged.

Run: ``.venv/bin/python tools/method_sheet.py [OUT.jpg]`` (default ``docs/methods.jpg``, JPEG quality 85).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["none", "pixelate", "blur", "solid", "noise", "smooth-mosaic", "learned", "composite"]
PANEL = 200  # px per panel side


def _pictures() -> list[np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    camera = np.ascontiguousarray(np.repeat(data.camera()[..., None], 3, axis=2))
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    if hopper is None:
        raise RuntimeError("matplotlib's sample grace_hopper.jpg could not be read")
    return [np.ascontiguousarray(data.astronaut()), camera, cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)]


def _anonymizer(method: str, boxes: np.ndarray):
    from anonface import Anonymizer
    from anonface.eval.methods import build_pipeline, parse_methods

    if method == "smooth-mosaic":
        return build_pipeline(parse_methods(["smooth-mosaic"])[0], boxes=[boxes], device="cpu")
    return Anonymizer(method, boxes=[boxes], device="cpu")


def face_window(box, shape: tuple[int, ...], factor: float) -> tuple[slice, slice]:
    """The rows and columns of a square ``factor`` x the box's longer side around its centre,
    clipped to an image of ``shape``."""
    x1, y1, x2, y2 = box[:4]
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, factor * max(x2 - x1, y2 - y1)
    h, w = shape[:2]
    return (slice(int(max(0, cy - side / 2)), int(min(h, cy + side / 2))),
            slice(int(max(0, cx - side / 2)), int(min(w, cx + side / 2))))


def labelled_panel(region: np.ndarray, label: str, size: int) -> np.ndarray:
    """``region`` resized to ``size`` x ``size`` with ``label`` written in its lower left corner."""
    panel = cv2.resize(region, (size, size), interpolation=cv2.INTER_CUBIC)
    for colour, width in (((255, 255, 255), 3), ((20, 20, 20), 1)):
        cv2.putText(panel, label, (6, size - 8), cv2.FONT_HERSHEY_SIMPLEX, size / 400, colour, width)
    return panel


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {path}")


def sheet() -> np.ndarray:
    from anonface.detect import build_detector

    # with the landmarks the pipeline asks for when a model draws the faces (the others ignore them)
    det = build_detector("centerface", device="cpu", threshold=0.5, landmarks=True)
    rows = []
    for img in _pictures():
        boxes = det.detect(img[None], [0])[0]
        if len(boxes) == 0:
            raise RuntimeError("CenterFace found no face in a sample picture")
        rows_, cols = face_window(boxes[np.argmax(boxes[:, 4])], img.shape, 1.9)
        panels = [labelled_panel(np.asarray(_anonymizer(m, boxes)(img))[rows_, cols], m, PANEL)
                  for m in METHODS]
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str]) -> int:
    write_jpeg(Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "methods.jpg", sheet())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
