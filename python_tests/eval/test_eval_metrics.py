"""Metrics, geometry, method parsing, pair files and report writing on hand-computed cases."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from anonface.boxes import box_iou
from anonface.eval.data import ImageRef, Pair, read_pairs, select_pairs
from anonface.eval.faces import Detection, central_box, pick_central, pick_overlapping
from anonface.eval.methods import DEFAULT_STRENGTHS, MethodSpec, parse_methods
from anonface.eval.metrics import (
    PairOutcome,
    Rate,
    landmark_displacement,
    lookalike_rate,
    rate,
    reid_rate,
    verification_accuracy,
)
from anonface.eval.report import markdown_table, write_report


def _judge_outcomes(rng: random.Random, n_same: int, n_diff: int) -> list[PairOutcome]:
    """A judge that errs sometimes: distances drawn around the threshold."""
    outs = [PairOutcome(True, rng.uniform(0.2, 0.75)) for _ in range(n_same)]
    outs += [PairOutcome(False, rng.uniform(0.45, 1.1)) for _ in range(n_diff)]
    return outs


def test_perfect_anonymizer_gives_zero_reid_and_chance_accuracy() -> None:
    rng = random.Random()
    n = rng.randint(5, 40)
    untouched = _judge_outcomes(rng, n, n)
    # A perfect anonymizer: no same-person pair matches any more, and different pairs stay apart.
    # Both ways a judge can fail count as "not matched": a large distance and no face at all (None).
    anon = [PairOutcome(o.same, (None if k % 2 else rng.uniform(0.6, 2.0)) if o.same else rng.uniform(0.6, 2.0))
            for k, o in enumerate(untouched)]
    assert reid_rate(anon).value == 0.0
    assert reid_rate(anon).n == n
    assert verification_accuracy(anon).value == 0.5
    assert verification_accuracy(anon).k == n


def test_identity_anonymizer_gives_the_judges_accuracy() -> None:
    rng = random.Random()
    n_same, n_diff = rng.randint(5, 40), rng.randint(5, 40)
    untouched = _judge_outcomes(rng, n_same, n_diff)
    identity = [PairOutcome(o.same, o.distance) for o in untouched]
    same_matched = sum(1 for o in untouched if o.same and o.distance < 0.6)
    diff_apart = sum(1 for o in untouched if not o.same and o.distance >= 0.6)
    assert reid_rate(identity).value == pytest.approx(same_matched / n_same)
    assert verification_accuracy(identity).value == pytest.approx((same_matched + diff_apart) / (n_same + n_diff))
    assert verification_accuracy(identity) == verification_accuracy(untouched)


def test_pair_outcome_threshold_is_strict() -> None:
    assert PairOutcome(True, 0.5999).matched
    assert not PairOutcome(True, 0.6).matched
    assert not PairOutcome(True, None).matched
    assert PairOutcome(False, 0.6).correct and not PairOutcome(False, 0.3).correct
    assert PairOutcome(True, 0.3, threshold=0.2).matched is False


def test_rate_and_wilson_interval() -> None:
    r = rate([True, False, None, True, True])
    assert (r.k, r.n, r.value) == (3, 4, 0.75)
    # Wilson 95% for 5/10, by hand: centre 0.5, half-width 1.96*sqrt(.025+.0096)/1.384 = 0.2634.
    lo, hi = Rate(5, 10).interval()
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = Rate(0, 300).interval()
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.01264, abs=1e-4)
    assert Rate(0, 0).value is None and Rate(0, 0).interval() is None
    d = Rate(1, 4).to_dict()
    assert d["value"] == 0.25 and d["k"] == 1 and d["n"] == 4 and len(d["ci95"]) == 2


def test_landmark_displacement_hand_case_and_random() -> None:
    a = np.array([[10.0, 10.0], [20.0, 10.0], [15.0, 15.0], [12.0, 20.0], [18.0, 20.0]])
    # every point moved by a 3-4-5 triangle: mean distance 5, face size 10 -> 0.5
    assert landmark_displacement(a, a + np.array([3.0, 4.0]), 10.0) == pytest.approx(0.5)
    assert landmark_displacement(a, a, 37.0) == 0.0
    rng = np.random.default_rng()
    b, c = rng.uniform(0, 200, (5, 2)), rng.uniform(0, 200, (5, 2))
    size = float(rng.uniform(20, 120))
    want = sum(math.hypot(*(b[i] - c[i])) for i in range(5)) / 5 / size
    assert landmark_displacement(b, c, size) == pytest.approx(want)
    with pytest.raises(ValueError, match="landmarks"):
        landmark_displacement(b, c[:4], size)
    with pytest.raises(ValueError, match="face_size"):
        landmark_displacement(b, c, 0.0)


def test_lookalike_rate_counts_close_pairs_of_different_people() -> None:
    rng = np.random.default_rng()
    n, dim = int(rng.integers(20, 40)), 8
    d = rng.normal(0.0, 0.35, (n, dim))
    people = [f"p{int(i)}" for i in rng.integers(0, n // 2, n)]
    got = lookalike_rate(d, people, 0.6)
    k = m = 0
    for i in range(n):
        for j in range(i + 1, n):
            if people[i] != people[j]:
                m += 1
                k += float(np.linalg.norm(d[i] - d[j])) < 0.6
    assert (got.k, got.n) == (k, m) and 0 < m
    # everybody given one face: every pair of different people looks alike; pairs of one person never count
    same = lookalike_rate(np.repeat(d[:1], n, 0), people)
    assert same.k == same.n == m
    assert lookalike_rate(d, ["one"] * n).n == 0
    assert lookalike_rate(d[:1], people[:1]) == Rate(0, 0)
    # far apart: none
    assert lookalike_rate(np.eye(n) * 10.0, [str(i) for i in range(n)]).k == 0


@pytest.mark.parametrize("bad", ["shape", "rows", "nan"])
def test_lookalike_rate_refuses_bad_descriptors(bad: str) -> None:
    d = np.random.default_rng().normal(size=(4, 3))
    people = ["a", "b", "c", "d"]
    if bad == "shape":
        d = d[:, 0]
    elif bad == "rows":
        people = people[:3]
    else:
        d[2, 1] = np.nan
    with pytest.raises(ValueError):
        lookalike_rate(d, people)


def test_box_geometry() -> None:
    assert box_iou([(0, 0, 10, 10)], [(5, 0, 15, 10)])[0, 0] == pytest.approx(50 / 150)
    assert box_iou([(0, 0, 10, 10)], [(20, 20, 30, 30)])[0, 0] == 0.0
    assert box_iou([(0, 0, 0, 10)], [(0, 0, 0, 10)])[0, 0] == 0.0
    assert central_box(250, 250, 0.5) == (62.5, 62.5, 187.5, 187.5)
    dets = [Detection((0, 0, 40, 40), 0.9), Detection((100, 100, 150, 150), 0.6)]
    assert pick_central(dets, 250, 250) is dets[1]
    assert pick_central([], 250, 250) is None
    assert pick_overlapping(dets, (5, 5, 40, 40), 0.3) is dets[0]
    assert pick_overlapping(dets, (200, 200, 250, 250), 0.3) is None


def test_parse_methods() -> None:
    specs = parse_methods(["none", "blur=0.05,0.1", "pixelate=8,16", "solid,noise", "learned=/x/m.pt"])
    labels = [s.label for s in specs]
    assert labels[:5] == ["none", "blur 0.05", "blur 0.1", "pixelate 8", "pixelate 16"]
    assert "solid" in labels
    assert [s.strength for s in specs if s.method == "noise"] == list(DEFAULT_STRENGTHS["noise"])
    assert specs[-1] == MethodSpec("learned", None, "/x/m.pt")
    assert parse_methods(["none", "none"]) == [MethodSpec("none")]
    with pytest.raises(ValueError, match="unknown method 'mosaic'"):
        parse_methods(["mosaic"])
    with pytest.raises(ValueError, match="must be a number"):
        parse_methods(["blur=strong"])
    with pytest.raises(ValueError, match="takes no strength"):
        parse_methods(["none=3"])
    assert parse_methods(["solid=128"]) == [MethodSpec("solid", 128.0)]
    # the evaluation-only smooth mosaic: the shipped bottleneck, or a checkpoint's
    assert parse_methods(["smooth-mosaic"]) == [MethodSpec("smooth-mosaic")]
    assert parse_methods(["smooth-mosaic=/x/m.pt,learned"]) == [MethodSpec("smooth-mosaic", None, "/x/m.pt,learned")]
    assert MethodSpec("smooth-mosaic").label == "smooth-mosaic"
    with pytest.raises(ValueError, match="unknown method 'smooth'"):
        parse_methods(["smooth"])


def test_read_and_select_pairs(tmp_path) -> None:
    lines = ["2\t2", "A\t1\t2", "B\t1\t3", "A\t1\tC\t1", "B\t2\tD\t4",
             "E\t1\t2", "F\t3\t4", "E\t1\tG\t2", "F\t1\tH\t1"]
    p = tmp_path / "pairs.txt"
    p.write_text("\n".join(lines) + "\n")
    pairs = read_pairs(p)
    assert len(pairs) == 8
    assert pairs[0] == Pair(ImageRef("A", 1), ImageRef("A", 2), 1) and pairs[0].same
    assert pairs[3] == Pair(ImageRef("B", 2), ImageRef("D", 4), 1) and not pairs[3].same
    assert pairs[4].fold == 2
    assert ImageRef("B", 2).path(tmp_path) == tmp_path / "B" / "B_0002.jpg"
    assert [q.first.name for q in select_pairs(pairs, folds=[2])] == ["E", "F", "E", "F"]
    lim = select_pairs(pairs, limit=1)
    assert [(q.first.name, q.same) for q in lim] == [("A", True), ("A", False)]
    (tmp_path / "bad.txt").write_text("2\t2\nA\t1\t2\n")
    with pytest.raises(ValueError, match="header says"):
        read_pairs(tmp_path / "bad.txt")


def _fake_report() -> dict:
    def r(k: int, n: int) -> dict:
        return Rate(k, n).to_dict()

    rows = [
        {"label": "none", "method": "none", "strength": None,
         "privacy": {"reid": r(29, 30), "verification_accuracy": r(59, 60), "reid_detecting": None,
                     "still_face_centerface": r(30, 30), "still_face_dlib": r(29, 30),
                     "landmark_displacement": {"mean": 0.0, "median": 0.0, "n": 30}},
         "speed": {"method_fps": 512.25, "end_to_end_fps": 20.0, "pipeline_fps": 1.234}, "utility": {"unavailable": "not built"}},
        {"label": "pixelate 16", "method": "pixelate", "strength": 16.0,
         "privacy": {"reid": r(3, 30), "verification_accuracy": r(33, 60), "reid_detecting": r(1, 30),
                     "still_face_centerface": r(2, 30), "still_face_dlib": r(1, 30),
                     "landmark_displacement": {"mean": 0.0412, "median": 0.04, "n": 2}},
         "speed": {"method_fps": 100.0, "end_to_end_fps": 16.7, "pipeline_fps": 0.9}, "utility": {"frame_map": 0.4321}},
        {"label": "learned", "method": "learned", "strength": None, "unavailable": "no checkpoint"},
    ]
    return {"command": "anonface evaluate --limit 30", "protocol": {"face_thresh": 0.5}, "rows": rows,
            "untouched": {"judge_accuracy": r(59, 60), "judge_same_match": r(29, 30), "pairs_same": 30,
                          "pairs_different": 30, "images": 100, "judge_fallback_boxes": 1,
                          "centerface_fallback_boxes": 0}}


def test_markdown_table_values() -> None:
    md = markdown_table(_fake_report())
    lines = md.strip().splitlines()
    assert len(lines) == 5
    n_cols = lines[0].count("|")
    assert all(line.count("|") == n_cols for line in lines), md
    assert lines[2].startswith("| none | 96.7% | — | 98.3% | 100.0% | 96.7% | 0.000 | 512.2 | 1.23 | n/a | 97.0% (none) |")
    assert "| pixelate 16 | 10.0% | 3.3% | 55.0% | 6.7% | 3.3% | 0.041 | 100.0 | 0.90 | 0.432 | 9.7% (pixelate 16x16) |" in md
    assert "| learned | unavailable: no checkpoint |" in md


def test_markdown_table_shows_lookalikes_when_measured() -> None:
    report = _fake_report()
    report["rows"][1]["privacy"]["lookalike"] = {"value": 0.25, "k": 1, "n": 4}
    md = markdown_table(report)
    assert "| landmark shift ↓ | look-alikes ↓ | fps (method) |" in md
    assert "| 0.041 | 25.0% | 100.0 |" in md and "| 0.000 | — | 512.2 |" in md
    assert "look-alikes" not in markdown_table(_fake_report())


def test_write_report_files(tmp_path) -> None:
    paths = write_report(_fake_report(), tmp_path / "rep")
    data = json.loads(paths["json"].read_text())
    assert data["rows"][1]["privacy"]["reid"]["k"] == 3
    assert "Command: `anonface evaluate --limit 30`" in paths["markdown"].read_text()
    png = paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_merge_reports() -> None:
    from anonface.eval.run import merge_reports

    old = _fake_report()
    old["lfw"] = {"folds": [1], "limit": 30}
    new = {
        "command": "anonface evaluate --methods learned pixelate=16 --update",
        "lfw": {"folds": (1,), "limit": 30},
        "rows": [
            {"label": "learned", "method": "learned", "strength": None,
             "privacy": {"reid": Rate(1, 30).to_dict()}},
            {"label": "pixelate 16", "method": "pixelate", "strength": 16.0,
             "speed": {"method_fps": 250.0, "end_to_end_fps": 18.0}},
            {"label": "noise 50", "method": "noise", "strength": 50.0, "unavailable": "not built"},
        ],
    }
    m = merge_reports(old, new)
    rows = {r["label"]: r for r in m["rows"]}
    assert [r["label"] for r in m["rows"]] == ["none", "pixelate 16", "learned", "noise 50"]
    assert "unavailable" not in rows["learned"] and rows["learned"]["privacy"]["reid"]["k"] == 1
    assert rows["pixelate 16"]["speed"]["method_fps"] == 250.0  # replaced
    assert rows["pixelate 16"]["privacy"]["reid"]["k"] == 3  # kept
    assert rows["none"] == old["rows"][0]
    assert m["command"] == "anonface evaluate --limit 30 && anonface evaluate --methods learned pixelate=16 --update"
    with pytest.raises(ValueError, match="LFW pairs differ"):
        merge_reports(old, {"lfw": {"folds": [1], "limit": None}, "rows": []})


def test_checkpoint_rows_keep_their_own_labels() -> None:
    """Two checkpoints of one method, and a checkpoint beside the shipped model, are separate rows:
    labelled by their path, never merged into each other's (``--update`` merges rows by label)."""
    from anonface.eval.run import merge_reports

    specs = parse_methods(["learned", "learned=/a/m.pt", "learned=/b/m.pt", "composite=c.pt",
                           "smooth-mosaic=/a/m.pt"])
    labels = [s.label for s in specs]
    assert labels == ["learned", "learned=/a/m.pt", "learned=/b/m.pt", "composite=c.pt", "smooth-mosaic=/a/m.pt"]
    old = {"rows": [{"label": "learned", "method": "learned", "strength": None, "privacy": {"reid": 0.087}}]}
    new = {"rows": [{"label": specs[1].label, "method": "learned", "strength": None, "privacy": {"reid": 0.2}}]}
    merged = merge_reports(old, new)
    assert [r["label"] for r in merged["rows"]] == ["learned", "learned=/a/m.pt"]
    assert merged["rows"][0]["privacy"] == {"reid": 0.087}  # the shipped row is untouched
