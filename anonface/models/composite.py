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

A *conditional* model (format ``anonface.composite/2``) also predicts part of the made-up person
from the mosaic itself: the component weights are ``predict @ f(x) + code_scale * z``, where ``f(x)``
are the crop's grey 12x12 cell means with their own mean and contrast taken out (and a constant 1),
and ``predict`` a ridge regression fitted on the training photos (their weights from their own
mosaics). The drawn face then turns and is lit as the head under it is; the code ``z`` draws the rest
of the person, with the spread the regression leaves. ``f`` is a function of the cell means, so the
privacy argument below holds unchanged.

The mean face has its eyes, nose and mouth where the training photos have them on average
(``anonface.render.CANONICAL_LANDMARKS``): given ``align`` (``anonface.render.align_to_landmarks``), the
detail is moved onto each face's own landmarks by a similarity and faded towards profile, before it is
added to the mosaic (:func:`warp_affine`); the mosaic, which already lies where the face is, is not
moved. The landmarks carry where the face is, its size and roll, which a recogniser undoes anyway.

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

from anonface.models.mosaic import SmoothMosaic, pixelate, smooth_cells
from anonface.options import PIXELATE_MAX_CELLS

__all__ = [
    "COMPOSITE_FORMAT",
    "CONDITIONAL_FORMAT",
    "COMPOSITE_WEIGHTS",
    "CompositeConfig",
    "CompositeFace",
    "composite_from_payload",
    "composite_weights_path",
    "linear_detail",
    "warp_affine",
    "mosaic_features",
    "checkpoint_for",
    "save_composite",
]

COMPOSITE_FORMAT = "anonface.composite/1"
CONDITIONAL_FORMAT = "anonface.composite/2"
"""A composite that also predicts part of the person from the mosaic (``predict``, ``code_scale``)."""
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

    def __init__(self, mean: Tensor, components: Tensor, config: CompositeConfig | None = None,
                 predict: Tensor | None = None, code_scale: Tensor | None = None) -> None:
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
        k, features = int(components.shape[0]), cfg.degrade_cells ** 2 + 1
        if (predict is None) != (code_scale is None):
            raise ValueError("predict and code_scale come together (a conditional composite) or not at all")
        if predict is not None and code_scale is not None:
            if predict.shape != (k, features):
                raise ValueError(f"predict must be [{k}, {features}] (components, cells**2 + 1), "
                                 f"got {tuple(predict.shape)}")
            if code_scale.shape != (k,):
                raise ValueError(f"code_scale must be [{k}], got {tuple(code_scale.shape)}")
            if not (bool(torch.isfinite(predict).all()) and bool(torch.isfinite(code_scale).all())):
                raise ValueError("predict and code_scale must be finite")
            if bool((code_scale < 0).any()):
                raise ValueError("code_scale must be >= 0")
        self.config = cfg
        self.crop_size: int = s
        self.latent_dim: int = k
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("components", components.detach().float().clone())
        self.predict: Tensor | None
        self.code_scale: Tensor | None
        if predict is not None and code_scale is not None:
            self.register_buffer("predict", predict.detach().float().clone())
            self.register_buffer("code_scale", code_scale.detach().float().clone())
        else:
            self.predict = self.code_scale = None

    #: The drawn detail has its features at fixed places of the crop (the training photos' mean
    #: landmarks), whatever the face: ``anonface.render`` moves it onto each face's own landmarks.
    aligns_to_landmarks = True

    @property
    def conditional(self) -> bool:
        """Whether part of the person is predicted from the mosaic (``predict``)."""
        return self.predict is not None

    def degrade(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(smooth, smooth)``: the mosaic the face is drawn over, in :class:`FaceAnonymizer`'s form
        (so :class:`~anonface.models.anonymizer.SmoothMosaic` shows it alone)."""
        s = smooth_cells(x, self.config.degrade_cells)
        return s, s

    def smooth_mosaic(self) -> nn.Module:
        """The mosaic without the drawn detail; ``anonface.render`` pastes it on faint boxes."""
        return SmoothMosaic(self).eval()

    def weights(self, x: Tensor, z: Tensor | None) -> Tensor | None:
        """``[n, k]`` component weights for crops ``x`` and codes ``z``: ``z`` itself, or for a
        conditional model ``predict @ mosaic_features(x) + code_scale * z`` (None: no code)."""
        if self.predict is None or self.code_scale is None:
            return z
        f = mosaic_features(x, self.config.degrade_cells)
        w = f @ self.predict.T.to(f.dtype)
        return w if z is None else w + z.to(w.dtype) * self.code_scale.to(w.dtype)

    def detail(self, n: int, w: Tensor | None) -> Tensor:
        """``[n, S, S]``: the made-up people's detail for component weights ``w [n, k]`` (None: the
        mean for all)."""
        return linear_detail(self.mean, self.components, w, n)

    def forward(self, x: Tensor, z: Tensor | None = None, align: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``align``: ``(theta [K, 2, 3], weight [K])`` that move the drawn detail onto each face's
        landmarks and keep that much of it (``anonface.render.align_to_landmarks``); the mosaic under
        it stays where the face is."""
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
        x = x.contiguous()
        _, base = self.degrade(x)
        d = self.detail(x.shape[0], self.weights(x, z)).to(base.dtype)[:, None]
        if align is not None:
            d = warp_affine(d, *align)
        return (base + self.config.gain * d).clamp(-1.0, 1.0)


