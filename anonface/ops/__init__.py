"""Typed wrappers of the compiled ops in ``torch.ops.anonface``."""

from __future__ import annotations

__all__: list[str] = []
from anonface.ops.face import FaceCrop, FaceModify, FacePaste, face_crop, face_modify, face_paste  # noqa: E402

__all__ += ["face_crop", "face_paste", "face_modify", "FaceCrop", "FacePaste", "FaceModify"]
from anonface.ops.face import face_modify_, face_paste_  # noqa: E402

__all__ += ["face_paste_", "face_modify_"]
