"""The composite anonymizer: its formula, privacy by construction, checkpoints (shipped and hostile),
and the ``composite`` method through the pipeline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import logit_change

from anonface.models.anonymizer import SmoothMosaic, load_pretrained, smooth_cells  # re-exported there
from anonface.models.composite import (
    COMPOSITE_FORMAT,
    CONDITIONAL_FORMAT,
    CompositeConfig,
    CompositeFace,
    composite_weights_path,
    mosaic_features,
    save_composite,
)


def _model(k: int = 4, s: int = 64, cells: int = 12, gain: float = 2.0) -> CompositeFace:
    mean = (torch.rand(s, s) - 0.5) * 0.2
    comps = (torch.rand(k, s, s) - 0.5) * 0.1
    return CompositeFace(mean, comps, CompositeConfig(crop_size=s, degrade_cells=cells, gain=gain)).eval()


def _crops(n: int, s: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, s, s) * 1.6 - 0.8


def _zero_cell_mean(r: torch.Tensor, cells: int) -> torch.Tensor:
    """``r`` projected onto the inputs whose ``cells x cells`` adaptive means are all zero (64 px crops
    do not split evenly into 12 cells, so this is a least-squares projection, not a per-cell shift)."""
    s = r.shape[-1]
    basis = torch.eye(s * s, dtype=torch.float64).view(s * s, 1, s, s)
    a = F.adaptive_avg_pool2d(basis, cells).view(s * s, cells * cells)  # pixel -> cell weights
    flat = r.double().reshape(-1, s * s).T
    coef = torch.linalg.solve(a.T @ a, a.T @ flat)
    return (flat - a @ coef).T.reshape(r.shape).to(r.dtype)


def test_output_is_the_formula() -> None:
    m = _model()
    x, z = _crops(3), torch.randn(3, 4)
    want = smooth_cells(x, 12) + 2.0 * (m.mean + torch.einsum("nk,khw->nhw", z, m.components))[:, None]
    torch.testing.assert_close(m(x, z), want.clamp(-1, 1))
    torch.testing.assert_close(m(x), (smooth_cells(x, 12) + 2.0 * m.mean).clamp(-1, 1))  # no code: the mean
    assert m(x).shape == x.shape and float(m(x, z).abs().max()) <= 1.0
    assert m(torch.zeros(0, 3, 64, 64)).shape == (0, 3, 64, 64)


def test_output_depends_only_on_the_cells() -> None:
    """Privacy by construction: two faces with the same 12x12 cell means get the same drawn face,
    whatever their detail, while other cell means give another face."""
    m = _model()
    x, z = _crops(2), torch.randn(2, 4)
    h = _zero_cell_mean(torch.randn_like(x) * 0.3, 12)
    assert float(h.abs().max()) > 0.1  # a large change of the face ...
    torch.testing.assert_close(F.adaptive_avg_pool2d(x + h, 12), F.adaptive_avg_pool2d(x, 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(m(x + h, z), m(x, z), atol=2e-5, rtol=0)  # ... that does not show
    assert float((m(x + 0.2, z) - m(x, z)).abs().mean()) > 0.1  # the cells themselves do


def test_codes_pick_people() -> None:
    m = _model()
    x = _crops(1).expand(2, -1, -1, -1)
    z = torch.randn(2, 4)
    y = m(x, z)
    assert float((y[0] - y[1]).abs().mean()) > 1e-3, "two codes, two faces"
    torch.testing.assert_close(m(x, z), y)  # deterministic
    assert m.latent_dim == 4


@pytest.mark.parametrize("bad", ["shape", "channels", "size", "z_shape", "z_nan", "z_for_none"])
def test_forward_refuses(bad: str) -> None:
    m = _model()
    x, z = _crops(2), torch.randn(2, 4)
    if bad == "shape":
        x = x[0]
    elif bad == "channels":
        x = x[:, :1]
    elif bad == "size":
        x = _crops(2, 32)
    elif bad == "z_shape":
        z = torch.randn(2, 3)
    elif bad == "z_nan":
        z[1, 0] = math.nan
    elif bad == "z_for_none":
        m = _model(k=0)
    with pytest.raises(ValueError):
        m(x, z)


def test_smooth_mosaic_is_the_base() -> None:
    m = _model()
    x = _crops(3)
    mosaic = m.smooth_mosaic()
    assert isinstance(mosaic, SmoothMosaic) and mosaic.crop_size == 64
    torch.testing.assert_close(mosaic(x), smooth_cells(x, 12))


def test_round_trip(tmp_path: Path) -> None:
    m = _model(gain=3.0)
    p = tmp_path / "c.pt"
    save_composite(m, p, meta={"photos": 5})
    raw = torch.load(p, weights_only=True)
    assert raw["format"] == COMPOSITE_FORMAT and raw["mean"].dtype == torch.float16
    back = load_pretrained(p)
    assert isinstance(back, CompositeFace) and not back.training
    assert back.config == m.config and back.latent_dim == 4
    torch.testing.assert_close(back.mean, m.mean.half().float())
    torch.testing.assert_close(back.components, m.components.half().float())


def test_shipped_model() -> None:
    """The shipped file loads, draws within range, and depends on the code."""
    p = composite_weights_path()
    assert p.is_file(), "anonface/weights/composite.pt is shipped with the package"
    m = load_pretrained(p)
    assert isinstance(m, CompositeFace) and m.crop_size == 64 and m.config.degrade_cells == 12
    assert m.latent_dim >= 1 and bool(torch.isfinite(m.components).all())
    x = _crops(2)
    y = m(x, torch.randn(2, m.latent_dim))
    assert y.shape == x.shape and float(y.abs().max()) <= 1.0
    # the drawn detail is a face's: darker eyes than cheeks in the mean (rows ~40% down the crop)
    eyes = m.mean[24:30, 18:28].mean()
    cheeks = m.mean[36:42, 14:22].mean()
    assert float(eyes) < float(cheeks)


def _payload(**change) -> dict:
    d = {"format": COMPOSITE_FORMAT, "config": {"crop_size": 16, "degrade_cells": 4, "gain": 2.0},
         "mean": torch.zeros(16, 16).half(), "components": torch.zeros(2, 16, 16).half(), "meta": {}}
    for k, v in change.items():
        if k in ("crop_size", "degrade_cells", "gain", "extra"):
            d["config"] = {**d["config"], k: v}
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("change", [
    {"gain": 0.0}, {"gain": -1.0}, {"gain": math.nan}, {"gain": math.inf}, {"gain": 11.0}, {"gain": True},
    {"gain": "2"}, {"degrade_cells": 0}, {"degrade_cells": 17}, {"degrade_cells": 4.0}, {"crop_size": 4},
    {"extra": 1}, {"config": [1, 2]}, {"mean": torch.zeros(8, 8)}, {"mean": torch.full((16, 16), math.nan)},
    {"components": torch.zeros(2, 8, 8)}, {"components": torch.zeros(16, 16)}, {"components": [0.0]},
    {"mean": torch.zeros(16, 16, dtype=torch.int64)}, {"components": torch.full((1, 16, 16), math.inf)},
], ids=lambda c: "-".join(f"{k}={v if not isinstance(v, torch.Tensor) else tuple(v.shape)}" for k, v in c.items()))
def test_hostile_checkpoints_are_refused(tmp_path: Path, change: dict) -> None:
    p = tmp_path / "bad.pt"
    torch.save(_payload(**change), p)
    with pytest.raises(ValueError, match="not a composite anonymizer"):
        load_pretrained(p)


@pytest.mark.parametrize("cells", [17, 24, 64])
def test_a_mosaic_finer_than_the_tool_allows_is_refused(tmp_path: Path, cells: int) -> None:
    """A file whose mosaic has more cells than pixelation may use (16) would draw over the face
    itself (64 cells on a 64 px crop: every pixel): refused, whatever its crop size."""
    p = tmp_path / "fine.pt"
    torch.save(_payload(crop_size=64, degrade_cells=cells, mean=torch.zeros(64, 64),
                        components=torch.zeros(2, 64, 64)), p)
    with pytest.raises(ValueError, match="degrade_cells"):
        load_pretrained(p)
    with pytest.raises(ValueError, match="degrade_cells"):
        CompositeConfig(crop_size=64, degrade_cells=cells).validate()
    CompositeConfig(crop_size=64, degrade_cells=16).validate()  # the finest allowed


def test_good_payload_loads(tmp_path: Path) -> None:
    """The hostile cases above differ from this one in one value only."""
    p = tmp_path / "good.pt"
    torch.save(_payload(), p)
    m = load_pretrained(p)
    assert isinstance(m, CompositeFace) and m.crop_size == 16 and m.latent_dim == 2


# -- through the pipeline -----------------------------------------------------------------------

BOX = np.array([[30.0, 20.0, 70.0, 60.0, 0.9]], np.float32)


def test_composite_method_draws_the_shipped_model() -> None:
    from anonface import Anonymizer

    rng = np.random.default_rng()
    frames = rng.integers(0, 256, (2, 80, 100, 3), dtype=np.uint8)
    anon = Anonymizer("composite", boxes=[BOX, BOX], device="cpu", temporal_smoothing=0)
    assert isinstance(anon.model, CompositeFace)
    out = anon(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    # the face (box centre) is replaced; far from the box the frame is untouched
    c = out[:, 35:45, 45:55].astype(int) - frames[:, 35:45, 45:55]
    assert np.abs(c).mean() > 20
    np.testing.assert_array_equal(out[:, :, :5], frames[:, :, :5])
    # the same as learned given the same model
    same = Anonymizer("learned", boxes=[BOX, BOX], device="cpu", temporal_smoothing=0,
                      checkpoint=composite_weights_path())(frames)
    np.testing.assert_array_equal(out, same)


def test_composite_face_ignores_the_face_detail() -> None:
    """End to end: two frames whose faces differ only in fine detail (a frame with the face, one
    with that face blurred to its 12x12 means) come out nearly alike, unlike the untouched pair."""
    from anonface import Anonymizer

    rng = np.random.default_rng()
    frame = rng.integers(60, 200, (1, 80, 100, 3), dtype=np.uint8)
    blurred = frame.copy()
    # replace the box's pixels by the means of 4x4 blocks: fine detail gone, cell means (12 cells over
    # the 1.6x crop: ~5 px) nearly kept
    y1, y2, x1, x2 = 20, 60, 30, 70
    block = frame[0, y1:y2, x1:x2].reshape(10, 4, 10, 4, 3).mean((1, 3), keepdims=True)
    blurred[0, y1:y2, x1:x2] = np.broadcast_to(block, (10, 4, 10, 4, 3)).reshape(40, 40, 3).round().astype(np.uint8)
    a = Anonymizer("composite", boxes=[BOX], device="cpu", temporal_smoothing=0)(frame)
    b = Anonymizer("composite", boxes=[BOX], device="cpu", temporal_smoothing=0)(blurred)
    inside = (slice(None), slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))
    untouched = np.abs(frame[inside].astype(int) - blurred[inside]).mean()
    drawn = np.abs(a[inside].astype(int) - b[inside]).mean()
    # measured: ~33 grey levels apart untouched, ~1.6 drawn (the cell means move a little)
    assert untouched > 20 and drawn < untouched / 10, (untouched, drawn)


def test_composite_method_draws_one_person_per_track() -> None:
    from anonface import Anonymizer

    frames = np.full((2, 80, 200, 3), 128, np.uint8)  # two identical grey faces side by side
    other = BOX + np.array([[100.0, 0.0, 100.0, 0.0, 0.0]], np.float32)
    both = np.concatenate([BOX, other])
    out = Anonymizer("composite", boxes=[both, both], device="cpu", temporal_smoothing=0)(frames)
    left, right = out[:, 25:55, 35:65].astype(int), out[:, 25:55, 135:165].astype(int)
    assert np.abs(left - right).mean() > 1.0, "two tracks, two made-up people"
    np.testing.assert_array_equal(out[0], out[1])  # one track keeps its person (no smoothing needed)


def test_composite_with_a_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from anonface import Anonymizer

    with pytest.raises(RuntimeError, match="checkpoint"):
        Anonymizer("composite", boxes=[BOX], device="cpu", checkpoint=tmp_path / "nope.pt")


@pytest.mark.parametrize("strength", [0, -1.0, math.nan, 3.0, 1e9])
def test_composite_takes_no_strength(strength: float) -> None:
    from anonface import Anonymizer

    with pytest.raises(ValueError, match="does not apply"):
        Anonymizer("composite", boxes=[BOX], device="cpu", strength=strength)


def test_either_method_takes_either_checkpoint() -> None:
    """--method composite with M's weights draws M's faces, and --method learned with the composite
    file draws the composite: the method names the default file, the checkpoint decides the model."""
    from anonface import Anonymizer
    from anonface.models.anonymizer import FaceAnonymizer, _default_weights_path

    m = Anonymizer("composite", boxes=[BOX], device="cpu", checkpoint=_default_weights_path())
    assert isinstance(m.model, FaceAnonymizer)
    assert isinstance(Anonymizer("learned", boxes=[BOX], device="cpu", checkpoint=composite_weights_path()).model,
                      CompositeFace)


# ---- the conditional composite (format anonface.composite/2): part of the person from the mosaic ----


def _conditional(k: int = 4, s: int = 64, cells: int = 12) -> CompositeFace:
    base = _model(k, s, cells)
    predict = torch.randn(k, cells * cells + 1) * 0.5
    scale = torch.rand(k) + 0.2
    return CompositeFace(base.mean, base.components, base.config, predict, scale).eval()


def test_mosaic_features_are_the_normalised_grey_cells() -> None:
    x = _crops(3)
    f = mosaic_features(x, 12)
    g = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 12).flatten(1)
    g = g - g.mean(1, keepdim=True)
    want = torch.cat([g / (g.pow(2).mean(1, keepdim=True).sqrt() + 0.05), torch.ones(3, 1)], 1)
    torch.testing.assert_close(f, want)
    # light does not count, and contrast only through the small floor of the spread
    torch.testing.assert_close(mosaic_features(x + 0.1, 12), f, atol=1e-5, rtol=0)
    faces = F.interpolate(torch.rand(3, 3, 6, 6) * 1.6 - 0.8, size=(64, 64), mode="bilinear")  # cells that differ
    a, b = mosaic_features(faces, 12), mosaic_features(0.5 * faces, 12)
    assert float(F.cosine_similarity(a[:, :-1], b[:, :-1]).min()) > 0.999  # the same pattern
    assert float((b[:, :-1].norm(dim=1) / a[:, :-1].norm(dim=1)).min()) > 0.7  # near its size (0.5 without)
    flat = mosaic_features(torch.full((1, 3, 64, 64), 0.3), 12)  # no contrast at all: finite, all zero
    assert torch.isfinite(flat).all() and float(flat[0, :-1].abs().max()) < 1e-5


def test_conditional_output_is_the_formula() -> None:
    m = _conditional()
    x, z = _crops(3), torch.randn(3, 4)
    w = mosaic_features(x, 12) @ m.predict.T + z * m.code_scale
    want = smooth_cells(x, 12) + 2.0 * (m.mean + torch.einsum("nk,khw->nhw", w, m.components))[:, None]
    torch.testing.assert_close(m(x, z), want.clamp(-1, 1))
    w0 = mosaic_features(x, 12) @ m.predict.T  # no code: the person the mosaic predicts
    want0 = smooth_cells(x, 12) + 2.0 * (m.mean + torch.einsum("nk,khw->nhw", w0, m.components))[:, None]
    torch.testing.assert_close(m(x), want0.clamp(-1, 1))
    assert m.conditional and not _model().conditional


def test_conditional_output_depends_only_on_the_cells() -> None:
    """Privacy by construction holds for the conditional model too: the prediction reads the cells."""
    m = _conditional()
    x, z = _crops(2), torch.randn(2, 4)
    h = _zero_cell_mean(torch.randn_like(x) * 0.3, 12)
    assert float(h.abs().max()) > 0.1
    torch.testing.assert_close(m(x + h, z), m(x, z), atol=5e-5, rtol=0)
    # while the cells' pattern (not just their level) moves the predicted person
    other = torch.roll(x, 20, dims=3)
    assert float((m(other, z) - smooth_cells(other, 12) - (m(x, z) - smooth_cells(x, 12))).abs().mean()) > 1e-3


def test_conditional_round_trip_and_format(tmp_path: Path) -> None:
    m = _conditional()
    p = tmp_path / "c2.pt"
    save_composite(m, p)
    raw = torch.load(p, weights_only=True)
    assert raw["format"] == CONDITIONAL_FORMAT and raw["predict"].dtype == torch.float32
    back = load_pretrained(p)
    assert isinstance(back, CompositeFace) and back.conditional
    x, z = _crops(2), torch.randn(2, 4)
    torch.testing.assert_close(back(x, z), m(x, z), atol=2e-3, rtol=0)  # fp16 components


@pytest.mark.parametrize("bad", ["no_scale", "no_predict", "predict_shape", "scale_shape", "nan", "negative",
                                 "int", "v1_with_predict"])
def test_hostile_conditional_files_are_refused(tmp_path: Path, bad: str) -> None:
    m = _conditional()
    p = tmp_path / "c2.pt"
    save_composite(m, p)
    d = torch.load(p, weights_only=True)
    if bad == "no_scale":
        del d["code_scale"]
    elif bad == "no_predict":
        del d["predict"]
    elif bad == "predict_shape":
        d["predict"] = torch.zeros(4, 144)
    elif bad == "scale_shape":
        d["code_scale"] = torch.ones(5)
    elif bad == "nan":
        d["predict"][0, 0] = math.nan
    elif bad == "negative":
        d["code_scale"][1] = -0.5
    elif bad == "int":
        d["code_scale"] = torch.ones(4, dtype=torch.int64)
    elif bad == "v1_with_predict":
        d["format"] = COMPOSITE_FORMAT
    torch.save(d, p)
    with pytest.raises(ValueError) as err:
        load_pretrained(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


# ---- M drawing over the composite (AnonymizerConfig.base = "composite") --------------------------


def _m_over(composite: CompositeFace, **kw) -> torch.nn.Module:
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer

    cfg = AnonymizerConfig(crop_size=64, width=8, n_blocks=1, degrade_cells=12, degrade_input="smooth",
                           latent_dim=composite.latent_dim, base="composite", **kw)
    m = FaceAnonymizer(cfg)
    m.load_composite(composite)
    return m.eval()


def test_m_over_the_composite_starts_as_the_composite() -> None:
    comp = _model()
    m = _m_over(comp)
    x, z = _crops(3), torch.randn(3, 4)
    torch.testing.assert_close(m.base_image(x, z), comp(x, z))
    # the residual's last conv starts at zero: M's first face is the composite's (through tanh/atanh)
    torch.testing.assert_close(m(x, z), comp(x, z).clamp(-0.995, 0.995), atol=1e-5, rtol=0)


def test_m_over_the_composite_depends_only_on_the_cells() -> None:
    """Privacy by construction: with any weights, M over the composite reads the crop's cell means only."""
    m = _m_over(_model())
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    x, z = _crops(2), torch.randn(2, 4)
    h = _zero_cell_mean(torch.randn_like(x) * 0.3, 12)
    assert float(h.abs().max()) > 0.1
    with torch.no_grad():
        torch.testing.assert_close(m(x + h, z), m(x, z), atol=1e-4, rtol=0)
        assert float((m(x + 0.2, z) - m(x, z)).abs().mean()) > 1e-3


