"""Utility: action-detection frame-mAP (IoU 0.5) of the action detector trained and tested on frames
anonymized by each method, as in the paper.

This part stands on the training side of the project: the action detector (``anonface.models.action``),
its training code (``anonface.train``) and the VOC-style frame-mAP (``anonface.eval.frame_map``). They are
imported lazily; when one is missing, every row's utility is reported as unavailable with the reason,
never as a number.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from anonface.eval.methods import AnonymizeFn, MethodSpec

logger = logging.getLogger(__name__)

__all__ = ["utility_unavailable_reason", "run_utility"]

# What this module needs from the training side: (module, attribute) pairs.
_REQUIRED: tuple[tuple[str, str], ...] = (
    ("anonface.eval.frame_map", "frame_map"),
    ("anonface.models.action", "build_action_detector"),
    ("anonface.train.action", "train_action_detector"),
)


def utility_unavailable_reason() -> str | None:
    """None when the action detector, its training and frame-mAP are importable; else why not."""
    for mod, attr in _REQUIRED:
        try:
            m = importlib.import_module(mod)
        except ImportError as e:
            return f"{mod} is not available ({e.__class__.__name__}: {e})"
        if not hasattr(m, attr):
            return f"{mod}.{attr} is not available in this build"
    return None


def run_utility(methods: Sequence[tuple[MethodSpec, AnonymizeFn]], data_dir: Path | None, *,
                steps: int = 200, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Frame-mAP per method label; a row is ``{"frame_map": float, ...}`` or ``{"unavailable": reason}``."""
    reason = utility_unavailable_reason()
    if reason is None and data_dir is None:
        reason = "no action-detection data (JHMDB layout or JSON) was found"
    if reason is not None:
        logger.warning("utility (action frame-mAP) skipped: %s", reason)
        return {spec.label: {"unavailable": reason} for spec, _ in methods}
    # The training side's API has not landed yet; refuse rather than guess at it.
    reason = "the action detector's training API is present but not yet wired into the evaluation"
    return {spec.label: {"unavailable": reason} for spec, _ in methods}
