"""Evaluation of anonymization methods with judges the project did not train.

* privacy: re-identification by dlib's face recogniser on LFW pairs (:mod:`anonface.eval.privacy`);
* naturalness: is the anonymized face still detected as a face, and do its landmarks stay put;
* utility: action-detection frame-mAP of a detector trained on anonymized frames (:mod:`anonface.eval.utility`);
* speed: frames per second of each method (:mod:`anonface.eval.speed`).

Run it with ``anonface evaluate`` or ``python -m anonface.eval``; from Python, :func:`evaluate`.
The judge needs the optional extra: ``pip install 'anonface[eval]'``.
"""

from __future__ import annotations

from anonface.eval._deps import EvalExtraMissing
from anonface.eval.methods import MethodSpec, default_methods, parse_methods
from anonface.eval.metrics import PairOutcome, Rate, landmark_displacement, reid_rate, verification_accuracy
from anonface.eval.run import EvalConfig, evaluate

__all__ = [
    "EvalConfig",
    "EvalExtraMissing",
    "MethodSpec",
    "PairOutcome",
    "Rate",
    "default_methods",
    "evaluate",
    "landmark_displacement",
    "parse_methods",
    "reid_rate",
    "verification_accuracy",
]
