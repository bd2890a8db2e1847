"""Typed wrappers of the compiled ops in ``torch.ops.anonface``."""

from __future__ import annotations

__all__: list[str] = []
