"""An in-memory bank of face images and batched, jittered face crops for training M and D.

Images are held as ``uint8`` tensors (grayscale ones with one channel) together with a face box per
image; :meth:`FaceBank.sample` draws a batch of crops ``[B, 3, S, S]`` normalised with mean = std = 0.5
(the convention of ``anonface.ops.face_crop``) with random box jitter, horizontal flips and photometric
changes, all driven by one ``torch.Generator`` so that a run can be resumed exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from anonface.data.lfw import aligned_face_box, lfw_face_box, read_image

logger = logging.getLogger(__name__)

__all__ = ["FaceBank", "crop_boxes"]


def crop_boxes(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Bilinear crops of ``boxes`` (``[B, 4]`` pixel corners) from float ``images [B, C, H, W]``.

    Returns ``[B, C, size, size]``; sample centres follow the pixel-centre convention of
    ``face_crop`` (aligned=True), outside pixels read as border values.
    """
    b, _, h, w = images.shape
    x1, y1, x2, y2 = boxes.unbind(1)
    t = (torch.arange(size, dtype=images.dtype, device=images.device) + 0.5) / size
    xs = x1[:, None] + t[None] * (x2 - x1)[:, None]  # pixel coords of sample centres
    ys = y1[:, None] + t[None] * (y2 - y1)[:, None]
    gx = xs / w * 2 - 1
    gy = ys / h * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class _Group:
    images: Tensor  # uint8 [N, C, H, W]
    boxes: Tensor  # float [N, 4] (base face box)
    labels: Tensor  # long [N]


class FaceBank:
    """Face images with boxes and identity labels, sampled as normalised crops.

    Build with :meth:`from_lfw_folders` / :meth:`add`; groups of different image sizes are kept apart
    and drawn with the given shares.
    """

    def __init__(self) -> None:
        self.groups: list[_Group] = []
        self.shares: list[float] = []
        self.names: list[str] = []

    def __len__(self) -> int:
        return sum(int(g.images.shape[0]) for g in self.groups)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def add(self, images: Tensor, boxes: Tensor, labels: Tensor, share: float = 1.0) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if boxes.shape != (images.shape[0], 4):
            raise ValueError(f"boxes must be [N, 4] with N={images.shape[0]}, got {tuple(boxes.shape)}")
        self.groups.append(_Group(images, boxes.float(), labels.long()))
        self.shares.append(float(share))

    @staticmethod
    def load_lfw(paths: Sequence[tuple[Path, int]], size: int = 160, gray: bool = True,
                 geometry: str = "legacy") -> tuple[Tensor, Tensor]:
        """Read 250x250 LFW images resized to ``size``; boxes are :func:`~anonface.data.lfw.lfw_face_box`
        of ``geometry`` (``legacy`` or ``pipeline``) scaled to ``size``."""
        lfw_face_box(geometry)  # checks geometry before reading anything
        import cv2

        imgs = []
        for p, _ in paths:
            im = read_image(p)
            if im.shape[:2] != (250, 250):
                im = cv2.resize(im, (250, 250), interpolation=cv2.INTER_AREA)
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
            imgs.append(im[:, :, :1] if gray else im)
        arr = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        s = size / 250.0
        box = torch.tensor(lfw_face_box(geometry)) * s
        return arr, box.expand(len(imgs), 4).clone()

    @staticmethod
    def load_aligned(paths: Sequence[tuple[Path, int]], pad: float = 0.0,
                     geometry: str = "legacy") -> tuple[Tensor, Tensor]:
        """Read pre-aligned colour crops. ``legacy``: the box is the whole image grown by ``pad`` per side;
        ``pipeline``: :func:`~anonface.data.lfw.aligned_face_box` (``pad`` must be 0)."""
        aligned_face_box(geometry)
        if geometry != "legacy" and pad != 0.0:
            raise ValueError(f"pad must be 0 with geometry={geometry!r}, got {pad}")
        imgs = [read_image(p) for p, _ in paths]
        arr = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
        h, w = arr.shape[-2:]
        if geometry == "legacy":
            box = torch.tensor([-pad * w, -pad * h, w * (1 + pad), h * (1 + pad)], dtype=torch.float32)
        else:
            box = torch.tensor(aligned_face_box(geometry, int(w), int(h)), dtype=torch.float32)
        return arr, box.expand(len(imgs), 4).clone()

    def sample(self, batch: int, size: int, gen: torch.Generator, *, jitter: float = 0.08,
               flip: bool = True, photometric: float = 0.2, colour_tint: float = 0.0) -> tuple[Tensor, Tensor]:
        """A batch of crops ``[B, 3, size, size]`` in ``[-1, 1]`` and their labels ``[B]``."""
        if not self.groups:
            raise ValueError("FaceBank is empty")
        shares = torch.tensor(self.shares, dtype=torch.float64)
        which = torch.multinomial(shares / shares.sum(), batch, replacement=True, generator=gen)
        crops, labels = [], []
        for gi, g in enumerate(self.groups):
            n = int((which == gi).sum())
            if n == 0:
                continue
            idx = torch.randint(0, g.images.shape[0], (n,), generator=gen)
            img = g.images[idx].float() / 255.0
            if img.shape[1] == 1:
                img = img.expand(-1, 3, -1, -1)
            box = g.boxes[idx].clone()
            if jitter > 0:
                wh = box[:, 2:] - box[:, :2]
                c = (box[:, :2] + box[:, 2:]) / 2
                c = c + (torch.rand(n, 2, generator=gen) * 2 - 1) * jitter * wh
                sc = 1 + (torch.rand(n, 1, generator=gen) * 2 - 1) * jitter * 1.5
                ar = 1 + (torch.rand(n, 2, generator=gen) * 2 - 1) * jitter * 0.5
                wh = wh * sc * ar
                box = torch.cat([c - wh / 2, c + wh / 2], 1)
            out = crop_boxes(img, box, size)
            if flip:
                f = torch.rand(n, generator=gen) < 0.5
                out = torch.where(f[:, None, None, None], out.flip(-1), out)
            if photometric > 0:
                a = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * photometric
                bshift = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * photometric * 0.5
                out = (out - 0.5) * a + 0.5 + bshift
            if colour_tint > 0:
                tint = 1 + (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * colour_tint
                out = out * tint
            crops.append(out.clamp(0, 1) * 2 - 1)
            labels.append(g.labels[idx])
        # restore a random order so groups are mixed within the batch
        x = torch.cat(crops)
        y = torch.cat(labels)
        perm = torch.randperm(x.shape[0], generator=gen)
        return x[perm].contiguous(), y[perm]
