"""The realism metric: Frechet distance between Gaussians fitted to descriptor sets, and its place in the
protocol (reference of other people, every row, n/a with a reason when the sets are too small)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anonface.eval.metrics import FrechetDistance, frechet_distance, frechet_gaussians


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_identical_sets_give_zero() -> None:
    rng = np.random.default_rng()
    n, d = int(rng.integers(200, 400)), int(rng.integers(2, 128))
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    fd = frechet_distance(x, x)
    assert fd.reason is None and (fd.n_a, fd.n_b, fd.dim) == (n, n, d)
    scale = np.trace(np.cov(x, rowvar=False))
    assert 0.0 <= fd.value <= 1e-6 * scale
    # the row order does not matter, the set does
    assert frechet_distance(x, x[rng.permutation(n)]).value <= 1e-6 * scale


def test_gaussians_against_scipy_sqrtm() -> None:
    """The eigenvalue form equals the textbook formula with scipy's matrix square root, also for
    covariances that do not commute."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng()
    d = int(rng.integers(2, 20))
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    want = (m1 - m2) @ (m1 - m2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_gaussians(m1, s1, m2, s2) == pytest.approx(want, rel=1e-8, abs=1e-8)
    assert frechet_gaussians(m1, s1, m2, s2) == pytest.approx(frechet_gaussians(m2, s2, m1, s1), rel=1e-8)
    assert frechet_gaussians(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_shifted_and_scaled_gaussians_match_the_closed_form() -> None:
    """Samples of N(0, diag(a^2)) and N(m, diag(b^2)): the distance is |m|^2 + sum (a - b)^2."""
    rng = np.random.default_rng()
    d, n = int(rng.integers(2, 6)), 40_000
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    m = rng.normal(0.0, 1.5, d)
    x = rng.normal(size=(n, d)) * a
    y = rng.normal(size=(n, d)) * b + m
    want = float(m @ m + ((a - b) ** 2).sum())
    got = frechet_distance(x, y).value
    # sampling error of means and variances at n = 40000: well under 0.1 over these ranges
    assert got == pytest.approx(want, abs=0.1 + 0.02 * want)
    # a pure shift: the covariance terms cancel, only the squared shift is left
    z = x + m
    assert frechet_distance(x, z).value == pytest.approx(float(m @ m), rel=1e-6)


def test_too_few_samples_is_nan_with_a_reason() -> None:
    rng = np.random.default_rng()
    d = int(rng.integers(4, 64))
    big = rng.normal(size=(4 * d, d))
    few = rng.normal(size=(d, d))  # d samples: the covariance is singular
    fd = frechet_distance(few, big)
    assert math.isnan(fd.value) and "too few samples" in fd.reason and f"needs >= {d + 1}" in fd.reason
    assert fd.to_dict()["value"] is None and fd.to_dict()["n_a"] == d
    # the caller's stricter floor
    fd = frechet_distance(big, big, min_samples=4 * d + 1)
    assert math.isnan(fd.value) and "the first set" in fd.reason and "the second set" in fd.reason
    assert not math.isnan(frechet_distance(big, big, min_samples=4 * d).value)


def test_bad_inputs_raise() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError):
        frechet_distance(x, np.zeros((10, 4)))
    with pytest.raises(ValueError):
        frechet_distance(x[0], x)
    bad = np.ones((10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(bad, x)
    with pytest.raises(ValueError):
        frechet_gaussians(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_realism_reference_leaves_out_the_anonymized_people() -> None:
    from anonface.eval.data import ImageRef
    from anonface.eval.judge import JudgedFace
    from anonface.eval.privacy import OriginalFace, realism_reference

    rng = np.random.default_rng()

    def face(ref: ImageRef) -> OriginalFace:
        return OriginalFace(ref, np.zeros((4, 4, 3), np.uint8), None, (0, 0, 1, 1), False,
                            JudgedFace(rng.normal(size=128), (0, 0, 1, 1), True))

    cands = {r: face(r) for r in (ImageRef("Ann", 3), ImageRef("Bob", 1), ImageRef("Cid", 2), ImageRef("Cid", 4))}
    ref = realism_reference([ImageRef("Ann", 1), ImageRef("Dee", 1)], cands)
    want = np.stack([cands[r].judged.descriptor for r in sorted(cands) if r.name != "Ann"])
    assert ref.shape == (3, 128) and np.array_equal(ref, want)
    assert realism_reference([ImageRef("Ann", 1), ImageRef("Bob", 1), ImageRef("Cid", 1)], cands).shape == (0, 128)


def test_realism_folds() -> None:
    from anonface.eval.run import EvalConfig, realism_folds

    assert realism_folds(EvalConfig(folds=(6,)), range(1, 7)) == ((1,), None)
    assert realism_folds(EvalConfig(folds=(1,)), range(1, 7)) == ((2,), None)
    assert realism_folds(EvalConfig(folds=(2, 3)), range(1, 11)) == ((4,), None)
    assert realism_folds(EvalConfig(folds=(6,), realism_folds=(5,)), range(1, 7)) == ((5,), None)
    assert realism_folds(EvalConfig(folds=(6,), realism_folds=()), range(1, 7))[0] == ()
    folds, why = realism_folds(EvalConfig(folds=None), range(1, 7))
    assert folds == () and "every fold" in why
    folds, why = realism_folds(EvalConfig(folds=(1,)), [1])
    assert folds == () and "no other fold" in why
    with pytest.raises(ValueError, match="not in the pairs file"):
        realism_folds(EvalConfig(folds=(1,), realism_folds=(9,)), range(1, 7))
    with pytest.raises(ValueError, match="must differ"):
        EvalConfig(folds=(1, 2), realism_folds=(2,)).validate()


def test_protocol_measures_realism_for_the_row(tmp_path) -> None:
    """End to end with the stand-in judge (1-d descriptor: the face square's brightness): an identity
    anonymizer is as far from the reference as the untouched faces; a wiping one is far off; too small a
    reference gives n/a with the reason."""
    from test_eval_protocol import _wipe, prepared_lfw  # the sibling test file

    from anonface.eval.methods import MethodSpec
    from anonface.eval.privacy import evaluate_method

    rng = np.random.default_rng()
    pairs, originals, judge, det, proto = prepared_lfw(tmp_path)
    firsts = sorted({p.first for p in pairs})
    mine = np.stack([originals[r].judged.descriptor for r in firsts])
    reference = rng.normal(mine.mean(), 0.5, size=(50, 1))
    kw = {"reference": reference, "realism_min_samples": 3}
    same = evaluate_method(MethodSpec("none"), lambda f, r: f.clone(), pairs, originals, det, judge, proto, **kw)  # type: ignore[arg-type]
    wiped = evaluate_method(MethodSpec("solid"), _wipe, pairs, originals, det, judge, proto, **kw)  # type: ignore[arg-type]
    assert isinstance(same.realism, FrechetDistance)
    assert same.realism.value == pytest.approx(frechet_distance(mine, reference).value)
    assert (same.realism.n_a, same.realism.n_b) == (3, 50)
    assert wiped.realism.value > same.realism.value + 1.0
    assert wiped.summary()["realism_fd"]["value"] == pytest.approx(wiped.realism.value)
    small = evaluate_method(MethodSpec("none"), lambda f, r: f.clone(), pairs, originals, det, judge, proto,  # type: ignore[arg-type]
                            reference=reference, realism_min_samples=256)
    assert small.summary()["realism_fd"]["value"] is None and "too few" in small.summary()["realism_fd"]["reason"]
    no_ref = evaluate_method(MethodSpec("none"), lambda f, r: f.clone(), pairs, originals, det, judge, proto)  # type: ignore[arg-type]
    assert no_ref.summary()["realism_fd"] is None


def test_realism_column_in_the_table() -> None:
    from anonface.eval.metrics import Rate
    from anonface.eval.report import _notes, markdown_table

    def row(label: str, fd: dict | None) -> dict:
        p = {"reid": Rate(1, 10).to_dict(), "realism_fd": fd}
        return {"label": label, "method": label, "strength": None, "privacy": p}

    rep = {"rows": [row("none", FrechetDistance(0.0123, 300, 800, 128).to_dict()),
                    row("solid", FrechetDistance(1.5, 300, 800, 128).to_dict()),
                    row("learned", FrechetDistance(float("nan"), 66, 800, 128, "too few samples: x").to_dict()),
                    row("blur", None)],
           "realism_reference": {"folds": [1], "images": 800, "identities": 500, "min_samples": 256}}
    lines = markdown_table(rep).strip().splitlines()
    assert lines[0].split(" | ")[2] == "realism FD ↓"
    assert lines[2].startswith("| none | 10.0% | 0.012 |") and lines[3].startswith("| solid | 10.0% | 1.500 |")
    assert lines[4].startswith("| learned | 10.0% | n/a |") and lines[5].startswith("| blur | 10.0% | — |")
    notes = _notes(rep)
    assert "800 untouched images of 500 other people (fold 1)" in notes and "too few samples: x" in notes
