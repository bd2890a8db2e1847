"""M: shapes, range, the bottleneck, checkpoint round trip and load_pretrained."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import logit_change

from anonface.models import anonymizer as am
from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer, load_pretrained, save_anonymizer


def _crops(k: int, s: int) -> torch.Tensor:
    return torch.rand(k, 3, s, s) * 2 - 1


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
@pytest.mark.parametrize("residual", [True, False])
def test_shapes_dtype_range(upsample: str, residual: bool) -> None:
    cfg = AnonymizerConfig(crop_size=32, width=8, n_blocks=1, upsample=upsample, residual=residual)
    m = FaceAnonymizer(cfg).eval()
    x = _crops(3, 32)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.abs().max()) <= 1.0
    assert m(torch.zeros(0, 3, 32, 32)).shape == (0, 3, 32, 32)


def test_residual_starts_as_identity() -> None:
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, residual=True)).eval()
    x = _crops(2, 32) * 0.9
    torch.testing.assert_close(m(x), x, atol=1e-5, rtol=1e-5)


def test_bottleneck_output_depends_only_on_cells() -> None:
    """With degrade_cells=4 two inputs with equal 4x4 cell means give the same output."""
    cfg = AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4, residual=True)
    m = FaceAnonymizer(cfg).eval()
    torch.nn.init.normal_(m.net[-1].weight, std=0.1)
    # float64: in float32 the cell means of x and x + noise differ by rounding, which the network
    # amplified past 1e-5 on about one seed in twelve
    m, x = m.double(), _crops(2, 32).double() * 0.5
    # zero-mean perturbation inside each 8x8 cell
    noise = torch.randn(2, 3, 4, 4, 8, 8, dtype=torch.float64)
    noise = noise - noise.mean(dim=(-1, -2), keepdim=True)
    noise = noise.permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 32, 32) * 0.3
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x + noise), atol=1e-10, rtol=0)
        assert not torch.allclose(m(x), x, atol=1e-2)


def test_smooth_input_shows_the_cells_up_sampled_bilinearly() -> None:
    """``degrade_input: smooth``: the network's input is the residual base itself (no square edges),
    still a function of the cell means alone; ``blocky`` (the default, v1/v2) keeps the flat squares."""
    x = _crops(2, 32)
    smooth = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4,
                                             degrade_input="smooth"))
    blocky = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4))
    s_in, s_base = smooth.degrade(x)
    b_in, b_base = blocky.degrade(x)
    torch.testing.assert_close(s_in, s_base, atol=0, rtol=0)
    torch.testing.assert_close(s_base, b_base, atol=0, rtol=0)
    cells = am.pixelate(x, 4)
    torch.testing.assert_close(b_in, cells.repeat_interleave(8, -1).repeat_interleave(8, -2), atol=0, rtol=0)
    assert (s_in - b_in).abs().max() > 0.05
    # same weights either way: one loads into the other, key for key
    keys = smooth.load_state_dict(blocky.state_dict())
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    assert all(torch.equal(p, q) for p, q in zip(smooth.parameters(), blocky.parameters()))
    with pytest.raises(ValueError, match="degrade_input"):
        AnonymizerConfig(degrade_cells=4, degrade_input="bicubic").validate()


def test_checkpoint_without_degrade_input_loads_as_blocky(tmp_path: Path) -> None:
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4))
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["config"]["degrade_input"]  # as v1 / v2 were written
    torch.save(payload, tmp_path / "old.pt")
    assert load_pretrained(tmp_path / "old.pt").config.degrade_input == "blocky"


def test_bad_input() -> None:
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1))
    with pytest.raises(ValueError, match="Tensor\\[K, 3, S, S\\]"):
        m(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="divisible"):
        m(torch.rand(1, 3, 30, 30))
    with pytest.raises(ValueError, match="crop_size"):
        AnonymizerConfig(crop_size=30).validate()


def test_paper_config_shapes() -> None:
    cfg = AnonymizerConfig.paper()
    assert (cfg.crop_size, cfg.width, cfg.n_blocks, cfg.upsample) == (256, 64, 9, "transpose")
    small = dataclasses.replace(cfg, crop_size=64, width=8, n_blocks=2)
    y = FaceAnonymizer(small)(_crops(1, 64))
    assert y.shape == (1, 3, 64, 64)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    cfg = AnonymizerConfig(crop_size=32, width=8, n_blocks=1, residual=False)
    m = FaceAnonymizer(cfg).eval()
    p = tmp_path / "m.pt"
    save_anonymizer(m, p, half=False)
    m2 = load_pretrained(p)
    assert not m2.training and m2.crop_size == 32
    x = _crops(2, 32)
    torch.testing.assert_close(m2(x), m(x))
    save_anonymizer(m, p, half=True)
    torch.testing.assert_close(load_pretrained(p)(x), m(x), atol=2e-2, rtol=0)


def test_load_pretrained_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pretrained(tmp_path / "nope.pt")
    monkeypatch.setattr(am, "_default_weights_path", lambda: tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_pretrained()


def test_load_pretrained_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.pt"
    torch.save({"format": "something-else"}, str(p))
    with pytest.raises(ValueError, match="not an anonymizer checkpoint"):
        load_pretrained(p)


def test_shipped_checkpoint() -> None:
    """The shipped weights load and keep a face's coarse structure (low-frequency content)."""
    m = load_pretrained()
    s = m.crop_size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    blob = (0.8 - 1.6 * ((xx / 0.7) ** 2 + (yy / 0.9) ** 2)).clamp(-0.8, 0.8)
    x = blob.expand(2, 3, s, s).contiguous() + 0.05 * torch.randn(2, 3, s, s)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and float(y.abs().max()) <= 1
    lo = torch.nn.functional.adaptive_avg_pool2d
    # coarse layout (bright centre, dark corners) survives
    assert float((lo(y, 4) - lo(x, 4)).abs().mean()) < 0.35


