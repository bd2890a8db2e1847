"""Training of the paper's three networks: configs, data, the three-player loop, the CLI."""

from __future__ import annotations

from anonface.train.config import DataConfig, LossConfig, OptimConfig, TrainConfig, load_config
from anonface.train.trainer import Trainer, TrainData

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "TrainConfig", "Trainer", "TrainData", "load_config"]
