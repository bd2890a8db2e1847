"""A tiny made-up LFW layout for tests that must run without the shared data."""

from __future__ import annotations

from pathlib import Path


def fake_data(root: Path, colour_250: bool = False) -> Path:
    """A tiny LFW layout: 3 folds of one same and one different pair, one identity per fold side
    (random pixels). ``colour_250``: also ``faces_color_context/lfw_250_color``, colour 250x250
    photos of every identity, where the second photo of each has a black wedge over its left third."""
    import cv2
    import numpy as np

    names = {1: ("Ann_A", "Bob_B"), 2: ("Cy_C", "Di_D"), 3: ("Ed_E", "Fay_F")}
    lines = ["3 1"]
    for f in (1, 2, 3):
        a, b = names[f]
        lines += [f"{a} 1 2", f"{a} 1 {b} 1"]
    (root / "lfw_pairs").mkdir(parents=True)
    (root / "lfw_pairs" / "pairs.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for a, b in names.values():
        for name in (a, b):
            for sub, shape in (("lfw_pairs/images_250_gray", (250, 250)), ("lfw_pairs/aligned_112_color", (112, 112, 3)),
                               ("lfw_identities_extra", (250, 250))):
                d = root / sub / name
                d.mkdir(parents=True, exist_ok=True)
                for i in (1, 2):
                    cv2.imwrite(str(d / f"{name}_{i:04d}.jpg"), rng.integers(0, 256, shape, dtype=np.uint8))
    if colour_250:
        for name in [n for pair in names.values() for n in pair]:
            d = root / "faces_color_context" / "lfw_250_color" / name
            d.mkdir(parents=True, exist_ok=True)
            for i in (1, 2):
                img = rng.integers(40, 256, (250, 250, 3), dtype=np.uint8)
                if i == 2:
                    img[:, :83] = 0
                cv2.imwrite(str(d / f"{name}_{i:04d}.png"), img)
    (root / "jhmdb_sample").mkdir()
    (root / "jhmdb_sample" / "clip.avi").write_bytes(b"x")
    return root