def test_configs_reject_unknown_fields() -> None:
    from anonface.models.action.detector import DetectorConfig
    from anonface.models.anonymizer import AnonymizerConfig
    from anonface.models.identity import IdentityConfig

    for cls in (AnonymizerConfig, IdentityConfig, DetectorConfig):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: unknown fields \['bogus'\]"):
            cls.from_dict({"bogus": 1})
    assert AnonymizerConfig.from_dict({"crop_size": 64}).crop_size == 64


def _coded(latent: int = 6) -> FaceAnonymizer:
    cfg = AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4, latent_dim=latent)
    m = FaceAnonymizer(cfg).eval()
    torch.nn.init.normal_(m.net[-1].weight, std=0.1)  # a drawing that is not the base alone
    return m


def test_code_draws_another_face_of_the_same_input() -> None:
    """With a code, M's output depends on it (two codes, two faces; one code, one face), and still
    only on the input's cells (the bottleneck holds whatever the code is)."""
    m = _coded()
    for mod in m.modulate.values():
        torch.nn.init.normal_(mod.affine.weight, std=0.5)
    x = _crops(3, 32) * 0.5
    z1, z2 = torch.randn(3, 6), torch.randn(3, 6)
    with torch.no_grad():
        a, b, a2 = m(x, z1), m(x, z2), m(x, z1.clone())
    assert torch.equal(a, a2)
    assert float((a - b).abs().amax(dim=(1, 2, 3)).min()) > 1e-3
    noise = torch.randn(3, 3, 4, 4, 8, 8)
    noise = (noise - noise.mean(dim=(-1, -2), keepdim=True)).permute(0, 1, 2, 4, 3, 5).reshape(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x + 0.3 * noise, z1), a, atol=1e-4, rtol=1e-4)
    assert a.shape == x.shape and float(a.abs().max()) <= 1.0


def test_code_less_weights_load_into_a_model_with_a_code() -> None:
    """The modulators keep ``net``'s layout: a code-less M's weights load as they are, and the
    model draws with the code 0 exactly what the code-less one did."""
    plain = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4)).eval()
    torch.nn.init.normal_(plain.net[-1].weight, std=0.1)
    coded = _coded()
    missing, unexpected = coded.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("modulate.") for k in missing)
    x = _crops(2, 32) * 0.5
    with torch.no_grad():
        torch.testing.assert_close(coded(x), plain(x), atol=1e-6, rtol=0)  # z = 0: exactly the plain model


def test_code_bad_input(tmp_path: Path) -> None:
    m = _coded()
    x = _crops(2, 32)
    for z in (torch.randn(2, 5), torch.randn(3, 6), torch.randn(6)):
        with pytest.raises(ValueError, match="z must be"):
            m(x, z)
    plain = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1))
    with pytest.raises(ValueError, match="takes no code"):
        plain(x, torch.randn(2, 6))
    with pytest.raises(ValueError, match="latent_dim"):
        AnonymizerConfig(latent_dim=-1).validate()
    with pytest.raises(ValueError, match="latent_dim"):
        AnonymizerConfig(latent_dim=4, norm="batch").validate()
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    back = load_pretrained(tmp_path / "m.pt")
    z = torch.randn(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(back(x, z), m(x, z))


def _aligned_m() -> FaceAnonymizer:
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=8, aligned=True)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)  # a residual M starts as its mosaic: give it something of its own to draw
    return m


