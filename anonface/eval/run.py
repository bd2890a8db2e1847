"""The whole evaluation: every method and strength through privacy, naturalness, speed and utility."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonface.eval.data import ImageRef, data_root, find_lfw_images, read_pairs, select_pairs
from anonface.eval.methods import MethodSpec, MethodUnavailable, default_methods, make_anonymizer
from anonface.eval.privacy import FaceProtocol

logger = logging.getLogger(__name__)

__all__ = ["EvalConfig", "PARTS", "evaluate", "merge_reports", "realism_folds", "default_lfw_dir", "default_clip"]

PARTS = ("privacy", "speed", "utility")
"""``privacy`` includes naturalness: both are measured on the same anonymized LFW images."""


def default_lfw_dir() -> Path | None:
    root = data_root()
    return root / "lfw_pairs" if root is not None and (root / "lfw_pairs").is_dir() else None


def default_clip() -> Path | None:
    root = data_root()
    if root is None:
        return None
    p = root / "action_videos" / "opera_arcade_pedestrians_walk.mp4"
    return p if p.is_file() else None


def default_action_data() -> Path | None:
    root = data_root()
    p = None if root is None else root / "jhmdb_sample"
    return p if p is not None and p.is_dir() else None


@dataclass
class EvalConfig:
    """What to evaluate and where to write it. Paths left None are taken from the shared data folder."""

    out_dir: Path = Path("reports/eval")
    methods: list[MethodSpec] = field(default_factory=default_methods)
    parts: tuple[str, ...] = PARTS
    lfw_dir: Path | None = None
    pairs_file: Path | None = None
    folds: tuple[int, ...] | None = (1,)
    limit: int | None = None
    clip: Path | None = None
    speed_frames: int = 16
    speed_batch: int = 8
    speed_repeats: int = 3
    pipeline_speed: bool = True
    """Also time the whole pipeline (``anonface.Anonymizer``: detection + tracking + method) per method."""
    action_data: Path | None = None
    utility_steps: int = 200
    protocol: FaceProtocol = field(default_factory=FaceProtocol)
    realism_folds: tuple[int, ...] | None = None
    """Folds whose untouched images are the realism reference (other people than the anonymized ones).
    None: the first fold of the pairs file after the evaluated ones (cyclically); ``()``: no realism."""
    feather: float = 0.05
    seed: int = 0
    examples: int = 6
    plot: bool = True
    cache: bool = True
    """Keep the untouched images' detections and descriptors in ``out_dir/cache/`` for later runs."""
    update: bool = False
    """Merge into an existing ``out_dir/results.json``: rows measured now replace those of the same label."""
    command: str | None = None

    def validate(self) -> None:
        bad = [p for p in self.parts if p not in PARTS]
        if bad:
            raise ValueError(f"parts must be among {', '.join(PARTS)}, got {', '.join(bad)}")
        if not self.methods:
            raise ValueError("methods must name at least one method")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be a positive number of pairs, got {self.limit}")
        if self.speed_frames <= 0:
            raise ValueError(f"speed_frames must be > 0, got {self.speed_frames}")
        if self.realism_folds and self.folds is not None and set(self.realism_folds) & set(self.folds):
            raise ValueError(f"realism folds {self.realism_folds} must differ from the evaluated folds {self.folds}: "
                             "the reference must hold other people")


def realism_folds(config: EvalConfig, available: Sequence[int]) -> tuple[tuple[int, ...], str | None]:
    """The reference folds for the realism figure, or ``()`` and the reason there are none."""
    have = sorted(set(available))
    if config.realism_folds is not None:
        missing = sorted(set(config.realism_folds) - set(have))
        if missing:
            raise ValueError(f"realism folds {missing} are not in the pairs file (it has {have})")
        return tuple(config.realism_folds), None if config.realism_folds else "realism not asked for"
    if config.folds is None:
        return (), "every fold is evaluated: no fold of other people is left for the realism reference"
    rest = [f for f in have if f not in set(config.folds)]
    if not rest:
        return (), "the pairs file has no other fold for the realism reference"
    last = max(config.folds)
    return (next((f for f in rest if f > last), rest[0]),), None


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except Exception:  # noqa: BLE001 - metadata only
        return None