def test_m_over_the_composite_round_trip(tmp_path: Path) -> None:
    from anonface.models.anonymizer import save_anonymizer

    m = _m_over(_model())
    p = tmp_path / "m.pt"
    save_anonymizer(m, p, half=False)
    back = load_pretrained(p)
    x, z = _crops(2), torch.randn(2, 4)
    torch.testing.assert_close(back(x, z), m(x, z))
    assert back.config.base == "composite" and float(back.composite_components.abs().max()) > 0


@pytest.mark.parametrize("bad", ["no_cells", "no_code", "not_residual", "unknown"])
def test_m_over_the_composite_config_is_checked(bad: str) -> None:
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer

    kw = {"crop_size": 64, "degrade_cells": 12, "latent_dim": 4, "base": "composite"}
    kw.update({"no_cells": {"degrade_cells": 0}, "no_code": {"latent_dim": 0}, "not_residual": {"residual": False},
               "unknown": {"base": "painting"}}[bad])
    with pytest.raises(ValueError):
        FaceAnonymizer(AnonymizerConfig(**kw))


def test_m_over_the_composite_refuses_a_composite_that_does_not_fit() -> None:
    from anonface.models.anonymizer import AnonymizerConfig, FaceAnonymizer

    m = _m_over(_model())
    with pytest.raises(ValueError, match="does not fit"):
        m.load_composite(_model(k=5))
    with pytest.raises(ValueError, match="does not fit"):
        m.load_composite(_model(cells=8))
    with pytest.raises(ValueError, match="conditional"):
        m.load_composite(_conditional())
    with pytest.raises(ValueError, match="base='composite'"):
        FaceAnonymizer(AnonymizerConfig(crop_size=64, degrade_cells=12, latent_dim=4)).load_composite(_model())


