"""ResNet-style backbone of the action detector: one feature map at a fixed stride.

``depth`` residual BasicBlocks per stage, ``widths`` channels per stage; the stem and every stage
after the first halve the resolution, so the output stride is ``2 ** len(widths)`` (stem stride 2,
then stride 2 for stages 2..n).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNetBackbone"]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.short(x))


class ResNetBackbone(nn.Module):
    """``[B, 3, H, W]`` -> ``[B, widths[-1], H / stride, W / stride]`` (rounded up)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128), depth: int = 1) -> None:
        super().__init__()
        if not widths or depth < 1:
            raise ValueError(f"need at least one stage and depth >= 1, got widths={widths}, depth={depth}")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2)] + [BasicBlock(w, w, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]
        self.stride = 2 ** len(widths)

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))