def test_aligned_m_draws_moved_crops_and_moves_its_face_back() -> None:
    """``align=``: the identity map with weight 1 draws exactly as without; a map moves what M draws
    (M's face read through it equals M's face of the moved crop, read back); weight 0, a NaN map or a
    singular one give the smooth mosaic alone; a map for an M trained unaligned is refused."""
    import torch.nn.functional as F

    m = _aligned_m()
    assert m.aligns_to_landmarks and not FaceAnonymizer(AnonymizerConfig(crop_size=32)).aligns_to_landmarks
    x = _crops(5, 32)
    theta = torch.eye(2, 3).repeat(5, 1, 1)
    weight = torch.ones(5)
    theta[1, :, 2] = torch.tensor([0.1, -0.05])  # shifted
    ang = 0.2
    theta[2, :, :2] = 0.9 * torch.tensor([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    weight[3] = 0.0
    theta[4] = float("nan")
    with torch.no_grad():
        plain, moved = m(x), m(x, align=(theta, weight))
        _, mosaic = m.degrade(x)
        assert torch.equal(moved[0], plain[0])
        assert torch.equal(moved[3], mosaic[3]) and torch.equal(moved[4], mosaic[4])
        # the shifted row: M's face of the crop read through the inverse map, read back through theta
        th = theta[1:2]
        inv = torch.cat([torch.eye(2)[None], -th[:, :, 2:]], 2)
        face = m(F.grid_sample(x[1:2], F.affine_grid(inv, [1, 3, 32, 32], align_corners=False),
                               padding_mode="border", align_corners=False))
        back = F.grid_sample(face, F.affine_grid(th, [1, 3, 32, 32], align_corners=False),
                             padding_mode="border", align_corners=False)
        inner = (slice(None), slice(None), slice(6, 26), slice(6, 26))  # where the map reads inside the crop
        assert torch.allclose(moved[1:2][inner], back[inner], atol=1e-5)
        assert not torch.allclose(moved[1:3], plain[1:3], atol=1e-2)
        singular = theta.clone()
        singular[1, :, :2] = 0
        assert torch.equal(m(x, align=(singular, weight))[1], mosaic[1])
    with pytest.raises(ValueError, match="aligned"):
        FaceAnonymizer(AnonymizerConfig(crop_size=32, degrade_cells=8))(x, align=(theta, weight))
    with pytest.raises(ValueError, match="align"):
        m(x, align=(theta[:2], weight))


@pytest.mark.parametrize(("scale", "w", "drawn"), [
    (1.0, -1.0, False), (1.0, float("nan"), False), (1.0, float("inf"), False), (1.0, 5.0, True),
    (1e30, 1.0, False), (1e40, 1.0, False), (1e-5, 1.0, False), (float("-inf"), 1.0, False)])
def test_aligned_m_under_hostile_maps_keeps_the_mosaic(scale: float, w: float, drawn: bool) -> None:
    """Maps scaled by ``scale`` with weight ``w``: a negative, NaN or infinite weight, a map so large
    that it or its inverse overflows the crops' float32 (1e40), one that reads everything from outside
    the crop (1e30), a near-singular one (1e-5) or an infinite one give the smooth mosaic, finite; a
    weight above 1 counts as 1 (with the identity map: M's face as without ``align``)."""
    m = _aligned_m()
    x = _crops(3, 32)
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(3, 1, 1)
    theta[:, :, :2] *= scale
    with torch.no_grad():
        out = m(x, align=(theta, torch.full((3,), w, dtype=torch.float64)))
        want = m(x) if drawn else m.degrade(x)[1]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_aligned_must_be_a_bool(bad: object) -> None:
    with pytest.raises(ValueError, match="aligned"):
        AnonymizerConfig(crop_size=32, aligned=bad).validate()  # type: ignore[arg-type]


def test_aligned_m_round_trips(tmp_path: Path) -> None:
    m = _aligned_m()
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    back = load_pretrained(tmp_path / "m.pt")
    assert back.aligns_to_landmarks
    x = _crops(2, 32)
    theta = torch.eye(2, 3).repeat(2, 1, 1)
    theta[:, 0, 2] = 0.1
    align = (theta, torch.ones(2))
    with torch.no_grad():
        torch.testing.assert_close(back(x, align=align), m(x, align=align))


# ---- how a residual M may change its base: anonymizer.correction / correction_max ----


def _shaded(correction: str = "rgb", cmax: float = 0.0) -> FaceAnonymizer:
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4, degrade_input="smooth",
                                        correction=correction, correction_max=cmax)).eval()
    torch.nn.init.normal_(m.net[-1].weight, std=0.1)
    torch.nn.init.normal_(m.net[-1].bias, std=0.1)
    return m


