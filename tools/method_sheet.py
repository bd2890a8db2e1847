"""A picture of what each anonymization method does to a face, for the README.

The faces are the two people in scikit-image's sample pictures (the astronaut, NASA, and the
cameraman, both public domain and installed with a dependency): the research-only face data of the
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
METHODS = ["none", "pixelate", "blur", "solid", "noise", "smooth-mosaic", "learned"]
PANEL = 200  # px per panel side


def _pictures() -> list[np.ndarray]:
    from skimage import data

    camera = np.ascontiguousarray(np.repeat(data.camera()[..., None], 3, axis=2))
    return [np.ascontiguousarray(data.astronaut()), camera]


def _anonymizer(method: str, boxes: np.ndarray):
    from anonface import Anonymizer
    from anonface.eval.methods import build_pipeline, parse_methods

    if method == "smooth-mosaic":
        return build_pipeline(parse_methods(["smooth-mosaic"])[0], boxes=[boxes], device="cpu")
    return Anonymizer(method, boxes=[boxes], device="cpu")


def sheet() -> np.ndarray:
    from anonface.detect import build_detector

    det = build_detector("centerface", device="cpu", threshold=0.5)
    rows = []
    for img in _pictures():
        boxes = det.detect(img[None], [0])[0]
        if len(boxes) == 0:
            raise RuntimeError("CenterFace found no face in a sample picture")
        x1, y1, x2, y2 = boxes[np.argmax(boxes[:, 4]), :4]
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.9 * max(x2 - x1, y2 - y1)
        h, w = img.shape[:2]
        a, b = int(max(0, cx - side / 2)), int(min(w, cx + side / 2))
        c, d = int(max(0, cy - side / 2)), int(min(h, cy + side / 2))
        panels = []
        for method in METHODS:
            out = np.asarray(_anonymizer(method, boxes[:, :4])(img))
            panel = cv2.resize(out[c:d, a:b], (PANEL, PANEL), interpolation=cv2.INTER_CUBIC)
            cv2.putText(panel, method, (6, PANEL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 3)
            cv2.putText(panel, method, (6, PANEL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1)
            panels.append(panel)
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "methods.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
