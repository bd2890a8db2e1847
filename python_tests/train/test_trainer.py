"""The three-player loop: each loss goes down on a fixed batch, resume is exact, checkpoints load safely."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _tiny import tiny_config  # type: ignore[import-not-found]

from anonface.models.anonymizer import load_pretrained
from anonface.train.datasets import build_train_data
from anonface.train.trainer import Trainer


def _trainer(*extra: str) -> Trainer:
    cfg = tiny_config(*extra)
    return Trainer(cfg, build_train_data(cfg.data, seed=cfg.seed))


def _twice(t: Trainer, fn, key: str) -> tuple[float, float]:
    """Loss on a fixed batch before and after one optimiser step (the batch is re-drawn from the same seed)."""
    t.step = 11
    t._reseed()
    first = fn()[key]
    t._reseed()
    second = fn()[key]
    return first, second


def test_each_step_lowers_its_loss() -> None:
    t = _trainer("optim.lr_m=0.001", "optim.lr_d=0.001", "optim.lr_patch=0.001", "optim.lr_a=0.01")
    a, b = _twice(t, lambda: t.d_step(use_modified=True), "d_loss")
    assert b < a, ("D", a, b)
    a, b = _twice(t, t.m_step, "m_loss")
    assert b < a, ("M", a, b)
    t.m_step()
    a, b = _twice(t, t.patch_step, "p_loss")
    assert b < a, ("patch", a, b)
    a, b = _twice(t, lambda: t.a_step(anonymize=True), "a_loss")
    assert b < a, ("A", a, b)


def test_m_step_moves_only_m() -> None:
    t = _trainer()
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in t._models().items()}
    t.step = 3
    t._reseed()
    t.m_step()
    for k, m in t._models().items():
        changed = any(not torch.equal(p, q) for p, q in zip(m.parameters(), before[k]))
        assert changed == (k == "M"), k
        # M's gradient reached it through the identity, L1, patch and detection terms
    assert all(v.requires_grad for v in t._models()["D"].parameters())


def test_detection_loss_reaches_m_through_paste() -> None:
    t = _trainer("loss.id_weight=0", "loss.lambda_l1=0", "loss.lambda_low=0", "loss.gan_weight=0",
                 "loss.identity=label_free")
    t.step = 5
    t._reseed()
    m = t._models()["M"]
    rec = t.m_step()
    assert rec["m_det"] > 0
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    extra = ("d_pretrain_steps=1", "a_pretrain_steps=1", "steps=3")
    full = _trainer(*extra)
    full.fit(tmp_path / "full")
    first = _trainer(*extra, "steps=1")
    first.fit(tmp_path / "half")  # stops after step 3 of 5, with a checkpoint
    assert first.step == 3
    second = _trainer(*extra)
    second.resume(tmp_path / "half" / "last.pt")
    assert second.step == 3
    second.fit(tmp_path / "half")
    assert second.step == full.step == 5
    for k, m in full._models().items():
        for (n, p), q in zip(m.state_dict().items(), second._models()[k].state_dict().values()):
            assert torch.equal(p, q), f"{k}.{n} differs after resume"
    for k, o in full._optims().items():
        sa, sb = o.state_dict()["state"], second._optims()[k].state_dict()["state"]
        for i in sa:
            for name, v in sa[i].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb[i][name])), (k, i, name)


def test_checkpoint_is_weights_only_and_exports_m(tmp_path: Path) -> None:
    t = _trainer("steps=1")
    t.fit(tmp_path)
    sd = torch.load(str(tmp_path / "last.pt"), weights_only=True)
    assert sd["step"] == 1 and set(sd["models"]) == {"M", "D", "head", "patch", "A"}
    m = load_pretrained(tmp_path / "anonymizer.pt")
    m2 = load_pretrained(tmp_path / "last.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x), atol=2e-2, rtol=0)  # fp16 export vs fp32
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 1


def test_bad_identity_mode() -> None:
    t = _trainer("loss.identity=nonsense")
    t.step = 1
    t._reseed()
    with pytest.raises(ValueError, match="loss.identity"):
        t.m_step()


def test_init_from_copies_only_named_models(tmp_path: Path) -> None:
    a = _trainer("steps=2")
    a.fit(tmp_path / "a")
    b = _trainer(f"init_from={tmp_path / 'a' / 'last.pt'}", "init_models=[D, head]", "seed=5")
    for name in ("D", "head"):
        for p, q in zip(a._models()[name].state_dict().values(), b._models()[name].state_dict().values()):
            assert torch.equal(p, q)
    assert not all(torch.equal(p, q) for p, q in zip(a._models()["M"].parameters(), b._models()["M"].parameters()))
    assert b.step == 0
    with pytest.raises(ValueError, match="init_models"):
        _trainer(f"init_from={tmp_path / 'a' / 'last.pt'}", "init_models=[Q]")


def test_init_from_an_exported_anonymizer_sets_m_only(tmp_path: Path) -> None:
    """An exported M (the shipped weights, say) initialises M of a new run; it holds no D, and an M
    of another architecture is refused by name."""
    from anonface.models.anonymizer import save_anonymizer

    a = _trainer("seed=3")
    with torch.no_grad():
        for q in a._models()["M"].parameters():
            q.normal_()
    save_anonymizer(a._models()["M"], tmp_path / "m.pt", half=False)
    b = _trainer(f"init_from={tmp_path / 'm.pt'}", "init_models=[M]", "seed=5")
    for p, q in zip(a._models()["M"].state_dict().values(), b._models()["M"].state_dict().values()):
        assert torch.equal(p, q)
    assert not all(torch.equal(p, q) for p, q in zip(a._models()["D"].parameters(), b._models()["D"].parameters()))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        _trainer(f"init_from={tmp_path / 'm.pt'}", "init_models=[M, D]")
    with pytest.raises(ValueError, match="is not this run's"):
        _trainer(f"init_from={tmp_path / 'm.pt'}", "init_models=[M]", "anonymizer.width=12")
    # the same weights may go on with their cells shown another way (smooth instead of blocky)
    c = _trainer(f"init_from={tmp_path / 'm.pt'}", "init_models=[M]", "anonymizer.degrade_input=smooth")
    assert c.cfg.anonymizer.degrade_input == "smooth"
    for p, q in zip(a._models()["M"].state_dict().values(), c._models()["M"].state_dict().values()):
        assert torch.equal(p, q)


def test_codes_train_apart_and_consistent(tmp_path: Path) -> None:
    """With a code, the M step logs the two code losses, the modulators learn, and a code-less
    exported M starts such a run (its weights as they were, modulators added)."""
    from anonface.models.anonymizer import save_anonymizer

    plain = _trainer("seed=3")
    save_anonymizer(plain._models()["M"], tmp_path / "m.pt", half=False)
    t = _trainer("anonymizer.latent_dim=4", "loss.lambda_div=1.0", "loss.lambda_cons=0.5",
                 f"init_from={tmp_path / 'm.pt'}", "init_models=[M]", "d_pretrain_steps=1", "steps=3")
    m = t._models()["M"]
    for k, v in plain._models()["M"].state_dict().items():
        assert torch.equal(m.state_dict()[k], v)
    before = {k: v.clone() for k, v in m.state_dict().items() if k.startswith("modulate.")}
    recs = [t.train_step() for _ in range(t.total_steps)]
    game = [r for r in recs if "m_loss" in r]
    assert game and all(0 <= r["m_div"] <= 2 and 0 <= r["m_cons"] <= 2 for r in game)
    assert any(not torch.equal(m.state_dict()[k], v) for k, v in before.items())
    t.export_anonymizer(tmp_path / "coded.pt")
    with pytest.raises(ValueError, match="is not this run's"):  # a code of another length is refused
        _trainer("anonymizer.latent_dim=8", f"init_from={tmp_path / 'coded.pt'}", "init_models=[M]")


def test_m_over_a_composite_trains_toward_its_base(tmp_path: Path) -> None:
    """base: composite takes the composite file's detail (init_composite), the M step logs the L1 to
    M's own base, and M's weights move while the composite detail stays as loaded; without a composite
    file the run is refused."""
    from anonface.models.composite import CompositeConfig, CompositeFace, save_composite

    comp = CompositeFace(torch.randn(32, 32) * 0.05, torch.randn(4, 32, 32) * 0.05,
                         CompositeConfig(crop_size=32, degrade_cells=8, gain=1.5))
    save_composite(comp, tmp_path / "c.pt")
    over = ["anonymizer.degrade_cells=8", "anonymizer.latent_dim=4", "anonymizer.base=composite",
            "anonymizer.degrade_input=smooth", "loss.lambda_l1=0", "loss.lambda_base=1.0"]
    t = _trainer(*over, f"init_composite={tmp_path / 'c.pt'}", "d_pretrain_steps=1", "steps=2")
    m = t._models()["M"]
    loaded = load_pretrained(tmp_path / "c.pt")
    torch.testing.assert_close(m.composite_components, 1.5 * loaded.components)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    recs = [t.train_step() for _ in range(t.total_steps)]
    game = [r for r in recs if "m_loss" in r]
    assert game and all(r["m_base"] >= 0 and r["m_base"] == r["m_base"] for r in game)
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and not any(k.startswith("composite_") for k in changed)
    with pytest.raises(ValueError, match="init_composite"):
        _trainer(*over)
    # a file that is not a composite (an exported M) is refused, naming the option
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer, save_anonymizer

    save_anonymizer(FaceAnonymizer(AnonymizerConfig(crop_size=64, width=4, n_blocks=1)), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="init_composite: .*m.pt is not a composite"):
        _trainer(*over, f"init_composite={tmp_path / 'm.pt'}")