def test_m_seeing_coarse_cells_corrects_by_them_alone() -> None:
    """``input_cells: 4``: M's correction reads the person through 4x4 cell means only; the base it
    corrects is still the composite over the 12x12 mosaic. Two crops with the same 4x4 means but other
    12x12 means get the same correction (in the logit space where it is added) on other bases."""
    m = _m_over(_model(), input_cells=4, correction_max=1.0).double()  # bounded: tanh never saturates
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    x, z = _crops(2).double() * 0.5, torch.randn(2, 4, dtype=torch.float64)
    h = _zero_cell_mean(torch.randn_like(x) * 0.3, 4)  # changes 12x12 means, keeps the 4x4 ones
    assert float((F.adaptive_avg_pool2d(h, 12)).abs().max()) > 0.02

    def change(model: torch.nn.Module, v: torch.Tensor) -> torch.Tensor:
        return logit_change(model, v, z)

    torch.testing.assert_close(change(m, x + h), change(m, x), atol=1e-8, rtol=0)
    assert float(change(m, x).abs().mean()) > 1e-3  # a correction is drawn
    with torch.no_grad():
        assert float((m(x + h, z) - m(x, z)).abs().mean()) > 1e-3  # on the 12x12 base, which differs
    free = _m_over(_model(), input_cells=0, correction_max=1.0).double()
    free.load_state_dict(m.state_dict())  # same weights, seeing the 12x12 composite: the correction differs
    assert float((change(free, x + h) - change(free, x)).abs().max()) > 1e-3


