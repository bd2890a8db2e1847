"""A tiny synthetic dataset for fast tests: cartoon faces with identities, and action frames.

* :func:`synthetic_faces`: ``identities x images`` face images (an ellipse head, two eyes, a mouth)
  whose geometry and tone depend on the identity, with per-image jitter; returns uint8
  ``[N, 3, size, size]``, face boxes and labels, ready for :class:`anonface.data.faces.FaceBank`.
* :func:`synthetic_actions`: frames with one "person" (a coloured rectangle whose colour and pose
  encode the action class) and a face ellipse on top, moving over a textured background.
"""

from __future__ import annotations

import torch
from torch import Tensor

from anonface.data.actions import ActionSet

__all__ = ["synthetic_faces", "synthetic_actions"]


def _ellipse(h: int, w: int, cx: Tensor, cy: Tensor, rx: Tensor, ry: Tensor) -> Tensor:
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
    r = ((xx - cx.view(-1, 1, 1)) / rx.view(-1, 1, 1)) ** 2 + ((yy - cy.view(-1, 1, 1)) / ry.view(-1, 1, 1)) ** 2
    return (1.5 - r).clamp(0, 1) * (r < 1.5)


def synthetic_faces(identities: int = 6, images: int = 4, size: int = 64, seed: int = 0
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``uint8 [N, 3, size, size]``, boxes ``[N, 4]``, labels ``[N]`` (N = identities * images)."""
    g = torch.Generator().manual_seed(seed)
    n = identities * images
    ident = torch.arange(identities).repeat_interleave(images)
    p = torch.rand(identities, 8, generator=g)[ident]  # identity traits
    j = (torch.rand(n, 8, generator=g) - 0.5) * 0.15  # per-image jitter
    q = (p + j).clamp(0, 1)
    s = float(size)
    cx = s / 2 + (q[:, 0] - 0.5) * s * 0.1
    cy = s / 2 + (q[:, 1] - 0.5) * s * 0.1
    rx = s * (0.25 + 0.1 * q[:, 2])
    ry = s * (0.32 + 0.08 * q[:, 3])
    head = _ellipse(size, size, cx, cy, rx, ry)
    eye_dx = rx * (0.35 + 0.25 * q[:, 4])
    eye_r = s * (0.03 + 0.04 * q[:, 5])
    eyes = _ellipse(size, size, cx - eye_dx, cy - ry * 0.25, eye_r, eye_r) + \
        _ellipse(size, size, cx + eye_dx, cy - ry * 0.25, eye_r, eye_r)
    mouth = _ellipse(size, size, cx, cy + ry * 0.45, rx * (0.2 + 0.4 * q[:, 6]), s * 0.025 + eye_r * 0.3)
    tone = torch.stack([0.5 + 0.4 * q[:, 7], 0.4 + 0.3 * q[:, 7], 0.3 + 0.3 * q[:, 2]], 1).view(n, 3, 1, 1)
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.5
    img = bg * (1 - head[:, None]) + tone * head[:, None]
    img = img * (1 - 0.8 * eyes[:, None].clamp(0, 1)) * (1 - 0.6 * mouth[:, None].clamp(0, 1))
    img = (img + 0.03 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    boxes = torch.stack([cx - rx * 1.3, cy - ry * 1.3, cx + rx * 1.3, cy + ry * 1.3], 1)
    return (img * 255).round().to(torch.uint8), boxes, ident


def synthetic_actions(frames: int = 8, classes: int = 3, height: int = 96, width: int = 128, seed: int = 0
                      ) -> ActionSet:
    """One person per frame; its class sets its colour and aspect, so a detector can learn it."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9], [0.9, 0.8, 0.1], [0.7, 0.2, 0.8]])
    out = torch.empty(frames, height, width, 3)
    pboxes, labels, fboxes = [], [], []
    yy = torch.arange(height, dtype=torch.float32).view(height, 1) + 0.5
    xx = torch.arange(width, dtype=torch.float32).view(1, width) + 0.5
    for t in range(frames):
        c = int(torch.randint(0, classes, (1,), generator=g))
        bg = 0.3 + 0.2 * torch.rand(3, generator=g)
        img = bg.view(1, 1, 3) + 0.08 * torch.rand(height, width, 3, generator=g)
        ph = height * (0.55 + 0.1 * c / max(classes - 1, 1))
        pw = ph * (0.35 + 0.15 * (c % 2))
        x1 = float(torch.rand(1, generator=g)) * (width - pw)
        y1 = float(torch.rand(1, generator=g)) * (height - ph)
        x2, y2 = x1 + pw, y1 + ph
        inside = (xx >= x1) & (xx < x2) & (yy >= y1 + ph / 5) & (yy < y2)
        img[inside] = colours[c % len(colours)]
        fs = ph / 5
        fcx, fcy = (x1 + x2) / 2, y1 + fs / 2
        face = ((xx - fcx) / (fs / 2)) ** 2 + ((yy - fcy) / (fs / 2)) ** 2 < 1
        img[face] = torch.tensor([0.85, 0.7, 0.6])
        out[t] = img
        pboxes.append(torch.tensor([[x1, y1, x2, y2]]))
        labels.append(torch.tensor([c + 1]))
        fboxes.append(torch.tensor([[fcx - fs / 2, y1, fcx + fs / 2, y1 + fs]]))
    names = [f"action{i + 1}" for i in range(classes)]
    return ActionSet((out * 255).round().clamp(0, 255).to(torch.uint8), pboxes, labels, fboxes, names)
