"""The composite anonymizer: a made-up face drawn over the face's own 12x12 mosaic.

The output for a face crop ``x`` is

    smooth(x) + gain * (mean + sum_i z_i * components_i)     (the same on R, G and B; clamped to [-1, 1])

* ``smooth(x)``: the crop averaged to ``cells x cells`` cells and up-sampled bilinearly, exactly the
  learned anonymizer M's bottleneck (:meth:`FaceAnonymizer.degrade`). It carries the face's colours,
  light and the rough shape of head and hair, and nothing finer: the output depends on ``x`` only
  through its cell means, whatever the weights are (privacy by construction, tested).
* ``mean``, ``components``: a linear model of face *detail* (what a face holds beyond its 12x12
  mosaic, in grey levels), fitted to training photos: their mean detail and the principal components
  scaled by their standard deviations. The mean alone draws one composite person, the average of
  thousands, on every face; a code ``z ~ N(0, 1)`` per face picks another made-up person from the
  model (``anonface.render.FaceMemory`` keeps one code per track, drawn from the run's seed, never
  from the face).

It has no trainable weights and no adversarial game: it is the baseline the paper's learned M should
beat, and on the held-out evaluation it hides identity as well as the mosaic alone while detectors
take all its faces for faces (README, Results). ``tools/build_composite.py`` fits the shipped model
(``anonface/weights/composite.pt``); :func:`anonface.models.anonymizer.load_pretrained` loads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anonface.models.mosaic import SmoothMosaic, smooth_cells
from anonface.options import PIXELATE_MAX_CELLS

__all__ = [
    "COMPOSITE_FORMAT",
    "COMPOSITE_WEIGHTS",
    "CompositeConfig",
    "CompositeFace",
    "composite_from_payload",
    "composite_weights_path",
    "checkpoint_for",
    "save_composite",
]

COMPOSITE_FORMAT = "anonface.composite/1"
COMPOSITE_WEIGHTS = "composite.pt"


@dataclass(frozen=True)
class CompositeConfig:
    crop_size: int = 64
    degrade_cells: int = 12
    """Cells across the crop of the mosaic the face is drawn over (the learned M's bottleneck)."""
    gain: float = 1.5
    """Contrast of the drawn detail: the mean of many faces' details is fainter than any one face's."""

    def validate(self) -> None:
        if isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int) or self.crop_size < 8:
            raise ValueError(f"crop_size must be an integer >= 8, got {self.crop_size!r}")
        most = min(self.crop_size, PIXELATE_MAX_CELLS)
        if isinstance(self.degrade_cells, bool) or not isinstance(self.degrade_cells, int) or not (
            1 <= self.degrade_cells <= most
        ):
            # finer cells than the tool lets pixelation use would let the face itself through
            raise ValueError(f"degrade_cells must be an integer in [1, {most}] (at most crop_size and "
                             f"the finest pixelation the tool allows), got {self.degrade_cells!r}")
        if isinstance(self.gain, bool) or not isinstance(self.gain, (int, float)) or not (0 < self.gain <= 10):
            raise ValueError(f"gain must be a number in (0, 10], got {self.gain!r}")  # also refuses NaN