@pytest.mark.parametrize("cells, base", [(-1, "composite"), (12, "composite"), (20, "composite"), (4, "mosaic"),
                                         (True, "composite"), (2.5, "composite")])
def test_input_cells_is_checked(cells: object, base: str) -> None:
    from anonface.models.anonymizer import AnonymizerConfig

    with pytest.raises(ValueError, match="input_cells"):
        AnonymizerConfig(crop_size=64, degrade_cells=12, latent_dim=4, base=base, input_cells=cells).validate()


# ---- M choosing the made-up person (correction = "code") ----


def _code_m(comp: CompositeFace, cmax: float = 0.0, input_cells: int = 0, length: str = "free") -> torch.nn.Module:
    """An M over ``comp`` that changes the code, with random weights everywhere (the code map too)."""
    m = _m_over(comp, correction="code", correction_max=cmax, input_cells=input_cells, code_length=length).double()
    with torch.no_grad():
        m.code_head.weight.normal_(std=0.05)
        m.code_head.bias.normal_(std=0.5)
    return m


def _code_of(comp: CompositeFace, x: torch.Tensor, out: torch.Tensor) -> tuple:
    """The code whose composite face ``out`` is (least squares on its detail) and the residual."""
    detail = (out - smooth_cells(x, 12)).mean(1) / comp.config.gain - comp.mean.double()  # [K, S, S]
    a = comp.components.double().flatten(1).T  # [S*S, k]
    w = torch.linalg.lstsq(a, detail.flatten(1).T).solution.T  # [K, k]
    return w, (detail.flatten(1) - w @ a.T).abs().max()


