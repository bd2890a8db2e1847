"""The smooth mosaic: a face crop averaged to ``cells x cells`` cells and up-sampled bilinearly.

The information bottleneck of the learned anonymizer M (what it is given) and the base the composite
anonymizer draws over; :class:`SmoothMosaic` shows it alone (an evaluation baseline, and what the
renderer pastes on faint boxes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SmoothMosaic", "pixelate", "smooth_cells"]


def pixelate(x: Tensor, cells: int) -> Tensor:
    """Mean of each of ``cells x cells`` cells, ``Tensor[K, C, cells, cells]`` (differentiable)."""
    return F.adaptive_avg_pool2d(x, (cells, cells))


def smooth_cells(x: Tensor, cells: int, small: Tensor | None = None) -> Tensor:
    """``x`` averaged to ``cells x cells`` cells and up-sampled bilinearly back to its size: the smooth
    mosaic M's residual corrects (and the composite anonymizer draws over). ``small``: the cell means
    (:func:`pixelate`) when the caller has them already."""
    small = pixelate(x, cells) if small is None else small
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


class SmoothMosaic(nn.Module):
    """M's input without M (or the composite's base without its detail): the model's ``degrade``'s smooth image, the face crop averaged to the
    model's ``degrade_cells`` cells and up-sampled bilinearly back to the crop (the base M's residual
    output corrects). Takes crops ``[K, 3, S, S]`` in ``[-1, 1]`` like M, so the rendering path
    (``face_crop`` -> model -> ``face_paste``) and the crop size are M's.

    Raises:
        ValueError: the anonymizer has no pixelation bottleneck (``degrade_cells == 0``).
    """

    def __init__(self, anonymizer: torch.nn.Module) -> None:
        super().__init__()
        cells = int(getattr(getattr(anonymizer, "config", None), "degrade_cells", 0) or 0)
        if cells <= 0 or not callable(getattr(anonymizer, "degrade", None)):
            raise ValueError("the anonymizer has no pixelation bottleneck (degrade_cells = 0): "
                             "there is no mosaic input to show")
        self.anonymizer = anonymizer
        self.cells = cells
        self.crop_size: int = int(anonymizer.crop_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return x.clone()
        _, smooth = self.anonymizer.degrade(x.contiguous())
        return smooth
