"""Configs: YAML + overrides, unknown keys refused, shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonface.train.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_roundtrip() -> None:
    cfg = TrainConfig()
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_yaml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nsteps: 7\nanonymizer:\n  width: 8\nloss:\n  lambda_l1: 3\n")
    cfg = load_config(p, ["loss.lambda_l1=0.5", "anonymizer.degrade_cells=12", "identity.input_size=[32, 32]",
                          "optim.betas=[0.5, 0.9]"])
    assert cfg.name == "x" and cfg.steps == 7 and cfg.anonymizer.width == 8
    assert cfg.loss.lambda_l1 == 0.5 and isinstance(cfg.loss.lambda_l1, float)
    assert cfg.anonymizer.degrade_cells == 12 and cfg.identity.input_size == (32, 32)
    assert cfg.optim.betas == (0.5, 0.9)


def test_unknown_keys_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("loss:\n  lambda_l2: 3\n")
    with pytest.raises(ValueError, match="lambda_l2"):
        load_config(p)
    with pytest.raises(ValueError, match="stpes"):
        load_config(None, ["stpes=3"])
    with pytest.raises(ValueError, match="key.sub=value"):
        apply_overrides({}, ["nonsense"])


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    import yaml

    cfg = load_config(path)
    cfg.anonymizer.validate()
    # Every value the file sets is what the loaded config holds (the rest are defaults).
    raw = yaml.safe_load(path.read_text())
    loaded = config_to_dict(cfg)
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                got = loaded[key][sub]
                assert (list(got) if isinstance(got, (list, tuple)) else got) == v, (key, sub)
        else:
            assert loaded[key] == value, key


def test_paper_config_is_the_release_generator() -> None:
    cfg = load_config(REPO / "configs" / "paper.yaml")
    a = cfg.anonymizer
    assert (a.crop_size, a.width, a.n_blocks, a.upsample, a.residual) == (256, 64, 9, "transpose", False)
    assert cfg.loss.identity == "adversarial" and cfg.optim.betas[0] == 0.5


@pytest.mark.parametrize("override", [
    "loss.lambda_div=-0.1", "loss.lambda_div=.nan", "loss.lambda_div=.inf", "loss.lambda_div=abc",
    "loss.lambda_div=true", "loss.lambda_cons=-1", "loss.div_margin=1.5", "loss.div_margin=-2",
    "loss.id_margin=.nan", "loss.cons_jitter=-0.01", "loss.cons_jitter=0.6", "loss.lambda_l1=1e400",
    "loss.gan_weight=-1", "anonymizer.latent_dim=-1", "anonymizer.latent_dim=2.5", "anonymizer.latent_dim=x",
    "anonymizer.latent_dim=true", "anonymizer.degrade_input=bicubic", "anonymizer.degrade_input=5",
    "loss.lambda_base=.nan", "loss.lambda_base=-0.5", "loss.lambda_base=.inf",
    "anonymizer.aligned=1", "anonymizer.aligned=yes!", "data.align=0", "data.align=[true]",
])
def test_bad_loss_and_code_values_are_refused_at_load(override: str) -> None:
    """A NaN or negative weight would train on a NaN or inverted loss, a margin beyond a cosine's range
    fail only at the first M step (after D's pre-training): refused when the config is read."""
    field = override.split("=")[0].split(".")[-1]
    with pytest.raises(ValueError, match=field):
        load_config(None, [override])


def test_loss_and_code_values_at_their_bounds_load() -> None:
    cfg = load_config(None, ["loss.lambda_div=0", "loss.div_margin=-1", "loss.id_margin=1", "loss.cons_jitter=0.5",
                             "loss.lambda_cons=1000000.0", "anonymizer.latent_dim=0"])
    assert (cfg.loss.lambda_div, cfg.loss.div_margin, cfg.loss.cons_jitter, cfg.anonymizer.latent_dim) == (0, -1, 0.5, 0)


@pytest.mark.parametrize("overrides", [["data.align=true"], ["anonymizer.aligned=true"],
                                       ["data.align=false", "anonymizer.aligned=true"]])
def test_alignment_of_data_and_model_must_agree(overrides: list[str]) -> None:
    """An aligned M learns on moved photos and is drawn onto landmarks: one without the other would
    train on faces placed unlike those it draws (refused, naming both options)."""
    with pytest.raises(ValueError, match=r"data\.align .* anonymizer\.aligned"):
        load_config(None, overrides)


def test_aligned_recipe_loads() -> None:
    cfg = load_config(REPO / "configs" / "lfw_aligned.yaml")
    assert cfg.data.align and cfg.anonymizer.aligned and cfg.data.face_box == "pipeline"
