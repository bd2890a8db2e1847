"""A tiny synthetic training configuration shared by the training tests."""

from __future__ import annotations

from anonface.train.config import TrainConfig, load_config

TINY = [
    "data.synthetic=true", "data.action=synthetic", "data.synthetic_identities=4", "data.synthetic_images=3",
    "anonymizer.crop_size=32", "anonymizer.width=8", "anonymizer.n_blocks=1",
    "identity.widths=[8,8,16,16]", "identity.units=[1,1,1,1]", "identity.embed_dim=16",
    "identity.input_size=[32,32]", "detector.num_classes=3", "detector.widths=[8,16,16]",
    "detector.rpn_pre_nms=100", "detector.rpn_post_nms=16", "detector.rpn_batch=32", "detector.roi_batch=16",
    "detector.hidden=32", "batch_size=4", "d_batch_size=8", "action_batch_size=2", "log_every=1",
    "ckpt_every_s=0", "loss.gan_weight=0.1", "loss.lambda_low=1.0", "loss.identity=both",
]


def tiny_config(*extra: str) -> TrainConfig:
    return load_config(None, TINY + list(extra))
