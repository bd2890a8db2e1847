"""Training configuration: nested dataclasses, loaded from YAML files with ``key.sub=value`` overrides.

A YAML file holds a (partial) :class:`TrainConfig`; missing fields keep their defaults. Overrides use
dotted paths and YAML values: ``--set loss.lambda_l1=2.0 --set anonymizer.degrade_cells=12``.
Unknown keys are errors, so a typo cannot silently train the wrong model.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anonface.models.action.detector import DetectorConfig
from anonface.models.anonymizer import AnonymizerConfig
from anonface.models.identity import IdentityConfig

__all__ = [
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
]


@dataclass
class DataConfig:
    """Where the faces and the action frames come from. Paths are relative to the shared data root
    (``$ANONFACE_DATA`` or ``<repo>/../shared/data``) unless absolute; ``synthetic`` replaces all of
    them by generated data (tests)."""

    synthetic: bool = False
    identity_roots: list[str] = field(default_factory=lambda: ["lfw_identities_extra"])
    """LFW-layout folders of labelled 250x250 faces (identities for D; faces for M)."""
    lfw_pairs: str | None = "lfw_pairs"
    """an LFW pairs folder (pairs.txt, images_250_gray, aligned_112_color); its train folds add faces."""
    train_folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    heldout_folds: list[int] = field(default_factory=lambda: [5, 6])
    """identities of these folds never enter training (they are measured on)."""
    colour_share: float = 0.3
    """share of each face batch drawn from the colour faces: the aligned colour crops of the train
    folds, or the photos of ``colour_roots`` when given."""
    colour_roots: list[str] = field(default_factory=list)
    """LFW-layout folders of 250x250 colour photos with their surroundings (e.g.
    ``faces_color_context/lfw_250_color``), used instead of the tight aligned colour crops; held-out
    identities are removed as everywhere, and a photo whose crop box holds more than
    ``max_black_share`` pure-black pixels (the alignment's wedges at the border) is skipped."""
    max_black_share: float = 0.02
    min_images: int = 2
    """identities with fewer images get no class label (they still train M)."""
    image_size: int = 160
    crop_jitter: float = 0.08
    face_box: str = "legacy"
    """crop geometry of the training faces: ``legacy`` (a fixed 140x160 box in the 250x250 LFW frame,
    ~1.3x a detector box; aligned colour crops whole) or ``pipeline`` (CenterFace's median LFW box
    enlarged like ``anonface.pipeline.scale_boxes(..., mask_scale=1.3)``, i.e. 1.6x: the box the
    inference pipeline crops; see :func:`anonface.data.lfw.lfw_face_box`)."""
    align: bool = False
    """move every photo (rotation, uniform scale, shift) so that the five landmarks CenterFace finds on
    its face sit at :data:`anonface.render.CANONICAL_LANDMARKS` in its crop box, for an M with
    ``anonymizer.aligned`` (see :func:`anonface.train.datasets.align_photos`)."""
    action: str | None = None
    """action frames: a JHMDB clip (``.avi`` with ``*_joint_positions.mat`` beside it) or a JSON file
    in the format of :mod:`anonface.data.actions`; None trains M and D only."""
    action_size: int = 160
    """action frames are resized so that their longer side has this many pixels."""
    synthetic_identities: int = 6
    synthetic_images: int = 4


@dataclass
class LossConfig:
    """Weights of the M, D and A objectives."""

    identity: str = "label_free"
    """``adversarial`` (-cls(D(M f), y), the paper), ``label_free`` (relu(cos(D(M f), D(f)) - margin)),
    or ``both``."""
    id_weight: float = 1.0
    id_margin: float = 0.1
    lambda_l1: float = 1.0
    """L1(M f, f) at full resolution."""
    lambda_base: float = 0.0
    """L1(M f, M's residual base): keeps M near what it corrects (with ``anonymizer.base='composite'``,
    the composite's made-up face, not the person's own)."""
    lambda_low: float = 0.0
    """L1 between ``low_cells x low_cells`` cell means of M f and f (keeps layout and shading)."""
    low_cells: int = 12
    gan_weight: float = 0.0
    """weight of a least-squares PatchGAN realism term (0 disables the patch discriminator)."""
    det_weight: float = 1.0
    lambda_div: float = 0.0
    """For an M with a code (``anonymizer.latent_dim > 0``): two codes on the same face should draw two
    different people (to D): ``relu(sqrt(2 - 2 div_margin) - |e1 - e2|)`` for the unit embeddings
    ``e1, e2`` of ``D(M(f, z1)), D(M(f, z2))``, i.e. zero once their cosine is below ``div_margin``."""
    div_margin: float = 0.3
    lambda_cons: float = 0.0
    """For an M with a code: ``1 - cos(D(M(f, z)), D(M(f', z)))`` with ``f'`` the face re-cropped
    with a jitter of ``cons_jitter`` of its size: one code keeps one person as the box moves."""
    cons_jitter: float = 0.06
    d_on_modified: bool = True
    """the D step also classifies M(f) with f's label (the paper's D step)."""

    def validate(self) -> None:
        """Weights are finite numbers >= 0, margins cosines in [-1, 1], the re-crop jitter in [0, 0.5]
        (a NaN weight would train on a NaN loss, a margin beyond 1 fail only at the first M step)."""
        ranges = {"id_weight": (0, math.inf), "lambda_l1": (0, math.inf), "lambda_low": (0, math.inf),
                  "lambda_base": (0, math.inf),
                  "gan_weight": (0, math.inf), "det_weight": (0, math.inf), "lambda_div": (0, math.inf),
                  "lambda_cons": (0, math.inf), "id_margin": (-1, 1), "div_margin": (-1, 1),
                  "cons_jitter": (0, 0.5)}
        for name, (lo, hi) in ranges.items():
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
            if not ok:
                raise ValueError(f"loss.{name} must be a finite number in [{lo}, {hi}], got {v!r}")


@dataclass
class OptimConfig:
    lr_m: float = 2e-4
    lr_d: float = 2e-4
    lr_patch: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_a: float = 0.01
    momentum_a: float = 0.9
    weight_decay_a: float = 1e-4
    grad_clip: float = 10.0


@dataclass
class TrainConfig:
    name: str = "anonface"
    seed: int = 0
    out_dir: str = "runs/anonface"
    steps: int = 1000
    """M steps (after D's pre-training)."""
    d_pretrain_steps: int = 0
    a_pretrain_steps: int = 0
    d_steps_per_m: int = 1
    batch_size: int = 16
    d_batch_size: int = 64
    action_batch_size: int = 2
    log_every: int = 20
    ckpt_every_s: float = 180.0
    ckpt_every_steps: int = 0
    time_limit_s: float = 0.0
    """stop (with a checkpoint) after this much wall time in this process; 0 = no limit."""
    threads: int = 0
    """torch intra-op threads; 0 leaves torch's default."""
    init_from: str | None = None
    """a training checkpoint to take initial weights from (e.g. a pre-trained D); not a resume."""
    init_models: list[str] = field(default_factory=lambda: ["D", "head"])
    """which of its models (M, D, head, patch, A) to copy."""
    init_composite: str | None = None
    """with ``anonymizer.base: composite``: the composite file (``tools/build_composite.py``) whose
    detail M's base draws; its ``latent_dim`` must be the composite's components."""
    anonymizer: AnonymizerConfig = field(default_factory=AnonymizerConfig)
    identity: IdentityConfig = field(default_factory=lambda: IdentityConfig(input_size=(64, 64)))
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):  # true is no number
        return float(value)
    return value


