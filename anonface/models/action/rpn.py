"""Region proposal network: anchors, objectness and box deltas, matching, sampling, losses, proposals."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anonface.models.action.boxes import BoxCoder, batched_nms, box_iou, clip_boxes, remove_small_boxes

__all__ = ["AnchorGenerator", "RPNHead", "RegionProposalNetwork", "Matcher", "sample_labels"]


class AnchorGenerator:
    """Anchors ``[H*W*A, 4]`` centred on feature cells (cell (i, j) covers image pixels
    ``[j*stride, (j+1)*stride)``), ordered (y, x, anchor)."""

    def __init__(self, sizes: tuple[float, ...] = (32, 64, 128), ratios: tuple[float, ...] = (0.5, 1.0, 2.0)) -> None:
        base = []
        for r in ratios:  # r = height / width
            for s in sizes:
                w = s / math.sqrt(r)
                h = s * math.sqrt(r)
                base.append([-w / 2, -h / 2, w / 2, h / 2])
        self.base = torch.tensor(base, dtype=torch.float32)

    @property
    def num_anchors(self) -> int:
        return int(self.base.shape[0])

    def __call__(self, fh: int, fw: int, stride: int, device: torch.device) -> Tensor:
        ys = (torch.arange(fh, device=device, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(fw, device=device, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
        return (shifts + self.base.to(device)[None]).reshape(-1, 4)


class Matcher:
    """Match anchors/proposals to ground truth by IoU: index of the gt, -1 background, -2 ignore."""

    def __init__(self, fg: float, bg: float, allow_low_quality: bool) -> None:
        self.fg, self.bg, self.low = fg, bg, allow_low_quality

    def __call__(self, iou: Tensor) -> Tensor:
        """``iou [G, N]`` -> ``[N]`` matches."""
        n = iou.shape[1]
        if iou.shape[0] == 0:
            return torch.full((n,), -1, dtype=torch.long, device=iou.device)
        best, idx = iou.max(0)
        m = idx.clone()
        m[best < self.fg] = -2
        m[best < self.bg] = -1
        if self.low:
            # each gt keeps its best anchors even when their IoU is low
            gbest = iou.max(1, keepdim=True).values
            g, a = torch.nonzero((iou == gbest) & (gbest > 0), as_tuple=True)
            m[a] = idx[a]
        return m


def sample_labels(matches: Tensor, num: int, fg_frac: float, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Pick up to ``num`` samples, at most ``fg_frac`` foreground; returns (fg indices, bg indices)."""
    fg = torch.nonzero(matches >= 0).flatten()
    bg = torch.nonzero(matches == -1).flatten()
    nf = min(fg.numel(), int(num * fg_frac))
    nb = min(bg.numel(), num - nf)
    fg = fg[torch.randperm(fg.numel(), generator=gen, device="cpu")[:nf].to(fg.device)]
    bg = bg[torch.randperm(bg.numel(), generator=gen, device="cpu")[:nb].to(bg.device)]
    return fg, bg


class RPNHead(nn.Module):
    def __init__(self, channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.cls = nn.Conv2d(channels, num_anchors, 1)
        self.reg = nn.Conv2d(channels, num_anchors * 4, 1)
        for m in (self.conv, self.cls, self.reg):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C, H, W]`` -> objectness ``[B, H*W*A]``, deltas ``[B, H*W*A, 4]``."""
        h = F.relu(self.conv(x))
        b, _, fh, fw = x.shape
        obj = self.cls(h).permute(0, 2, 3, 1).reshape(b, -1)
        reg = self.reg(h).reshape(b, -1, 4, fh, fw).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return obj, reg


class RegionProposalNetwork(nn.Module):
    def __init__(self, channels: int, stride: int, anchor_sizes: tuple[float, ...], ratios: tuple[float, ...],
                 pre_nms: int = 600, post_nms: int = 100, nms_thresh: float = 0.7, batch_per_image: int = 128,
                 fg_frac: float = 0.5, min_size: float = 2.0) -> None:
        super().__init__()
        self.anchors = AnchorGenerator(anchor_sizes, ratios)
        self.head = RPNHead(channels, self.anchors.num_anchors)
        self.stride = stride
        self.coder = BoxCoder()
        self.matcher = Matcher(0.7, 0.3, True)
        self.pre_nms, self.post_nms, self.nms_thresh = pre_nms, post_nms, nms_thresh
        self.batch_per_image, self.fg_frac, self.min_size = batch_per_image, fg_frac, min_size

    def forward(self, feat: Tensor, image_size: tuple[int, int], gt_boxes: list[Tensor] | None = None,
                gen: torch.Generator | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals (a ``[P_i, 4]`` tensor per image) and, with ``gt_boxes``, the RPN losses."""
        obj, reg = self.head(feat)
        anchors = self.anchors(feat.shape[2], feat.shape[3], self.stride, feat.device)
        h, w = image_size
        proposals = []
        with torch.no_grad():
            for i in range(feat.shape[0]):
                boxes = clip_boxes(self.coder.decode(anchors, reg[i].detach()), h, w)
                scores = obj[i].detach()
                k = min(self.pre_nms, scores.numel())
                top = scores.topk(k).indices
                boxes, scores = boxes[top], scores[top]
                keep = remove_small_boxes(boxes, self.min_size)
                boxes, scores = boxes[keep], scores[keep]
                keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), self.nms_thresh)
                proposals.append(boxes[keep[: self.post_nms]])
        losses: dict[str, Tensor] = {}
        if gt_boxes is not None:
            cls_l, reg_l, n = obj.sum() * 0, reg.sum() * 0, 0
            for i, gt in enumerate(gt_boxes):
                m = self.matcher(box_iou(gt, anchors))
                fg, bg = sample_labels(m, self.batch_per_image, self.fg_frac, gen)
                idx = torch.cat([fg, bg])
                tgt = torch.cat([torch.ones_like(fg), torch.zeros_like(bg)]).to(obj.dtype)
                cls_l = cls_l + F.binary_cross_entropy_with_logits(obj[i, idx], tgt, reduction="sum")
                if fg.numel():
                    t = self.coder.encode(anchors[fg], gt[m[fg]])
                    reg_l = reg_l + F.smooth_l1_loss(reg[i, fg], t, beta=1 / 9, reduction="sum")
                n += max(idx.numel(), 1)
            losses = {"rpn_cls": cls_l / n, "rpn_reg": reg_l / n}
        return proposals, losses