def warp_affine(img: Tensor, theta: Tensor, weight: Tensor) -> Tensor:
    """``weight * img`` read through the affine maps ``theta [K, 2, 3]`` (``affine_grid``'s,
    ``align_corners=False``: each output position in ``[-1, 1]`` reads ``img [K, C, S, S]`` at
    ``theta @ (x, y, 1)``; bicubic, zeros beyond its edge). Rows with the identity map and weight 1
    come back exactly as they were."""
    import torch.nn.functional as F

    th = theta.to(device=img.device, dtype=torch.float32)
    w = weight.to(device=img.device, dtype=torch.float32)
    grid = F.affine_grid(th, list(img.shape), align_corners=False)
    moved = F.grid_sample(img.float(), grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    out = (moved * w[:, None, None, None]).to(img.dtype)
    still = (th == torch.eye(2, 3, device=th.device)).all(2).all(1) & (w == 1)
    return torch.where(still[:, None, None, None], img, out)


def linear_detail(mean: Tensor, components: Tensor, w: Tensor | None, n: int) -> Tensor:
    """``[n, S, S]``: ``mean [S, S] + sum_i w_i * components_i`` (``components [k, S, S]``) for each of
    ``n`` weight rows ``w [n, k]`` (None: the mean for all). The composite's detail, and the base the
    learned M draws over with ``base='composite'``."""
    d = mean.expand(n, -1, -1)
    if w is not None and components.shape[0] > 0:
        d = d + torch.einsum("nk,khw->nhw", w.to(components.dtype), components)
    return d


def mosaic_features(x: Tensor, cells: int) -> Tensor:
    """``[K, cells**2 + 1]``: the grey cell means of crops ``x [K, 3, S, S]`` with their own mean
    taken out and divided by their own spread (so light and contrast do not count), then a 1. A
    function of the crop's cell means alone."""
    g = pixelate(x.float().mean(1, keepdim=True), cells).flatten(1)
    g = g - g.mean(1, keepdim=True)
    g = g / (g.pow(2).mean(1, keepdim=True).sqrt() + 0.05)
    return torch.cat([g, g.new_ones(g.shape[0], 1)], 1)


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
        "format": CONDITIONAL_FORMAT if model.conditional else COMPOSITE_FORMAT,
        "config": asdict(model.config),
        "mean": model.mean.detach().half().cpu().clone(),
        "components": model.components.detach().half().cpu().clone(),
        "meta": dict(meta or {}),
    }
    if model.predict is not None and model.code_scale is not None:  # small: kept in fp32
        payload["predict"] = model.predict.detach().cpu().clone()
        payload["code_scale"] = model.code_scale.detach().cpu().clone()
    torch.save(payload, str(path))


def composite_from_payload(payload: dict[str, Any], p: Path, map_location: str | torch.device = "cpu") -> CompositeFace:
    """The model of a checkpoint already read with ``weights_only=True`` (format :data:`COMPOSITE_FORMAT`,
    or :data:`CONDITIONAL_FORMAT` with ``predict`` and ``code_scale``).

    Raises:
        ValueError: a config, mean or components that do not describe a composite (one line, naming ``p``).
    """
    cfg, mean, comps = payload.get("config"), payload.get("mean"), payload.get("components")
    conditional = payload.get("format") == CONDITIONAL_FORMAT
    predict, scale = payload.get("predict"), payload.get("code_scale")
    try:
        if not conditional and (predict is not None or scale is not None):
            raise ValueError(f"predict and code_scale belong to format {CONDITIONAL_FORMAT!r} only")
        if conditional and not (isinstance(predict, Tensor) and isinstance(scale, Tensor)
                                and predict.is_floating_point() and scale.is_floating_point()):
            raise ValueError("a conditional composite needs floating-point tensors predict and code_scale")
        if not isinstance(cfg, dict):
            raise ValueError(f"the config must be a mapping, got {type(cfg).__name__}")
        known = set(CompositeConfig.__dataclass_fields__)
        if set(cfg) - known:
            raise ValueError(f"unknown config fields {sorted(set(cfg) - known)}")
        if not (isinstance(mean, Tensor) and isinstance(comps, Tensor)):
            raise ValueError("mean and components must be tensors")
        if not (mean.is_floating_point() and comps.is_floating_point()):
            raise ValueError("mean and components must be floating point")
        model = CompositeFace(mean.float(), comps.float(), CompositeConfig(**cfg),
                              predict.float() if conditional else None, scale.float() if conditional else None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p}: not a composite anonymizer: {exc}") from None
    return model.to(map_location).eval()
