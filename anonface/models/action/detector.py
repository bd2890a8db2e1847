"""A, the action detector: a Faster R-CNN (backbone, RPN, RoIAlign 7x7 heads) over action classes.

Convention:
    images ``Tensor[B, 3, H, W]`` float, RGB in ``[0, 1]`` (normalised inside with ImageNet-style
    mean/std); targets one dict per image with ``boxes`` ``Tensor[G, 4]`` (x1, y1, x2, y2) pixels and
    ``labels`` ``Tensor[G]`` int64 in ``1..num_classes`` (0 is background).
    Training (``targets`` given) returns a dict of losses (rpn_cls, rpn_reg, roi_cls, roi_reg);
    inference returns one dict per image with ``boxes [D, 4]``, ``scores [D]``, ``labels [D]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from anonface.models._config import check_fields
from anonface.models.action.backbone import ResNetBackbone
from anonface.models.action.roi_heads import RoIHeads
from anonface.models.action.rpn import RegionProposalNetwork

__all__ = ["DetectorConfig", "ActionDetector", "build_detector"]


@dataclass
class DetectorConfig:
    num_classes: int = 21
    """JHMDB has 21 actions."""
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    depth: int = 1
    anchor_sizes: list[float] = field(default_factory=lambda: [32.0, 64.0, 128.0])
    anchor_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    rpn_pre_nms: int = 600
    rpn_post_nms: int = 100
    rpn_batch: int = 128
    roi_batch: int = 64
    hidden: int = 256
    score_thresh: float = 0.05
    detections_per_image: int = 20

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DetectorConfig:
        check_fields(DetectorConfig, d)
        return DetectorConfig(**d)


class ActionDetector(nn.Module):
    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        cfg = config or DetectorConfig()
        self.config = cfg
        self.backbone = ResNetBackbone(tuple(cfg.widths), cfg.depth)
        c, s = self.backbone.out_channels, self.backbone.stride
        self.rpn = RegionProposalNetwork(c, s, tuple(cfg.anchor_sizes), tuple(cfg.anchor_ratios),
                                         pre_nms=cfg.rpn_pre_nms, post_nms=cfg.rpn_post_nms,
                                         batch_per_image=cfg.rpn_batch)
        self.roi_heads = RoIHeads(c, s, cfg.num_classes, hidden=cfg.hidden, batch_per_image=cfg.roi_batch,
                                  score_thresh=cfg.score_thresh, detections_per_image=cfg.detections_per_image)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                gen: torch.Generator | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be Tensor[B, 3, H, W], got shape {tuple(images.shape)}")
        if targets is not None and len(targets) != images.shape[0]:
            raise ValueError(f"targets must have one dict per image ({images.shape[0]}), got {len(targets)}")
        size = (int(images.shape[2]), int(images.shape[3]))
        # contiguous: channels-last inputs (permuted NHWC frames) crash conv backward in torch 2.13 CPU
        feat = self.backbone(((images - self.mean) / self.std).contiguous())
        gt = [t["boxes"] for t in targets] if targets is not None else None
        proposals, rpn_losses = self.rpn(feat, size, gt, gen)
        if targets is not None:
            _, roi_losses = self.roi_heads(feat, proposals, size, targets, gen)
            return {**rpn_losses, **roi_losses}
        dets, _ = self.roi_heads(feat, proposals, size)
        return dets


def build_detector(config: DetectorConfig | dict[str, Any] | None = None) -> ActionDetector:
    if isinstance(config, dict):
        config = DetectorConfig.from_dict(config)
    return ActionDetector(config)
