"""Temporal stability of each anonymization method in the real pipeline: how much anonymized faces
flicker from frame to frame, compared with how much the untouched video changes in the same place.

For each clip of ``../shared/data/action_videos`` (``$ANONFACE_DATA``), the first ``--max-frames``
frames go through ``anonface.Anonymizer`` (CPU, defaults: CenterFace at full resolution, tracking,
mask_scale 1.3, ellipse mask) once per method. The detector runs once per clip: its detections are
recorded on the first pass and replayed to the later ones (:class:`ReplayDetector`), so every method
gets the same detections and the pipeline's own tracking and rendering, which is what a run per
method would do at a fraction of the cost (detection is deterministic; the passes' boxes are checked
to be identical). ``smooth-mosaic`` (the learned anonymizer's 12x12 mosaic input up-sampled
bilinearly, an evaluation baseline) runs through the pipeline's learned path
(:func:`anonface.eval.methods.build_pipeline`).

**Flicker ratio.** For each pair of consecutive frames ``t-1, t``, the pixels ``P_t`` inside the
anonymized region of either frame (the ellipses inscribed in the pipeline's face boxes enlarged by
``mask_scale``, as the renderer draws them): ``sum_P |A_t - A_{t-1}| / sum_P |U_t - U_{t-1}|``,
pooled over all pairs (and channels), where ``A`` is the anonymized and ``U`` the untouched video.
1.0: the anonymized faces change as much as the real ones; above 1: they flicker more. ``core``:
the same over the pixels anonymized in *both* frames (leaves out the region's moving edge).

**Identity consistency** (``--identity-methods``, default learned and smooth-mosaic): dlib's 128-d
face descriptor (the evaluation's judge, :class:`anonface.eval.judge.DlibJudge`) of every anonymized
face whose detection box is at least ``--identity-min-px`` on its shorter side, in that box. Faces of
consecutive frames are linked into tracks by box IoU >= 0.5 (greedy, best first). ``same track``:
descriptor distance between a track's faces in consecutive frames; ``different tracks``: between two
faces of one frame whose boxes do not overlap (overlapping boxes are mostly one face boxed twice; false
detections still count). The untouched video gives the reference (real people: small same-track distance,
large across tracks); dlib calls two faces the same person below 0.6.

Usage::

    python benchmarks/bench_temporal.py [--clips NAME ...] [--max-frames 60] [--methods ...]

Prints a table and writes JSON (machine, torch version, commit) to
``benchmarks/results/temporal_cpu.json``. Skips with a message when the shared data is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANONFACE_DATA", REPO.parent / "shared" / "data"))
CLIPS = ("two_people_hugging_1080p.mp4", "opera_arcade_pedestrians_walk.mp4", "kinetics400_arm_wrestling.mp4",
         "ucf101_apply_eye_makeup.avi")
METHODS = ("pixelate", "blur", "noise", "solid", "learned", "composite", "smooth-mosaic")
IDENTITY_METHODS = ("learned", "composite", "smooth-mosaic")
MASK_SCALE = 1.3
LINK_IOU = 0.5


class ReplayDetector:
    """Wraps a detector: the first request for a frame index runs it and records the result, later
    requests for that index (another method's pass over the same clip) get the recorded boxes."""

    def __init__(self, base) -> None:
        self.base = base
        self.cache: dict[int, np.ndarray] = {}
        self.calls = 0
        self.seconds = 0.0

    def detect(self, frames, frame_indices: Sequence[int] | None = None) -> list[np.ndarray]:
        if frame_indices is None:
            raise ValueError("ReplayDetector needs the frame indices")
        todo = [j for j, i in enumerate(frame_indices) if i not in self.cache]
        if todo:
            t = time.perf_counter()
            got = self.base.detect(frames[todo], [frame_indices[j] for j in todo])
            self.seconds += time.perf_counter() - t
            self.calls += 1
            for j, d in zip(todo, got):
                self.cache[frame_indices[j]] = np.array(d, dtype=np.float32, copy=True)
        return [self.cache[i].copy() for i in frame_indices]


# -- geometry ----------------------------------------------------------------------------------------
def ellipse_mask(boxes: np.ndarray, h: int, w: int, mask_scale: float = MASK_SCALE) -> np.ndarray:
    """Pixels (centres) inside the ellipses inscribed in ``boxes [K, 4+]`` enlarged by ``mask_scale``
    (anonface.render.scale_boxes, the renderer's enlargement), clipped to the ``h x w`` frame."""
    from anonface.render import scale_boxes

    mask = np.zeros((h, w), bool)
    if len(boxes) == 0:
        return mask
    for x1, y1, x2, y2 in scale_boxes(np.asarray(boxes, np.float32), mask_scale):
        rx, ry = (x2 - x1) / 2.0, (y2 - y1) / 2.0
        if rx <= 0 or ry <= 0:
            continue
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        c0, c1 = max(0, int(np.floor(x1))), min(w, int(np.ceil(x2)))
        r0, r1 = max(0, int(np.floor(y1))), min(h, int(np.ceil(y2)))
        if c0 >= c1 or r0 >= r1:
            continue
        xs = (np.arange(c0, c1) + 0.5 - cx) / rx
        ys = (np.arange(r0, r1) + 0.5 - cy) / ry
        mask[r0:r1, c0:c1] |= (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0
    return mask


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of ``(x1, y1, x2, y2)`` boxes."""
    from anonface.boxes import box_iou as iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return np.asarray(iou(np.asarray(a)[:, :4], np.asarray(b)[:, :4]), dtype=np.float64)


def link(prev: np.ndarray, cur: np.ndarray, min_iou: float = LINK_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of ``prev`` to ``cur`` boxes, best IoU first, IoU >= ``min_iou``."""
    m = box_iou(prev, cur)
    pairs: list[tuple[int, int]] = []
    if m.size == 0:
        return pairs
    used_p: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-m, axis=None):
        i, j = np.unravel_index(flat, m.shape)
        if m[i, j] < min_iou:
            break
        if i in used_p or j in used_c:
            continue
        used_p.add(int(i))
        used_c.add(int(j))
        pairs.append((int(i), int(j)))
    return pairs


# -- flicker -----------------------------------------------------------------------------------------
class Flicker:
    """Sums of absolute frame-to-frame change over the anonymized pixels, for one video."""

    def __init__(self) -> None:
        self.change_union = 0.0
        self.change_core = 0.0
        self.pixels_union = 0
        self.pixels_core = 0
        self.pairs = 0

    def add(self, prev: np.ndarray, cur: np.ndarray, union: np.ndarray, core: np.ndarray) -> None:
        """``prev``, ``cur``: ``[H, W, 3]`` uint8; ``union``/``core``: ``[H, W]`` pixel masks."""
        if union.any():
            d = np.abs(cur[union].astype(np.int16) - prev[union].astype(np.int16))
            self.change_union += float(d.sum()) / 3.0
            self.pixels_union += int(union.sum())
            self.pairs += 1
        if core.any():
            d = np.abs(cur[core].astype(np.int16) - prev[core].astype(np.int16))
            self.change_core += float(d.sum()) / 3.0
            self.pixels_core += int(core.sum())

    def mean(self, which: str = "union") -> float | None:
        """Mean absolute change per pixel (grey levels, channels averaged)."""
        n = self.pixels_union if which == "union" else self.pixels_core
        s = self.change_union if which == "union" else self.change_core
        return s / n if n else None


def flicker_ratio(anon: Flicker, untouched: Flicker, which: str = "union") -> float | None:
    """``anon``'s change over ``untouched``'s, on the same pixels (None when nothing was measured)."""
    a, u = anon.mean(which), untouched.mean(which)
    if a is None or u is None or u == 0:
        return None
    return a / u


def measure_flicker(frames: Iterable[np.ndarray], boxes: Sequence[np.ndarray], originals: np.ndarray,
                    mask_scale: float = MASK_SCALE) -> tuple[Flicker, Flicker]:
    """Flicker of the anonymized ``frames`` and of ``originals`` on the pixels the boxes anonymize."""
    anon, ref = Flicker(), Flicker()
    prev = None
    prev_mask = None
    h, w = originals.shape[1:3]
    for t, cur in enumerate(frames):
        mask = ellipse_mask(boxes[t], h, w, mask_scale)
        if prev is not None and prev_mask is not None:
            union, core = mask | prev_mask, mask & prev_mask
            anon.add(prev, cur, union, core)
            ref.add(originals[t - 1], originals[t], union, core)
        prev, prev_mask = cur, mask
    return anon, ref


# -- identity ----------------------------------------------------------------------------------------
def identity_distances(descs: Sequence[dict[int, np.ndarray]], boxes: Sequence[np.ndarray]) -> dict[str, list[float]]:
    """Descriptor distances: a face and its linked face of the previous frame (``same``), and two faces
    of one frame whose boxes do not overlap (``different``; overlapping boxes, e.g. a face the tracker
    still covers beside its new detection, are likely one face). ``descs[t]`` maps box index ->
    descriptor (faces large enough)."""
    same: list[float] = []
    diff: list[float] = []
    for t, d in enumerate(descs):
        keys = sorted(d)
        iou = box_iou(boxes[t], boxes[t]) if keys else None
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                if iou[keys[a], keys[b]] > 0:  # overlapping boxes: likely one face boxed twice
                    continue
                diff.append(float(np.linalg.norm(d[keys[a]] - d[keys[b]])))
        if t == 0:
            continue
        for i, j in link(boxes[t - 1], boxes[t]):
            if i in descs[t - 1] and j in d:
                same.append(float(np.linalg.norm(descs[t - 1][i] - d[j])))
    return {"same": same, "different": diff}


def _summary(dist: dict[str, list[float]], threshold: float = 0.6) -> dict:
    out = {}
    for k, v in dist.items():
        a = np.asarray(v)
        out[k] = {"n": int(a.size), "mean": float(a.mean()) if a.size else None,
                  "median": float(np.median(a)) if a.size else None,
                  "below_0.6": float((a < threshold).mean()) if a.size else None}
    return out


def describe(judge, frame: np.ndarray, boxes: np.ndarray, min_px: float) -> dict[int, np.ndarray]:
    out = {}
    for k, b in enumerate(boxes):
        if min(b[2] - b[0], b[3] - b[1]) >= min_px:
            out[k] = judge.descriptor(frame, b[:4])
    return out


# -- the run -----------------------------------------------------------------------------------------
def run_clip(path: Path, specs, *, max_frames: int, identity: Sequence[str], min_px: float, judge) -> dict:
    from anonface import Anonymizer
    from anonface.eval.data import read_clip_frames
    from anonface.eval.methods import build_pipeline
    from anonface.pipeline import RunStats

    originals = read_clip_frames(path, max_frames)
    n, h, w, _ = originals.shape
    # the pipeline's default detector, built its own way, with the landmarks it asks for when a model
    # method draws the faces (the kernel methods leave them aside)
    base = Anonymizer("none", device="cpu", detector_options={"landmarks": True})
    replay = ReplayDetector(base.detector)
    res: dict = {"clip": path.name, "frames": int(n), "width": int(w), "height": int(h), "methods": {}}
    boxes_ref: list[np.ndarray] | None = None
    untouched: Flicker | None = None
    for spec in specs:
        anon = build_pipeline(spec, detector=replay, device="cpu")
        stats = RunStats(boxes=[])
        describe_faces = judge is not None and spec.label in identity
        descs: list[dict[int, np.ndarray]] = []

        def frames_out(anon=anon, stats=stats, describe_faces=describe_faces, descs=descs):
            # the pipeline appends a frame's boxes to stats.boxes before it yields the frame
            for k, f in enumerate(anon.stream(iter(originals), stats)):
                if describe_faces:
                    descs.append(describe(judge, f, stats.boxes[k], min_px))
                yield f

        calls = replay.calls
        t = time.perf_counter()
        a, ref = measure_flicker(frames_out(), stats.boxes, originals)
        seconds = time.perf_counter() - t
        boxes = [np.asarray(b, np.float32) for b in stats.boxes]
        if boxes_ref is None:
            boxes_ref, untouched = boxes, ref
        elif len(boxes) != len(boxes_ref) or not all(np.array_equal(x, y) for x, y in zip(boxes, boxes_ref)):
            raise RuntimeError(f"{spec.label}: the pipeline's boxes differ from the first pass on {path.name}")
        row = {
            "flicker_ratio": flicker_ratio(a, untouched),
            "flicker_ratio_core": flicker_ratio(a, untouched, "core"),
            "mean_change": a.mean(), "mean_change_core": a.mean("core"),
            "change_sum": a.change_union, "change_sum_core": a.change_core,
            "seconds": seconds, "seconds_include_detection": replay.calls > calls,
        }
        if describe_faces:
            row["identity"] = _summary(identity_distances(descs, boxes_ref))
        res["methods"][spec.label] = row
    assert boxes_ref is not None and untouched is not None
    res["untouched"] = {"mean_change": untouched.mean(), "mean_change_core": untouched.mean("core"),
                        "change_sum": untouched.change_union, "change_sum_core": untouched.change_core,
                        "pixels": untouched.pixels_union, "pixels_core": untouched.pixels_core,
                        "frame_pairs_with_faces": untouched.pairs}
    res["faces_per_frame"] = float(np.mean([len(b) for b in boxes_ref]))
    res["detect_seconds"] = replay.seconds
    res["identity_faces"] = int(sum(1 for b in boxes_ref for x in b if min(x[2] - x[0], x[3] - x[1]) >= min_px))
    if judge is not None and identity:
        descs = [describe(judge, originals[k], boxes_ref[k], min_px) for k in range(n)]
        res["untouched"]["identity"] = _summary(identity_distances(descs, boxes_ref))
    return res


def pooled_ratios(clips: Sequence[dict], label: str) -> dict:
    """Flicker ratios over all clips: summed change of the method over summed change of the untouched
    videos (the same pixels)."""
    out = {}
    for key, name in (("change_sum", "flicker_ratio"), ("change_sum_core", "flicker_ratio_core")):
        a = sum(c["methods"][label][key] for c in clips)
        u = sum(c["untouched"][key] for c in clips)
        out[name] = a / u if u else None
    return out


def methods_from_args(items: Sequence[str]) -> list:
    """Method specs: a bare name is the tool's default strength (``anonface run``'s), ``name=s1,s2`` or
    ``learned=PATH`` as in ``anonface evaluate``; ``none`` is left out (it is the reference)."""
    from anonface.eval.methods import MethodSpec, parse_methods
    from anonface.options import DEFAULT_STRENGTH

    specs = []
    for item in items:
        for name in ([item] if "=" in item else item.split(",")):
            if "=" in name:
                specs.extend(parse_methods([name]))
            elif name.strip():
                specs.append(MethodSpec(name.strip(), DEFAULT_STRENGTH.get(name.strip())))
    out = []
    for spec in specs:
        if spec.method != "none" and spec not in out:
            out.append(spec)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", nargs="+", default=list(CLIPS),
                   help="clip names in the shared action_videos folder, or paths (default: all four)")
    p.add_argument("--max-frames", type=int, default=60, help="first N frames of each clip (default 60)")
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help="methods: NAME (the tool's default strength), NAME=S1,S2 or learned=PATH / "
                        "smooth-mosaic=PATH (default: " + " ".join(METHODS) + ")")
    p.add_argument("--identity-methods", nargs="*", default=list(IDENTITY_METHODS),
                   help="row labels whose identity consistency is measured with dlib (default: learned "
                        "smooth-mosaic; none: skip)")
    p.add_argument("--identity-min-px", type=float, default=40.0,
                   help="shorter side of a detection box for its face to be described (default 40)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/temporal_cpu.json)")
    args = p.parse_args(argv)
    if args.max_frames < 2:
        p.error("--max-frames must be at least 2 (the measure compares consecutive frames)")

    paths = []
    for c in args.clips:
        q = Path(c)
        paths.append(q if q.is_file() else DATA / "action_videos" / c)
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        if not (DATA / "action_videos").is_dir():
            print(f"skipped: the shared data folder {DATA} (or $ANONFACE_DATA) with action_videos/ is absent",
                  file=sys.stderr)
            return 0
        p.error(f"no such clip: {', '.join(missing)}")

    import torch
    from _common import machine_info, print_table, save_results


    torch.set_num_threads(args.threads)
    specs = methods_from_args(args.methods)
    if not specs:
        p.error("--methods must name at least one method other than none")
    judge = None
    if args.identity_methods:
        from anonface.eval.judge import DlibJudge

        judge = DlibJudge()
    t0 = time.perf_counter()
    clips = []
    for q in paths:
        print(f"{q.name}: {args.max_frames} frames, {len(specs)} methods", file=sys.stderr, flush=True)
        clips.append(run_clip(q, specs, max_frames=args.max_frames, identity=args.identity_methods,
                              min_px=args.identity_min_px, judge=judge))
    pooled = {spec.label: pooled_ratios(clips, spec.label) for spec in specs}

    table = []
    for spec in specs:
        r = {"method": spec.label}
        for c in clips:
            r[c["clip"].split(".")[0][:18]] = c["methods"][spec.label]["flicker_ratio"]
        r["all (pooled)"] = pooled[spec.label]["flicker_ratio"]
        r["all, core"] = pooled[spec.label]["flicker_ratio_core"]
        table.append(r)
    print("\nFlicker ratio: mean |frame-to-frame change| in the anonymized regions / the same for the "
          "untouched video (1 = as stable as the real faces)")
    print_table(table, list(table[0].keys()))
    for c in clips:
        print(f"  {c['clip']}: {c['frames']} frames {c['width']}x{c['height']}, {c['faces_per_frame']:.1f} faces/frame, "
              f"untouched change {c['untouched']['mean_change'] or 0:.2f} grey levels per pixel")
    if judge is not None:
        ident = []
        for c in clips:
            rows = [("untouched", c["untouched"].get("identity"))]
            rows += [(k, v.get("identity")) for k, v in c["methods"].items() if v.get("identity")]
            for label, s in rows:
                if not s:
                    continue
                ident.append({"clip": c["clip"].split(".")[0][:18], "video": label,
                              "same track: mean": s["same"]["mean"], "n same": s["same"]["n"],
                              "same <0.6": s["same"]["below_0.6"],
                              "different tracks: mean": s["different"]["mean"], "n diff": s["different"]["n"],
                              "different <0.6": s["different"]["below_0.6"]})
        print(f"\nIdentity consistency (dlib descriptor distance; faces >= {args.identity_min_px:g} px; "
              "same person below 0.6)")
        if ident:
            print_table(ident, list(ident[0].keys()))
        else:
            print("  no face large enough")
    payload = {
        "benchmark": "temporal",
        "machine": machine_info(),
        "settings": {"max_frames": args.max_frames, "methods": [s.label for s in specs],
                     "identity_methods": args.identity_methods, "identity_min_px": args.identity_min_px,
                     "mask_scale": MASK_SCALE, "link_iou": LINK_IOU,
                     "pipeline": "anonface.Anonymizer defaults on the CPU (detections replayed per method)"},
        "clips": clips,
        "pooled": pooled,
        "seconds": time.perf_counter() - t0,
    }
    save_results(args.out or REPO / "benchmarks" / "results" / "temporal_cpu.json", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
