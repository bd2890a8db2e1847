"""What the model configs share."""

from __future__ import annotations

import dataclasses
from typing import Any


def check_fields(cls: type, d: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``d`` has keys that are not fields of the dataclass ``cls``."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