def _build(cls: type, d: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown keys {sorted(unknown)} (known: {sorted(names)})")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in d.items()}
    return cls(**kwargs)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    cfg = _build(TrainConfig, d)
    cfg.anonymizer.validate()
    cfg.loss.validate()
    if not isinstance(cfg.data.align, bool):
        raise ValueError(f"data.align must be true or false, got {cfg.data.align!r}")
    if cfg.data.align != cfg.anonymizer.aligned:
        raise ValueError(f"data.align ({cfg.data.align}) and anonymizer.aligned ({cfg.anonymizer.aligned}) must "
                         "agree: an aligned M learns on moved photos and is drawn onto landmarks at inference")
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (lists instead of tuples), safe for YAML and ``weights_only`` checkpoints."""

    def conv(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        return x

    return conv(dataclasses.asdict(cfg))


def apply_overrides(d: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for ov in overrides:
        if "=" not in ov:
            raise ValueError(f"override must look like key.sub=value, got {ov!r}")
        key, raw = ov.split("=", 1)
        parts = key.strip().split(".")
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {ov!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return d


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file (if any), then the overrides."""
    d = config_to_dict(TrainConfig())
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        _merge(d, loaded, str(path))
    apply_overrides(d, overrides)
    return config_from_dict(d)


def _merge(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for k, v in new.items():
        if k not in base:
            raise ValueError(f"{where}: unknown key {k!r} (known: {sorted(base)})")
        if isinstance(v, dict) and isinstance(base[k], dict):
            _merge(base[k], v, f"{where}:{k}")
        else:
            base[k] = v