def test_code_m_starts_as_the_composite() -> None:
    comp = _model()
    m = _m_over(comp, correction="code", correction_max=1.0)
    x, z = _crops(3), torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(m(x, z), comp(x, z))  # dz = 0: exactly the composite, no tanh round trip


def test_code_m_draws_only_faces_of_the_linear_model() -> None:
    """Whatever its weights, a code M's face is the composite's face for some code ``z + dz``: the
    mosaic plus a mix of the composite's components (nothing drawn per pixel, so no blotches), and
    the code moves (dz != 0) with the face's mosaic."""
    comp = _model()
    m = _code_m(comp)
    x, z = _crops(3).double() * 0.4, torch.randn(3, 4, dtype=torch.float64)  # small: nothing clamps
    with torch.no_grad():
        out = m(x, z)
    w, resid = _code_of(comp, x, out)
    assert float(resid) < 1e-9
    dz = w - z
    assert float(dz.abs().min()) > 1e-4  # the code did move
    assert float((dz[0] - dz[1]).abs().max()) > 1e-4  # and moves differently for another face
    assert (out - m.base_image(x, z)).abs().mean() > 1e-4


@pytest.mark.parametrize("cmax", [0.5, 2.0])
def test_code_m_moves_the_code_only_so_far(cmax: float) -> None:
    comp = _model()
    m = _code_m(comp, cmax)
    with torch.no_grad():
        m.code_head.bias.fill_(50.0)  # a huge move
    x, z = _crops(2).double() * 0.3, torch.zeros(2, 4, dtype=torch.float64)
    with torch.no_grad():
        w, _ = _code_of(comp, x, m(x, z))
    assert float(w.abs().max()) <= cmax + 1e-6 and float(w.min()) > cmax * 0.99


