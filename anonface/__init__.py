"""anonface: anonymize faces in video while keeping actions recognisable."""

from __future__ import annotations

from anonface import ops
from anonface._ext import build_info

__version__ = "0.1.0"

__all__ = ["build_info", "ops", "__version__"]

from anonface.files import anonymize_image, anonymize_video  # noqa: E402
from anonface.pipeline import Anonymizer, anonymize  # noqa: E402

__all__ += ["Anonymizer", "anonymize", "anonymize_image", "anonymize_video"]
