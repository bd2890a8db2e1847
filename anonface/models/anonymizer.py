"""M, the face anonymizer: a face crop goes in, a modified face of the same size comes out.

Convention:
    crops are ``Tensor[K, 3, S, S]`` float32, RGB, normalised with mean = std = 0.5, so values lie in
    ``[-1, 1]`` (``anonface.ops.face_crop(frames, rois, S, mean=0.5, std=0.5)`` gives exactly this).
    The output has the same shape, dtype and range.

Two generator families share one module:

* ``upsample="transpose"``: the CycleGAN-style ResNet generator of the authors' release (reflect pad,
  7x7 conv, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks with instance norm, transposed
  convs, 7x7 conv, tanh). ``AnonymizerConfig.paper()`` is the paper's 256 px / 9 block / width 64 model.
* ``upsample="nearest"``: the same encoder and residual blocks, but nearest-neighbour upsampling
  followed by a 3x3 conv, which avoids the checkerboard artefacts of transposed convs.

Options that an early feasibility probe suggested:

* ``degrade_cells > 0`` is an information bottleneck: the network sees only the face pixelated to
  ``degrade_cells x degrade_cells`` cells (plus, if ``degrade_edges``, nothing else), so the output can
  carry no more identity than that pixelated face, whatever the weights are. Privacy by construction.
* ``residual=True`` predicts a correction added (in logit space) to a base image: the smooth
  (bilinear) up-sampling of the degraded face, or the input itself when there is no bottleneck.
  This keeps pose, lighting and position.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anonface.models._config import check_fields
from anonface.models.composite import linear_detail
from anonface.models.mosaic import SmoothMosaic, pixelate, smooth_cells
from anonface.render import inverse_maps

if TYPE_CHECKING:
    from anonface.models.composite import CompositeFace

logger = logging.getLogger(__name__)

__all__ = [
    "AnonymizerConfig",
    "FaceAnonymizer",
    "build_anonymizer",
    "load_pretrained",
    "anonymizer_from_payload",
    "save_anonymizer",
    "pixelate",
    "smooth_cells",
    "SmoothMosaic",
    "CHECKPOINT_FORMAT",
    "DEFAULT_WEIGHTS",
]

CHECKPOINT_FORMAT = "anonface.anonymizer/1"
GREY_SPREAD = 0.03
"""A crop whose R, G and B differ by at most this (in M's [-1, 1] units, ~4 of 255 grey levels) at
every pixel is grey; M then draws it grey."""
CODE_POOL = 8
"""``correction='code'``: M's output is pooled to this many cells a side before the map to ``dz``."""
DEFAULT_WEIGHTS = "anonymizer.pt"


@dataclass
class AnonymizerConfig:
    """Architecture of M. Defaults are the small CPU-friendly model."""

    crop_size: int = 96
    width: int = 32
    n_blocks: int = 4
    n_down: int = 2
    upsample: Literal["transpose", "nearest"] = "nearest"
    norm: Literal["instance", "batch", "none"] = "instance"
    residual: bool = True
    degrade_cells: int = 0
    """0: no bottleneck; n > 0: the network sees the face pixelated to n x n cells."""
    degrade_input: Literal["blocky", "smooth"] = "blocky"
    """How the network sees the cells (with ``degrade_cells > 0``): ``blocky``, each cell a flat square
    (v1, v2), or ``smooth``, the cells up-sampled bilinearly (the residual base itself). The same
    information either way; the blocky squares' edges are a grid the network can draw along."""
    latent_dim: int = 0
    """0: M is a function of the crop alone; n > 0: M also takes a code ``z [K, n]`` that scales and
    shifts its features after every instance norm of the bottleneck and the decoder, so one code
    draws one made-up person (the renderer keeps a code per track)."""
    base: Literal["mosaic", "composite"] = "mosaic"
    """``mosaic``: with ``degrade_cells > 0`` M corrects the smooth mosaic (v1, v2). ``composite``: M
    sees and corrects the composite anonymizer's face for the same code (the smooth mosaic plus a
    made-up person's detail, :mod:`anonface.models.composite`), whose detail M holds as buffers
    (:meth:`FaceAnonymizer.load_composite`); needs ``degrade_cells > 0``, ``latent_dim`` = the
    composite's components and ``residual``. Still a function of the crop's cell means alone."""

    input_cells: int = 0
    """0: M sees its base. n > 0 (``base='composite'`` only, 0 < n < ``degrade_cells``): M sees the
    composite drawn over the face's coarser n x n mosaic instead, so its correction depends on the
    person through n x n cell means alone (light and skin tone, no features), while the base it
    corrects keeps the composite's ``degrade_cells`` mosaic: M cannot read more of the person than the
    composite shows."""
    correction: Literal["rgb", "luma", "code"] = "rgb"
    """How a residual M changes its base: ``rgb``, a correction per colour channel (v1, v2),
    ``luma``, one correction added to all three channels alike, so M changes light and shade but never
    the hue of its base (the face's own skin tone in the mosaic), or ``code`` (``base='composite'``
    only), no pixel correction at all: M changes the made-up person's *code*, ``z + dz`` with ``dz``
    read from its output pooled to 8x8 by one linear layer, and draws the composite's face for that
    code. Its faces are then always faces of the composite's linear model (no blotches can be drawn);
    what M learns is which made-up person suits each face's mosaic."""
    correction_max: float = 0.0
    """0: the residual correction is unbounded; c > 0: it is squashed to ``c * tanh(y / c)`` (in the
    logit space where it is added, or, for ``code``, on each component of ``dz``, in units of the
    code's own spread) so M can lighten or darken its base, or move its code, only so far."""
    code_length: Literal["free", "keep"] = "free"
    """For ``correction='code'``: ``free``, the moved code ``z + dz`` is drawn as it is; ``keep``, it is
    scaled back to the length of the track's ``z``, so M chooses which made-up person to draw (the
    code's direction) but not how far from the mean person (the composite's spread, where different
    people look least alike to a recogniser). Without a ``z`` (the mean person) the face is the mean
    person's."""

    aligned: bool = False
    """M learned on photos moved so that their faces' landmarks sit at
    :data:`anonface.render.CANONICAL_LANDMARKS` (training ``data.align``). The renderer then passes
    each face's map (``forward(..., align=)``): the crop is moved onto those landmarks, M draws, and its
    face is moved back onto the face's own."""

    @staticmethod
    def paper() -> AnonymizerConfig:
        """The ResNet generator of the authors' release: 256 px, width 64, 9 blocks, transposed convs."""
        return AnonymizerConfig(
            crop_size=256, width=64, n_blocks=9, n_down=2, upsample="transpose", norm="instance",
            residual=False, degrade_cells=0,
        )

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AnonymizerConfig:
        check_fields(AnonymizerConfig, d)
        return AnonymizerConfig(**d)

    def validate(self) -> None:
        if self.crop_size < 8 or self.crop_size % (2 ** self.n_down) != 0:
            raise ValueError(
                f"crop_size must be >= 8 and divisible by 2**n_down={2 ** self.n_down}, got {self.crop_size}"
            )
        if self.upsample not in ("transpose", "nearest"):
            raise ValueError(f"upsample must be 'transpose' or 'nearest', got {self.upsample!r}")
        if self.norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {self.norm!r}")
        if self.degrade_cells < 0:
            raise ValueError(f"degrade_cells must be >= 0, got {self.degrade_cells}")
        if self.degrade_input not in ("blocky", "smooth"):
            raise ValueError(f"degrade_input must be 'blocky' or 'smooth', got {self.degrade_input!r}")
        if isinstance(self.latent_dim, bool) or not isinstance(self.latent_dim, int) or self.latent_dim < 0:
            raise ValueError(f"latent_dim must be a whole number >= 0, got {self.latent_dim!r}")
        if self.latent_dim > 0 and self.norm != "instance":
            raise ValueError("latent_dim > 0 needs norm='instance' (the code modulates normalised features)")
        if not isinstance(self.aligned, bool):
            raise ValueError(f"aligned must be true or false, got {self.aligned!r}")
        ic = self.input_cells
        if isinstance(ic, bool) or not isinstance(ic, int) or ic < 0:
            raise ValueError(f"input_cells must be a whole number >= 0, got {ic!r}")
        if ic > 0 and not (self.base == "composite" and ic < self.degrade_cells):
            raise ValueError(f"input_cells > 0 needs base='composite' and fewer cells than degrade_cells "
                             f"({self.degrade_cells}), got {ic}")
        if self.correction not in ("rgb", "luma", "code"):
            raise ValueError(f"correction must be 'rgb', 'luma' or 'code', got {self.correction!r}")
        cmax = self.correction_max
        if isinstance(cmax, bool) or not isinstance(cmax, (int, float)) or not math.isfinite(cmax) or cmax < 0:
            raise ValueError(f"correction_max must be a finite number >= 0 (0: unbounded), got {cmax!r}")
        if (self.correction != "rgb" or cmax > 0) and not self.residual:
            raise ValueError("correction and correction_max shape a residual M's correction: they need residual=True")
        if self.base not in ("mosaic", "composite"):
            raise ValueError(f"base must be 'mosaic' or 'composite', got {self.base!r}")
        if self.base == "composite" and not (self.degrade_cells > 0 and self.latent_dim > 0 and self.residual):
            raise ValueError("base='composite' needs degrade_cells > 0, latent_dim > 0 (the composite's "
                             "components) and residual=True")
        if self.correction == "code" and self.base != "composite":
            raise ValueError("correction='code' changes the composite's code: it needs base='composite'")
        if self.code_length not in ("free", "keep"):
            raise ValueError(f"code_length must be 'free' or 'keep', got {self.code_length!r}")
        if self.code_length == "keep" and self.correction != "code":
            raise ValueError("code_length='keep' shapes the moved code: it needs correction='code'")


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    return nn.Identity()


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(norm, ch), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(norm, ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _Modulate(nn.Module):
    """Scales and shifts each channel by an affine map of the code ``z`` (``h * (1 + s(z)) + b(z)``).
    Starts close to the identity (small weights, no bias), so an M trained without a code keeps its
    drawing; not exactly the identity, since two codes drawing exactly the same face would get no
    gradient from the loss that pushes them apart."""

    def __init__(self, latent_dim: int, ch: int) -> None:
        super().__init__()
        self.affine = nn.Linear(latent_dim, 2 * ch)
        nn.init.normal_(self.affine.weight, std=0.05)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        scale, shift = self.affine(z).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class FaceAnonymizer(nn.Module):
    """M: ``Tensor[K, 3, S, S]`` in ``[-1, 1]`` -> ``Tensor[K, 3, S, S]`` in ``[-1, 1]``.

    Any square input size divisible by ``2**n_down`` works; ``crop_size`` is the size it was trained on
    and the size callers should crop to.
    """

    def __init__(self, config: AnonymizerConfig | None = None) -> None:
        super().__init__()
        cfg = config or AnonymizerConfig()
        cfg.validate()
        self.config = cfg
        self.crop_size: int = cfg.crop_size
        w = cfg.width
        bias = cfg.norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(3, w, 7, bias=bias), _norm(cfg.norm, w), nn.ReLU(inplace=True)
        ]
        ch = w
        for _ in range(cfg.n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias), _norm(cfg.norm, ch * 2),
                       nn.ReLU(inplace=True)]
            ch *= 2
        # with a code: modulators after the encoder's last norm and each decoder norm, keyed by the
        # index in ``net`` of the layer they follow (``net`` keeps the layout of a code-less M, so its
        # weights load into a model with a code)
        lat = cfg.latent_dim
        modulate: dict[str, nn.Module] = {}
        if lat > 0:
            modulate[str(len(layers) - 2)] = _Modulate(lat, ch)
        layers += [_ResBlock(ch, cfg.norm) for _ in range(cfg.n_blocks)]
        for _ in range(cfg.n_down):
            if cfg.upsample == "transpose":
                layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(ch, ch // 2, 3, bias=bias)]
            layers += [_norm(cfg.norm, ch // 2)]
            if lat > 0:
                modulate[str(len(layers) - 1)] = _Modulate(lat, ch // 2)
            layers += [nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7)]
        self.net = nn.Sequential(*layers)
        self.modulate = nn.ModuleDict(modulate)
        if cfg.base == "composite":  # the composite's detail (times its gain), set by load_composite
            self.register_buffer("composite_mean", torch.zeros(cfg.crop_size, cfg.crop_size))
            self.register_buffer("composite_components", torch.zeros(lat, cfg.crop_size, cfg.crop_size))
        if cfg.correction == "code":
            # dz = a linear map of the output pooled to CODE_POOL^2 cells; zero at the start, so M starts
            # as the composite (the output conv keeps its random start: the map's gradient needs it)
            self.code_head = nn.Linear(3 * CODE_POOL * CODE_POOL, lat)
            nn.init.zeros_(self.code_head.weight)
            nn.init.zeros_(self.code_head.bias)
        elif cfg.residual:
            # Start as the identity (or the smooth degraded face): the first steps then keep the face.
            last = self.net[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def degrade(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The network input and the residual base for crops ``x`` (both ``[K, 3, S, S]``)."""
        cells = self.config.degrade_cells
        if cells <= 0:
            return x, x
        small = pixelate(x, cells)
        smooth = smooth_cells(x, cells, small)
        if self.config.degrade_input == "smooth":
            return smooth, smooth
        return F.interpolate(small, size=x.shape[-2:], mode="nearest"), smooth

    def load_composite(self, composite: CompositeFace) -> None:
        """Take the detail of a composite anonymizer (``base='composite'``): its crop size, cells and
        number of components must be this M's; a conditional composite is refused (M's base is drawn
        from the code alone)."""
        cfg = self.config
        if cfg.base != "composite":
            raise ValueError("load_composite needs an M with base='composite'")
        c = composite.config
        if (c.crop_size, c.degrade_cells, composite.latent_dim) != (cfg.crop_size, cfg.degrade_cells, cfg.latent_dim):
            raise ValueError(f"the composite (crop {c.crop_size}, {c.degrade_cells} cells, {composite.latent_dim} "
                             f"components) does not fit this M (crop {cfg.crop_size}, {cfg.degrade_cells} cells, "
                             f"latent_dim {cfg.latent_dim})")
        if composite.conditional:
            raise ValueError("a conditional composite cannot be M's base (its detail depends on the mosaic)")
        with torch.no_grad():
            self.composite_mean.copy_(c.gain * composite.mean)
            self.composite_components.copy_(c.gain * composite.components)

    def base_image(self, x: Tensor, z: Tensor | None = None, cells: int = 0) -> Tensor:
        """What M corrects (its residual base) for crops ``x`` and codes ``z``: the smooth mosaic (or
        the crop itself without a bottleneck), or with ``base='composite'`` the composite's face
        (``cells`` > 0: drawn over the smooth mosaic of that many cells instead of ``degrade_cells``)."""
        base = smooth_cells(x, cells) if cells > 0 else self.degrade(x)[1]
        if self.config.base != "composite":
            return base
        return self._over(base, self._detail(z, int(x.shape[0])))

    def _detail(self, z: Tensor | None, n: int) -> Tensor:
        return linear_detail(self.composite_mean, self.composite_components, z, n)

    @staticmethod
    def _over(base: Tensor, detail: Tensor) -> Tensor:
        return (base + detail[:, None].to(base.dtype)).clamp(-1.0, 1.0)

    def smooth_mosaic(self) -> SmoothMosaic | None:
        """This model's input without the model (:class:`SmoothMosaic`), or None when it has no
        pixelation bottleneck. ``anonface.render`` pastes it on the faint boxes."""
        return SmoothMosaic(self).eval() if self.config.degrade_cells > 0 else None

    @property
    def aligns_to_landmarks(self) -> bool:
        """Whether the renderer should pass each face's landmark map (``config.aligned``)."""
        return bool(self.config.aligned)

    def forward(self, x: Tensor, z: Tensor | None = None,
                align: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``x [K, 3, S, S]``; ``z [K, latent_dim]`` the made-up person's code per crop (None: all
        zeros, one fixed person; only for a model with ``latent_dim > 0``).

        ``align``: ``(theta [K, 2, 3], weight [K])`` from :func:`anonface.render.align_to_landmarks`,
        only for an ``aligned`` M: each crop is moved so that its face's landmarks sit where M learned
        them, M draws, and its face is moved back; where the map reads beyond M's drawing, and by
        ``1 - weight`` (faces turned too far from frontal), the smooth mosaic is kept instead."""
        if align is not None:
            if not self.config.aligned:
                raise ValueError("align= is for an anonymizer trained aligned (config.aligned)")
            return self._aligned(x, z, align)
        return self._draw(x, z)

    def _aligned(self, x: Tensor, z: Tensor | None, align: tuple[Tensor, Tensor]) -> Tensor:
        theta, weight = align
        if x.dim() != 4 or theta.shape != (x.shape[0], 2, 3) or weight.shape != (x.shape[0],):
            raise ValueError(f"align must be (Tensor[K, 2, 3], Tensor[K]) for K = {x.shape[0] if x.dim() else '?'} "
                             f"crops, got {tuple(theta.shape)} and {tuple(weight.shape)}")
        th = theta.to(device=x.device, dtype=torch.float64)
        wt = weight.to(device=x.device, dtype=torch.float64)
        eye = torch.eye(2, 3, device=x.device, dtype=torch.float64).expand_as(th)
        ok = torch.isfinite(th).all(2).all(1) & (torch.linalg.det(th[:, :, :2]).abs() > 1e-6) & torch.isfinite(wt)
        th = torch.where(ok[:, None, None], th, eye)
        inv = inverse_maps(th)
        # a map (or its inverse) beyond the crops' own dtype would read NaN: as unusable as a NaN map
        ok &= torch.isfinite(th.to(x.dtype)).all(2).all(1) & torch.isfinite(inv.to(x.dtype)).all(2).all(1)
        th, inv = torch.where(ok[:, None, None], th, eye), torch.where(ok[:, None, None], inv, eye)
        w = torch.where(ok, wt.clamp(0, 1), torch.zeros_like(wt))
        # rows with the identity map and weight 1 are drawn exactly as without align
        still = ((th == eye).all(2).all(1) & (w == 1))[:, None, None, None]
        xf = x.contiguous()
        grid_in = F.affine_grid(inv.to(xf.dtype), list(xf.shape), align_corners=False)
        moved = F.grid_sample(xf, grid_in, mode="bilinear", padding_mode="border", align_corners=False)
        face = self._draw(torch.where(still, xf, moved), z)
        grid_out = F.affine_grid(th.to(xf.dtype), list(xf.shape), align_corners=False)
        back = F.grid_sample(face, grid_out, mode="bilinear", padding_mode="border", align_corners=False)
        inside = F.grid_sample(torch.ones_like(xf[:, :1]), grid_out, mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        _, base = self.degrade(xf)
        keep = (inside * w.to(xf.dtype)[:, None, None, None]).clamp(0, 1)
        return torch.where(still, face, torch.lerp(base, back, keep))

    def code_move(self, raw_dz: Tensor) -> Tensor:
        """``correction='code'``: the move ``dz`` of the code, the code map's output ``raw_dz``
        (``[K, latent_dim]``) squashed by ``correction_max`` (0: as it is)."""
        cmax = float(self.config.correction_max)
        return cmax * torch.tanh(raw_dz / cmax) if cmax > 0 else raw_dz

    def drawn_code(self, z: Tensor | None, dz: Tensor) -> Tensor:
        """``correction='code'``: the code whose composite face is drawn, ``z + dz`` for the track's codes
        ``z`` (None: the mean person) and the move ``dz`` (:meth:`code_move`); with
        ``code_length='keep'`` scaled back to ``|z|``."""
        code = dz if z is None else z.to(dz.dtype) + dz
        if self.config.code_length == "keep":
            # the direction is M's, the length the track's (no z: length 0, the mean person)
            length = z.to(dz.dtype).norm(dim=1, keepdim=True) if z is not None else torch.zeros_like(dz[:, :1])
            code = code * (length / code.norm(dim=1, keepdim=True).clamp_min(1e-6))
        return code

    def _draw(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be Tensor[K, 3, S, S], got shape {tuple(x.shape)}")
        lat = self.config.latent_dim
        if z is not None:
            if lat == 0:
                raise ValueError("this anonymizer takes no code z (latent_dim = 0)")
            if z.shape != (x.shape[0], lat):
                raise ValueError(f"z must be Tensor[{x.shape[0]}, {lat}], got shape {tuple(z.shape)}")
        if x.shape[0] == 0:
            return x.clone()
        m = 2 ** self.config.n_down
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"x spatial size must be divisible by {m}, got {tuple(x.shape[-2:])}")
        x = x.contiguous()  # channels-last inputs crash conv backward in torch 2.13 CPU
        if self.config.base == "composite":
            # M corrects the composite's face and sees it (or the same detail over a coarser mosaic)
            detail, mosaic = self._detail(z, int(x.shape[0])), self.degrade(x)[1]
            base = self._over(mosaic, detail)
            ic = self.config.input_cells
            net_in = self._over(smooth_cells(x, ic), detail) if ic else base
        else:
            net_in, base = self.degrade(x)
        if lat > 0:
            code = (z if z is not None else x.new_zeros(x.shape[0], lat)).to(x.dtype)
            y = net_in
            for i, layer in enumerate(self.net):
                y = layer(y)
                if str(i) in self.modulate:
                    y = self.modulate[str(i)](y, code)
        else:
            y = self.net(net_in)
        if self.config.correction == "code":
            code = self.drawn_code(z, self.code_move(self.code_head(F.adaptive_avg_pool2d(y, CODE_POOL).flatten(1))))
            return self._over(mosaic, self._detail(code, int(x.shape[0])))
        # a grey face (a grey video, an infrared camera) stays grey: M's change of a grey crop is the same
        # on R, G and B (rgb M painted colour onto grey faces); a luma correction is grey already
        if self.config.correction == "rgb":
            grey = (x.amax(1) - x.amin(1)).flatten(1).amax(1) <= GREY_SPREAD
            if bool(grey.any()):
                y = torch.where(grey[:, None, None, None], y.mean(1, keepdim=True).expand_as(y), y)
        if self.config.residual:
            if self.config.correction == "luma":
                y = y.mean(1, keepdim=True)
            cmax = float(self.config.correction_max)
            if cmax > 0:
                y = cmax * torch.tanh(y / cmax)
            return torch.tanh(torch.atanh(base.clamp(-0.995, 0.995)) + y)
        return torch.tanh(y)


def build_anonymizer(config: AnonymizerConfig | dict[str, Any] | None = None) -> FaceAnonymizer:
    """Build M from a config (dataclass or dict)."""
    if isinstance(config, dict):
        config = AnonymizerConfig.from_dict(config)
    return FaceAnonymizer(config)


def save_anonymizer(model: FaceAnonymizer, path: str | Path, *, half: bool = True,
                    meta: dict[str, Any] | None = None) -> None:
    """Write M as a small self-describing checkpoint (config + state dict, fp16 when ``half``)."""
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
          for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": dataclasses.asdict(model.config),
        "state_dict": sd,
        "meta": dict(meta or {}),
    }
    torch.save(payload, str(path))


def _default_weights_path() -> Path:
    return Path(str(resources.files("anonface.weights").joinpath(DEFAULT_WEIGHTS)))


def _load_tensors_only(p: Path, map_location: str | torch.device) -> Any:
    """``torch.load`` with ``weights_only=True``, its failures as one-line ValueErrors.

    Torch's own message for a file holding other Python objects advises loading it with
    ``weights_only=False``, which runs whatever code the file carries: that advice is never
    passed on for a file the user may not have made.
    """
    import pickle
    import re

    try:
        return torch.load(str(p), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it refers to the Python object {found.group(1)})" if found else ""
        raise ValueError(
            f"{p} is not a safe anonymizer checkpoint: it is corrupt or holds Python objects other than "
            f"tensors and plain data{what}; loading those could run code, so it is refused. Use a "
            "checkpoint written by anonface (save_anonymizer or anonface train)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"{p} cannot be read as a PyTorch checkpoint: {first}") from None


def load_pretrained(
    path: str | Path | None = None, map_location: str | torch.device = "cpu"
) -> FaceAnonymizer | CompositeFace:
    """Load a trained anonymizer M in eval mode.

    Args:
        path: a checkpoint written by :func:`save_anonymizer`, a training checkpoint of
            ``anonface train`` (``last.pt``), or a composite model
            (:func:`anonface.models.composite.save_composite`, loaded as its ``CompositeFace``).
            ``None`` loads the checkpoint shipped inside the package, ``anonface/weights/anonymizer.pt``.
        map_location: device for the weights.

    Returns:
        The module, in eval mode, float32, with ``crop_size`` set. It maps crops ``[K, 3, S, S]``
        normalised with mean = std = 0.5 to the same shape and range.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the file is not an anonymizer checkpoint: unreadable, holding Python
            objects other than tensors and plain data (refused: unpickling them could run
            code; there is no option to trust such a file), or with a config or weights that
            do not describe an anonymizer. The message is one line.
    """
    p = _default_weights_path() if path is None else Path(path)
    if not p.is_file():
        where = "shipped with the package" if path is None else "given"
        raise FileNotFoundError(
            f"anonymizer checkpoint {where} not found at {p}; train one with `anonface train` and pass "
            "its path, or use a hand-crafted method (blur, pixelate, solid, noise)"
        )
    return anonymizer_from_payload(_load_tensors_only(p, map_location), p, map_location)


def anonymizer_from_payload(
    payload: Any, p: Path, map_location: str | torch.device = "cpu"
) -> FaceAnonymizer | CompositeFace:
    """:func:`load_pretrained` for a checkpoint already read (``torch.load(..., weights_only=True)``)
    from ``p`` (named in the errors); the same checks, the same ValueErrors."""
    if isinstance(payload, dict) and payload.get("format") == "anonface.train/1":
        # a full training checkpoint: take M out of it
        cfg, models = payload.get("config"), payload.get("models")
        if not (isinstance(cfg, dict) and isinstance(models, dict) and "anonymizer" in cfg and "M" in models):
            raise ValueError(f"{p} is a training checkpoint without an anonymizer (config['anonymizer'] and "
                             "models['M'])")
        payload = {"format": CHECKPOINT_FORMAT, "config": cfg["anonymizer"], "state_dict": models["M"]}
    from anonface.models.composite import COMPOSITE_FORMAT, CONDITIONAL_FORMAT, composite_from_payload

    if isinstance(payload, dict) and payload.get("format") in (COMPOSITE_FORMAT, CONDITIONAL_FORMAT):
        return composite_from_payload(payload, p, map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{p} is not an anonymizer checkpoint (expected format {CHECKPOINT_FORMAT!r}, got {got!r})")
    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict):
        raise ValueError(f"{p}: the checkpoint's config must be a mapping of AnonymizerConfig fields, "
                         f"got {type(config).__name__}")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ValueError(f"{p}: the checkpoint's state_dict must map parameter names to tensors")
    try:
        cfg_obj = AnonymizerConfig.from_dict(config)
        for f in dataclasses.fields(AnonymizerConfig):
            value, want = getattr(cfg_obj, f.name), type(getattr(AnonymizerConfig(), f.name))
            if type(value) is not want:
                raise ValueError(f"{f.name} must be {want.__name__}, got {value!r}")
        cfg_obj.validate()
        model = build_anonymizer(cfg_obj)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{p}: the checkpoint's config does not describe an anonymizer: {exc}") from None
    sd = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{p}: the weights do not fit the model its config describes ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(wrong)} of the wrong shape, e.g. "
                         f"{(missing + unexpected + wrong)[:3]})")
    model.load_state_dict(sd)
    model.to(map_location)
    model.eval()
    logger.info("loaded anonymizer from %s (crop_size=%d)", p, model.crop_size)
    return model