def test_code_m_keeping_the_length_moves_only_the_direction() -> None:
    """``code_length: keep``: the drawn code has the track's code's length, points elsewhere than it,
    and is the composite's face for that code; M still starts as the composite; no z: the mean person."""
    comp = _model()
    m = _code_m(comp, 1.0, length="keep")
    x, z = _crops(3).double() * 0.4, torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        out = m(x, z)
        free = _code_m(comp, 1.0)
        free.load_state_dict(m.state_dict())
        out_free = free(x, z)
    w, resid = _code_of(comp, x, out)
    assert float(resid) < 1e-9
    torch.testing.assert_close(w.norm(dim=1), z.norm(dim=1), atol=1e-9, rtol=0)
    cos = (w * z).sum(1) / (w.norm(dim=1) * z.norm(dim=1))
    assert float(cos.max()) < 1 - 1e-6  # the direction moved
    w_free, _ = _code_of(comp, x, out_free)  # the same direction as the free code
    torch.testing.assert_close(w / w.norm(dim=1, keepdim=True), w_free / w_free.norm(dim=1, keepdim=True),
                               atol=1e-9, rtol=0)
    with torch.no_grad():
        mean_person = m(x, None)
    torch.testing.assert_close(mean_person, comp(x, None).double(), atol=1e-6, rtol=0)
    start = _m_over(comp, correction="code", correction_max=1.0, code_length="keep")
    xf, zf = _crops(2), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(start(xf, zf), comp(xf, zf), atol=1e-6, rtol=0)