def _logit_change(m: FaceAnonymizer, x: torch.Tensor) -> torch.Tensor:
    return logit_change(m.double(), x.double())


def test_luma_correction_shades_but_never_tints() -> None:
    """``correction: luma`` adds one change to R, G and B alike (no coloured blotches); ``rgb`` (v1, v2)
    changes each channel on its own. Same weights in both: the luma change is the rgb one's mean."""
    x = _crops(3, 32) * 0.5
    rgb, luma = _shaded("rgb"), _shaded("luma")
    luma.load_state_dict(rgb.state_dict())
    d_rgb, d_luma = _logit_change(rgb, x), _logit_change(luma, x)
    assert float((d_rgb[:, 0] - d_rgb[:, 1]).abs().max()) > 0.05  # rgb: the channels differ
    for c in (1, 2):
        torch.testing.assert_close(d_luma[:, c], d_luma[:, 0], atol=1e-9, rtol=0)
    torch.testing.assert_close(d_luma[:, 0], d_rgb.mean(1), atol=1e-9, rtol=0)


@pytest.mark.parametrize("cmax", [0.2, 0.6])
def test_correction_max_bounds_the_change(cmax: float) -> None:
    x = _crops(3, 32) * 0.8
    m = _shaded("rgb", cmax)
    with torch.no_grad():
        m.net[-1].bias.fill_(50.0)  # a huge correction everywhere
    d = _logit_change(m, x)
    assert float(d.abs().max()) <= cmax + 1e-9
    assert float(d.min()) > cmax * 0.99  # squashed to the bound, not lost
    free = _shaded("rgb", 0.0)
    free.load_state_dict(m.state_dict())
    assert float(_logit_change(free, x).min()) > 1.0  # without the bound the same weights go far beyond it


@pytest.mark.parametrize("field, bad", [("correction", "hsv"), ("correction", None), ("correction_max", -0.1),
                                        ("correction_max", float("nan")), ("correction_max", float("inf")),
                                        ("correction_max", True), ("correction_max", "0.5")])
def test_correction_options_reject_bad_values(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=field):
        AnonymizerConfig(crop_size=32, **{field: bad}).validate()  # type: ignore[arg-type]


@pytest.mark.parametrize("field, value", [("correction", "luma"), ("correction_max", 0.5)])
def test_correction_options_need_a_residual_m(field: str, value: object) -> None:
    with pytest.raises(ValueError, match="residual"):
        AnonymizerConfig(crop_size=32, residual=False, **{field: value}).validate()  # type: ignore[arg-type]


def test_correction_options_round_trip_and_old_checkpoints_load_as_rgb(tmp_path: Path) -> None:
    m = _shaded("luma", 0.6)
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    back = load_pretrained(tmp_path / "m.pt")
    assert (back.config.correction, back.config.correction_max) == ("luma", 0.6)
    x = _crops(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    for k in ("correction", "correction_max"):
        del payload["config"][k]
    torch.save(payload, tmp_path / "old.pt")
    old = load_pretrained(tmp_path / "old.pt")
    assert (old.config.correction, old.config.correction_max) == ("rgb", 0.0)


@pytest.mark.parametrize("residual", [True, False])
def test_grey_faces_stay_grey(residual: bool) -> None:
    """A grey crop (grey video, infrared) comes out grey from an rgb M, which painted colour onto grey
    faces; a colour crop in the same batch keeps its per-channel change."""
    m = FaceAnonymizer(AnonymizerConfig(crop_size=32, width=8, n_blocks=1, degrade_cells=4 if residual else 0,
                                        residual=residual)).eval()
    torch.nn.init.normal_(m.net[-1].weight, std=0.3)
    torch.nn.init.normal_(m.net[-1].bias, std=0.3)
    grey = _crops(2, 32)[:, :1].expand(-1, 3, -1, -1) * 0.8
    near_grey = grey + (torch.rand(2, 3, 32, 32) - 0.5) * 0.025  # channels up to 0.025 apart: within GREY_SPREAD
    colour = _crops(2, 32) * 0.8
    with torch.no_grad():
        out = m(torch.cat([grey, near_grey, colour]))
    spread = out.amax(1) - out.amin(1)
    assert float(spread[:2].max()) < 1e-5  # exactly grey in, grey out
    assert float(spread[2:4].max()) < 0.05  # the base's own small spread at most
    assert float(spread[4:].mean()) > 0.1
    just_over = grey.clone()
    just_over[:, 0, 0, 0] += am.GREY_SPREAD * 2  # one pixel off grey: a colour crop
    with torch.no_grad():
        assert float((m(just_over).amax(1) - m(just_over).amin(1)).mean()) > 0.05