class CompositeFace(nn.Module):
    """The composite anonymizer (module docstring). Takes crops ``[K, 3, S, S]`` in ``[-1, 1]``
    (normalised with mean = std = 0.5, as M takes them) and a code ``z [K, latent_dim]`` (None: the
    mean person on every face).

    Args:
        mean: ``[S, S]`` mean detail.
        components: ``[k, S, S]`` principal components times their standard deviations (``k`` may be 0).
        config: crop size, mosaic cells and gain.
    """

    def __init__(self, mean: Tensor, components: Tensor, config: CompositeConfig | None = None) -> None:
        super().__init__()
        cfg = config or CompositeConfig()
        cfg.validate()
        s = cfg.crop_size
        if mean.shape != (s, s):
            raise ValueError(f"mean must be [{s}, {s}] (crop_size), got {tuple(mean.shape)}")
        if components.dim() != 3 or components.shape[1:] != (s, s):
            raise ValueError(f"components must be [k, {s}, {s}], got {tuple(components.shape)}")
        if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(components).all())):
            raise ValueError("mean and components must be finite")
        self.config = cfg
        self.crop_size: int = s
        self.latent_dim: int = int(components.shape[0])
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("components", components.detach().float().clone())

    def degrade(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(smooth, smooth)``: the mosaic the face is drawn over, in :class:`FaceAnonymizer`'s form
        (so :class:`~anonface.models.anonymizer.SmoothMosaic` shows it alone)."""
        s = smooth_cells(x, self.config.degrade_cells)
        return s, s

    def smooth_mosaic(self) -> nn.Module:
        """The mosaic without the drawn detail; ``anonface.render`` pastes it on faint boxes."""
        return SmoothMosaic(self).eval()

    def detail(self, n: int, z: Tensor | None) -> Tensor:
        """``[n, S, S]``: the made-up people's detail for codes ``z`` (None: the mean for all)."""
        d = self.mean.expand(n, -1, -1)
        if z is not None and self.latent_dim > 0:
            d = d + torch.einsum("nk,khw->nhw", z.to(self.components.dtype), self.components)
        return d

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be Tensor[K, 3, S, S], got shape {tuple(x.shape)}")
        if x.shape[-2:] != (self.crop_size, self.crop_size):
            raise ValueError(f"x must be {self.crop_size}x{self.crop_size} crops, got {tuple(x.shape[-2:])}")
        if z is not None:
            if self.latent_dim == 0:
                raise ValueError("this composite takes no code z (latent_dim = 0)")
            if z.shape != (x.shape[0], self.latent_dim):
                raise ValueError(f"z must be Tensor[{x.shape[0]}, {self.latent_dim}], got shape {tuple(z.shape)}")
            if not bool(torch.isfinite(z).all()):
                raise ValueError("z must be finite")
        if x.shape[0] == 0:
            return x.clone()
        _, base = self.degrade(x.contiguous())
        d = self.detail(x.shape[0], z).to(base.dtype)
        return (base + self.config.gain * d[:, None]).clamp(-1.0, 1.0)


def composite_weights_path() -> Path:
    """The composite model shipped inside the package."""
    return Path(str(resources.files("anonface.weights").joinpath(COMPOSITE_WEIGHTS)))


def checkpoint_for(method: str, checkpoint: Any) -> Any:
    """The checkpoint a model method loads: ``checkpoint`` when given, else for ``composite`` the
    shipped composite file, else None (``load_pretrained``'s own default, M's weights)."""
    if checkpoint is None and method == "composite":
        return composite_weights_path()
    return checkpoint


def save_composite(model: CompositeFace, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write the model as a small tensors-only checkpoint (fp16 detail, its config and ``meta``)."""
    payload = {
        "format": COMPOSITE_FORMAT,
        "config": asdict(model.config),
        "mean": model.mean.detach().half().cpu().clone(),
        "components": model.components.detach().half().cpu().clone(),
        "meta": dict(meta or {}),
    }
    torch.save(payload, str(path))


def composite_from_payload(payload: dict[str, Any], p: Path, map_location: str | torch.device = "cpu") -> CompositeFace:
    """The model of a checkpoint already read with ``weights_only=True`` (format :data:`COMPOSITE_FORMAT`).

    Raises:
        ValueError: a config, mean or components that do not describe a composite (one line, naming ``p``).
    """
    cfg, mean, comps = payload.get("config"), payload.get("mean"), payload.get("components")
    try:
        if not isinstance(cfg, dict):
            raise ValueError(f"the config must be a mapping, got {type(cfg).__name__}")
        known = set(CompositeConfig.__dataclass_fields__)
        if set(cfg) - known:
            raise ValueError(f"unknown config fields {sorted(set(cfg) - known)}")
        if not (isinstance(mean, Tensor) and isinstance(comps, Tensor)):
            raise ValueError("mean and components must be tensors")
        if not (mean.is_floating_point() and comps.is_floating_point()):
            raise ValueError("mean and components must be floating point")
        model = CompositeFace(mean.float(), comps.float(), CompositeConfig(**cfg))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: not a composite anonymizer: {exc}") from None
    return model.to(map_location).eval()
