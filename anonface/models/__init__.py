"""The paper's three networks: the anonymizer M, the identity discriminator D and the action detector A."""

from __future__ import annotations

from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer, build_anonymizer, load_pretrained
from anonface.models.identity import IdentityConfig, IdentityNet, MarginHead, build_identity

__all__ = [
    "AnonymizerConfig",
    "FaceAnonymizer",
    "build_anonymizer",
    "load_pretrained",
    "IdentityConfig",
    "IdentityNet",
    "MarginHead",
    "build_identity",
]