def _machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "commit": _git_commit(),
    }


def _montage(examples: dict[str, list[np.ndarray]], path: Path) -> None:
    """Rows = methods, columns = example anonymized images (written beside the report, never committed:
    the images come from research-only data)."""
    import cv2

    rows = []
    for label, imgs in examples.items():
        if not imgs:
            continue
        h = 160
        tiles = [cv2.resize(im, (int(im.shape[1] * h / im.shape[0]), h)) for im in imgs]
        row = np.concatenate(tiles, axis=1)
        band = np.full((h, 150, 3), 255, np.uint8)
        cv2.putText(band, label, (5, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([band, row], axis=1))
    if not rows:
        return
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[:, :, ::-1])


def evaluate(config: EvalConfig, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the evaluation and write the report folder; returns the report as a dict.

    Raises:
        EvalExtraMissing: the ``eval`` extra (dlib, face-recognition-models, matplotlib) is not installed.
        FileNotFoundError: the LFW folder, its ``pairs.txt`` or the clip does not exist.
        ValueError: bad settings.
    """
    config.validate()
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "command": config.command,
        "machine": _machine(),
        "protocol": asdict(config.protocol),
        "rows": [],
    }
    rows: dict[MethodSpec, dict[str, Any]] = {}
    fns = {}
    for spec in config.methods:
        row: dict[str, Any] = {"label": spec.label, "method": spec.method, "strength": spec.strength}
        try:
            fns[spec] = make_anonymizer(spec, feather=config.feather, seed=config.seed,
                                        mask_scale=config.protocol.mask_scale)
        except MethodUnavailable as e:
            row["unavailable"] = str(e)
            logger.warning("%s unavailable: %s", spec.label, e)
        rows[spec] = row
    runnable = [s for s in config.methods if s in fns]

    from anonface.eval.faces import CenterFaceDetector

    detector = CenterFaceDetector(config.protocol.det_thresh)

    if "privacy" in config.parts and runnable:
        from anonface.eval.judge import DlibJudge
        from anonface.eval.privacy import (
            REALISM_MIN_SAMPLES,
            evaluate_method,
            prepare_originals,
            realism_reference,
            untouched_summary,
        )

        judge = DlibJudge()
        lfw_dir = config.lfw_dir or default_lfw_dir()
        if lfw_dir is None or not Path(lfw_dir).is_dir():
            raise FileNotFoundError(f"LFW folder not found: {lfw_dir} (pass --lfw DIR or set ANONFACE_DATA)")
        pairs_file = config.pairs_file or Path(lfw_dir) / "pairs.txt"
        if not Path(pairs_file).is_file():
            raise FileNotFoundError(f"pairs file not found: {pairs_file}")
        image_dir = find_lfw_images(lfw_dir)
        all_pairs = read_pairs(pairs_file)
        pairs = select_pairs(all_pairs, folds=config.folds, limit=config.limit)
        if not pairs:
            raise ValueError(f"no pairs selected from {pairs_file} (folds={config.folds}, limit={config.limit})")
        refs = sorted({p.first for p in pairs} | {p.second for p in pairs})
        say(f"privacy: {sum(p.same for p in pairs)} same + {sum(not p.same for p in pairs)} different pairs, "
            f"{len(refs)} images from {image_dir}")
        t0 = time.perf_counter()
        originals = prepare_originals(
            refs, image_dir, detector, judge, config.protocol,
            progress=lambda k, n: say(f"  untouched images {k}/{n}") if k % 100 == 0 or k == n else None,
            cache_file=config.out_dir / "cache" / "untouched.json" if config.cache else None)
        report["untouched"] = untouched_summary(pairs, originals, judge)
        report["untouched"]["seconds"] = time.perf_counter() - t0
        firsts = sorted({p.first for p in pairs})
        ref_folds, no_ref = realism_folds(config, [p.fold for p in all_pairs])
        reference = None
        if ref_folds:
            ref_pairs = select_pairs(all_pairs, folds=ref_folds, limit=config.limit)
            ref_refs = sorted({p.first for p in ref_pairs} | {p.second for p in ref_pairs})
            say(f"realism reference: {len(ref_refs)} untouched images of fold(s) {', '.join(map(str, ref_folds))}")
            ref_originals = prepare_originals(
                ref_refs, image_dir, detector, judge, config.protocol,
                progress=lambda k, n: say(f"  reference images {k}/{n}") if k % 100 == 0 or k == n else None,
                cache_file=config.out_dir / "cache" / "untouched.json" if config.cache else None)
            reference = realism_reference(firsts, {r: ref_originals[r] for r in ref_refs})
        report["realism_reference"] = {
            "folds": list(ref_folds), "limit": config.limit,
            "images": 0 if reference is None else int(len(reference)),
            "identities": 0 if reference is None else len({r.name for r in ref_refs} - {r.name for r in firsts}),
            "min_samples": REALISM_MIN_SAMPLES, "note": no_ref,
        }
        report["lfw"] = {"dir": str(lfw_dir), "pairs_file": str(pairs_file), "folds": config.folds,
                         "limit": config.limit}
        say(f"  judge accuracy on untouched pairs: {100 * report['untouched']['judge_accuracy']['value']:.1f}%")
        show = set(firsts[: config.examples])
        examples: dict[str, list[np.ndarray]] = {"original": [originals[r].rgb for r in firsts[: config.examples]]}
        for spec in runnable:
            ex: list[np.ndarray] = []

            def keep(ref: ImageRef, img: np.ndarray, ex: list[np.ndarray] = ex) -> None:
                if ref in show:
                    ex.append(img)

            try:
                res = evaluate_method(spec, fns[spec], pairs, originals, detector, judge, config.protocol,
                                      on_image=keep, reference=reference)
            except Exception as e:  # noqa: BLE001 - one broken method must not lose the others' rows
                logger.exception("%s failed", spec.label)
                rows[spec]["unavailable"] = f"failed: {e.__class__.__name__}: {e}"
                continue
            rows[spec]["privacy"] = res.summary()
            examples[spec.label] = ex
            s = rows[spec]["privacy"]
            fd = (s.get("realism_fd") or {}).get("value")
            say(f"  {spec.label:>14}: re-identified {_fmt(s['reid'])}, still a face CenterFace "
                f"{_fmt(s['still_face_centerface'])} dlib {_fmt(s['still_face_dlib'])}, realism FD "
                f"{'n/a' if fd is None else f'{fd:.3f}'}, look-alikes {_fmt(s['lookalike'])} ({res.seconds:.0f} s)")
        config.out_dir.mkdir(parents=True, exist_ok=True)
        if config.examples > 0:
            _montage(examples, config.out_dir / "examples.png")

    if "speed" in config.parts and runnable:
        from anonface.eval.speed import detect_clip, time_method, time_pipeline

        clip = config.clip or default_clip()
        if clip is None or not Path(clip).is_file():
            report["speed_note"] = f"no clip found ({clip}); speed not measured"
            say(report["speed_note"])
        else:
            faces = detect_clip(clip, config.speed_frames, detector, threshold=config.protocol.det_thresh,
                                mask_scale=config.protocol.mask_scale)
            report["speed_clip"] = faces.info()
            say(f"speed: {faces.info()}")
            for spec in runnable:
                if "failed" in rows[spec].get("unavailable", ""):
                    continue
                try:
                    rows[spec]["speed"] = time_method(spec, fns[spec], faces, batch=config.speed_batch,
                                                      repeats=config.speed_repeats)
                except Exception as e:  # noqa: BLE001
                    logger.exception("%s speed failed", spec.label)
                    rows[spec]["speed"] = {"error": f"{e.__class__.__name__}: {e}"}
                    continue
                if config.pipeline_speed:
                    rows[spec]["speed"].update(time_pipeline(spec, faces, batch=config.speed_batch))
                pf = rows[spec]["speed"].get("pipeline_fps")
                say(f"  {spec.label:>14}: {rows[spec]['speed']['method_fps']:.1f} fps (method)"
                    + (f", {pf:.2f} fps (whole pipeline)" if pf is not None else ""))

    if "utility" in config.parts and runnable:
        from anonface.eval.utility import UtilitySettings, run_utility

        say("utility: action detector trained and tested on anonymized frames")
        util = run_utility([(s, fns[s]) for s in runnable], config.action_data or default_action_data(),
                           settings=UtilitySettings(steps=config.utility_steps, seed=config.seed,
                                                    det_thresh=config.protocol.det_thresh,
                                                    mask_scale=config.protocol.mask_scale),
                           detector=detector, progress=say)
        for spec in runnable:
            rows[spec]["utility"] = util.get(spec.label, {})
        reasons = {u.get("unavailable") for u in util.values() if u.get("unavailable")}
        if reasons:
            report["utility_note"] = "frame-mAP not measured: " + "; ".join(sorted(reasons))
            say("utility: " + report["utility_note"])

    report["rows"] = [rows[s] for s in config.methods]
    report["seconds"] = time.perf_counter() - t_start
    if config.update and (config.out_dir / "results.json").is_file():
        report = merge_reports(json.loads((config.out_dir / "results.json").read_text()), report)
    from anonface.eval.report import write_report

    paths = write_report(report, config.out_dir, plot=config.plot)
    report["files"] = {k: str(v) for k, v in paths.items()}
    return report


_SETTINGS = {"lfw": "LFW pairs", "speed_clip": "speed clip", "protocol": "protocol",
             "realism_reference": "realism reference folds"}


def merge_reports(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` merged into ``old``: each row of ``new`` replaces the parts it measured in the row of the same
    label (new labels are appended); run-wide settings must agree where both runs measured them.

    Raises:
        ValueError: the two runs used different pairs, protocol or speed clip.
    """
    for key, what in _SETTINGS.items():
        a, b = old.get(key), new.get(key)
        keep = {"speed_clip": ("clip", "frames", "width", "height"),
                "protocol": ("det_thresh", "mask_scale", "face_thresh", "overlap_iou"),
                "realism_reference": ("folds", "limit", "images")}.get(key)
        if keep and a and b:
            a = {k: a.get(k) for k in keep}
            b = {k: b.get(k) for k in keep}
        if a is not None and b is not None and json.loads(json.dumps(a)) != json.loads(json.dumps(b)):
            raise ValueError(f"cannot merge into the existing report: its {what} differ ({a} vs {b}); "
                             "use another report folder or rerun everything")
    out = dict(old)
    for key in ("untouched", "lfw", "speed_clip", "utility_note", "protocol", "machine", "realism_reference"):
        if new.get(key) is not None:
            out[key] = new[key]
    commands = [c for c in (old.get("commands") or [old.get("command")]) if c]
    if new.get("command"):
        commands.append(new["command"])
    out["commands"] = commands
    out["command"] = " && ".join(commands) if commands else None
    rows = {r["label"]: dict(r) for r in old.get("rows", [])}
    order = [r["label"] for r in old.get("rows", [])]
    for r in new.get("rows", []):
        label = r["label"]
        if label not in rows:
            rows[label] = {}
            order.append(label)
        merged = rows[label]
        if r.get("unavailable"):
            merged = {k: v for k, v in merged.items() if k not in ("privacy", "speed", "utility")}
        else:
            merged.pop("unavailable", None)
        merged.update(r)
        rows[label] = merged
    out["rows"] = [rows[k] for k in order]
    out["seconds"] = (old.get("seconds") or 0.0) + (new.get("seconds") or 0.0)
    return out


def _fmt(d: dict | None) -> str:
    if not d or d.get("value") is None:
        return "n/a"
    return f"{100 * d['value']:.1f}% ({d['k']}/{d['n']})"
