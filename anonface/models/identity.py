"""D, the identity discriminator: a SphereFace-style residual face network with an angular-margin head.

Convention:
    input faces are ``Tensor[B, 3, H, W]`` float32 normalised with mean = std = 0.5 (values in
    ``[-1, 1]``), typically 112x96 (SphereFace) or 112x112; any size works because the last stage is
    pooled to a fixed 7x6 / 7x7 grid. ``IdentityNet(x)`` returns the L2-normalised embedding
    ``Tensor[B, embed_dim]``; ``MarginHead(emb, labels)`` returns margin-adjusted, scaled logits
    ``Tensor[B, num_classes]`` for cross-entropy (plain scaled cosines when ``labels`` is None).

``gray=True`` converts the input to luminance first, so that a D trained on grayscale LFW images
judges colour faces by their structure alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anonface.models._config import check_fields

__all__ = ["IdentityConfig", "IdentityNet", "MarginHead", "build_identity", "to_gray"]


@dataclass
class IdentityConfig:
    """Architecture of D. ``IdentityConfig.sphereface20()`` is the paper's SphereFace-20 layout."""

    input_size: tuple[int, int] = (112, 112)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    units: tuple[int, ...] = (1, 1, 2, 1)
    """residual units per stage (SphereFace-20: 1, 2, 4, 1)"""
    embed_dim: int = 128
    num_classes: int = 0
    margin: Literal["cosface", "arcface", "sphereface", "softmax"] = "cosface"
    scale: float = 30.0
    m: float = 0.35
    gray: bool = True

    @staticmethod
    def sphereface20(num_classes: int = 10574) -> IdentityConfig:
        return IdentityConfig(input_size=(112, 96), widths=(64, 128, 256, 512), units=(1, 2, 4, 1),
                              embed_dim=512, num_classes=num_classes, margin="sphereface", scale=30.0, m=4.0,
                              gray=False)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> IdentityConfig:
        check_fields(IdentityConfig, d)
        d = dict(d)
        for k in ("input_size", "widths", "units"):
            if k in d:
                d[k] = tuple(d[k])
        return IdentityConfig(**d)


def to_gray(x: Tensor) -> Tensor:
    """Luminance (ITU-R 601) replicated to 3 channels; ``[B, 3, H, W]`` -> ``[B, 3, H, W]``."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)


class _Unit(nn.Module):
    """SphereFace residual unit: two 3x3 convs with PReLU, identity shortcut."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(ch)
        self.a1 = nn.PReLU(ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(ch)
        self.a2 = nn.PReLU(ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.a2(self.b2(self.c2(self.a1(self.b1(self.c1(x))))))


class IdentityNet(nn.Module):
    """Face embedding network: ``[B, 3, H, W]`` -> L2-normalised ``[B, embed_dim]``."""

    def __init__(self, config: IdentityConfig | None = None) -> None:
        super().__init__()
        cfg = config or IdentityConfig()
        self.config = cfg
        stages: list[nn.Module] = []
        cin = 3
        for w, n in zip(cfg.widths, cfg.units):
            stages += [nn.Conv2d(cin, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.PReLU(w)]
            stages += [_Unit(w) for _ in range(n)]
            cin = w
        self.features = nn.Sequential(*stages)
        h, w_ = cfg.input_size
        grid = (max(1, math.ceil(h / 16)), max(1, math.ceil(w_ / 16)))
        self.grid = grid
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Linear(cin * grid[0] * grid[1], cfg.embed_dim)
        self.bn = nn.BatchNorm1d(cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be Tensor[B, 3, H, W], got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != tuple(self.config.input_size):
            x = F.interpolate(x, size=self.config.input_size, mode="bilinear", align_corners=False)
        if self.config.gray:
            x = to_gray(x)
        f = self.pool(self.features(x.contiguous())).flatten(1)
        return F.normalize(self.bn(self.fc(f)), dim=1)


class MarginHead(nn.Module):
    """Angular-margin classifier over normalised embeddings.

    * ``cosface``: ``s * (cos t - m)`` for the true class (m ~ 0.35).
    * ``arcface``: ``s * cos(t + m)`` for the true class (m ~ 0.5).
    * ``sphereface``: A-Softmax ``s * psi(m t)`` with integer m (the SphereFace form
      ``psi(t) = (-1)^k cos(m t) - 2k`` on ``t in [k pi/m, (k+1) pi/m]``), feature norm fixed to s.
    * ``softmax``: plain scaled cosine.
    """

    def __init__(self, embed_dim: int, num_classes: int, margin: str = "cosface", scale: float = 30.0,
                 m: float = 0.35) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f"num_classes must be > 0, got {num_classes}")
        if margin not in ("cosface", "arcface", "sphereface", "softmax"):
            raise ValueError(f"margin must be cosface, arcface, sphereface or softmax, got {margin!r}")
        self.weight = nn.Parameter(torch.randn(num_classes, embed_dim) * 0.01)
        self.margin, self.scale, self.m = margin, scale, m

    def forward(self, emb: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1)).clamp(-1 + 1e-6, 1 - 1e-6)
        if labels is None or self.margin == "softmax":
            return self.scale * cos
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        if self.margin == "cosface":
            target = cos - self.m
        elif self.margin == "arcface":
            target = torch.cos(torch.acos(cos) + self.m)
        else:
            mi = int(round(self.m))
            theta = torch.acos(cos)
            k = torch.floor(theta * mi / math.pi)
            target = torch.where(k.remainder(2) == 0, 1.0, -1.0) * torch.cos(mi * theta) - 2 * k
        return self.scale * (onehot * target + (1 - onehot) * cos)


def build_identity(config: IdentityConfig | dict[str, Any] | None = None) -> tuple[IdentityNet, MarginHead | None]:
    """D as (embedding network, margin head); the head is None when ``num_classes == 0``."""
    if isinstance(config, dict):
        config = IdentityConfig.from_dict(config)
    cfg = config or IdentityConfig()
    net = IdentityNet(cfg)
    head = MarginHead(cfg.embed_dim, cfg.num_classes, cfg.margin, cfg.scale, cfg.m) if cfg.num_classes > 0 else None
    return net, head
