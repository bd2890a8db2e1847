"""Training of the paper's three networks: configs, data, the three-player loop, the CLI.

Imports are lazy so that ``anonface.train.cli`` (registered by the ``anonface`` command) stays cheap
and does not pull in the models until ``anonface train`` runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "TrainConfig", "Trainer", "TrainData", "load_config"]

_WHERE = {
    "DataConfig": "anonface.train.config",
    "LossConfig": "anonface.train.config",
    "OptimConfig": "anonface.train.config",
    "TrainConfig": "anonface.train.config",
    "load_config": "anonface.train.config",
    "Trainer": "anonface.train.trainer",
    "TrainData": "anonface.train.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'anonface.train' has no attribute {name!r}")