@pytest.mark.parametrize("length, correction", [("far", "code"), (None, "code"), ("keep", "rgb")])
def test_code_length_is_checked(length: object, correction: str) -> None:
    from anonface.models.anonymizer import AnonymizerConfig

    with pytest.raises(ValueError, match="code_length"):
        AnonymizerConfig(crop_size=64, degrade_cells=12, latent_dim=4, base="composite", correction=correction,
                         code_length=length).validate()


def test_code_m_reads_coarse_cells_alone() -> None:
    """``input_cells: 4``: the code a face gets depends on its 4x4 cell means only; the face is drawn
    over its own 12x12 mosaic."""
    comp = _model()
    m = _code_m(comp, 1.0, input_cells=4)
    x, z = _crops(2).double() * 0.4, torch.randn(2, 4, dtype=torch.float64)
    h = _zero_cell_mean(torch.randn_like(x) * 0.3, 4)  # other 12x12 means, same 4x4 ones
    with torch.no_grad():
        a, b = m(x, z), m(x + h, z)
    torch.testing.assert_close(a - smooth_cells(x, 12), b - smooth_cells(x + h, 12), atol=1e-9, rtol=0)
    assert float((a - b).abs().mean()) > 1e-3


def test_code_m_learns_through_the_code() -> None:
    """Once the code map is no longer zero, the loss reaches every weight of the network."""
    m = _code_m(_model())
    x, z = _crops(2).double() * 0.4, torch.randn(2, 4, dtype=torch.float64)
    m(x, z).square().mean().backward()
    assert float(m.net[1].weight.grad.abs().sum()) > 0 and float(m.code_head.weight.grad.abs().sum()) > 0


def test_code_m_round_trip_and_needs_the_composite(tmp_path: Path) -> None:
    from anonface.models.anonymizer import AnonymizerConfig, save_anonymizer

    comp = _model()
    m = _code_m(comp, 1.0).float()
    save_anonymizer(m, tmp_path / "m.pt", half=False)
    back = load_pretrained(tmp_path / "m.pt")
    assert (back.config.correction, back.config.correction_max) == ("code", 1.0)
    x, z = _crops(2), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(back(x, z), m(x, z))
    with pytest.raises(ValueError, match="code"):
        AnonymizerConfig(crop_size=64, degrade_cells=12, latent_dim=4, correction="code").validate()
