"""The inference pipeline: detect faces, track them, and anonymize them in frames and videos.

Data flow::

    frames [N, H, W, 3] uint8 -> detector (every k-th frame) -> tracker (fill gaps, smooth,
    linger) -> anonymize_faces (boxes enlarged by mask_scale -> the face kernels) -> frames

All pixel changes go through :func:`anonface.render.anonymize_faces`, the same function the
evaluation measures, which calls the fused face kernels in :mod:`anonface.ops` (``face_modify``
for the hand-crafted methods; ``face_crop`` -> model -> ``face_paste`` for ``learned``); there is
no per-face Python loop.

Privacy fails closed: when detection or modification fails on a frame, that frame is written
fully masked (``on_error="mask"``, the default, with a warning) or the run stops with
:class:`AnonymizationError` (``on_error="stop"``). No frame is ever returned with faces that the
pipeline could not process.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from anonface.detect.base import FaceDetector, empty_dets
from anonface.detect.boxes import BoxesDetector, as_dets, with_landmarks
from anonface.detect.factory import build_detector, check_detector_options
from anonface.options import check_option, check_strength
from anonface.render import (
    DEFAULT_METHOD,
    DEFAULT_STRENGTH,
    DEFAULT_TEMPORAL_SMOOTHING,
    METHODS,
    MODEL_METHODS,
    FaceMemory,
    anonymize_faces,
    scale_boxes,
)
from anonface.track import FaceTracker

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_STRENGTH",
    "AnonymizationError",
    "Anonymizer",
    "RunStats",
    "anonymize",
    "scale_boxes",
    "frame_seed",
    "resolve_device",
]

log = logging.getLogger(__name__)

class AnonymizationError(RuntimeError):
    """A frame could not be anonymized and ``on_error="stop"`` was asked for."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) -> CUDA when available, else the CPU; anything else as torch reads it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load_learned(
    checkpoint: str | os.PathLike | torch.nn.Module | None, device: torch.device, method: str = "learned"
) -> torch.nn.Module:
    """The model of a model method: ``checkpoint`` (a path or a module), or the one shipped for ``method``."""
    if not (checkpoint is None or isinstance(checkpoint, (str, os.PathLike, torch.nn.Module))):
        raise TypeError(f"checkpoint must be a path, a model (nn.Module) or None, got {type(checkpoint).__name__}")
    if isinstance(checkpoint, torch.nn.Module):
        model = checkpoint.to(device).eval()
        if not isinstance(getattr(model, "crop_size", None), int):
            raise ValueError("the anonymizer model must have an integer attribute 'crop_size'")
        return model
    try:
        from anonface.models.anonymizer import load_pretrained
    except ImportError as exc:
        raise RuntimeError(
            f"method {method!r} needs the model code (anonface.models.anonymizer), which "
            f"is not available in this installation ({exc}); use --method pixelate (the default) "
            "or solid/blur/noise"
        ) from exc
    from anonface.models.composite import checkpoint_for

    try:
        model = load_pretrained(checkpoint_for(method, checkpoint), map_location=str(device))
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"method {method!r} needs a model checkpoint: {exc}. Pass one with "
            "--checkpoint PATH (or checkpoint=...), or choose another --method"
        ) from exc
    model = model.to(device).eval()
    if not isinstance(getattr(model, "crop_size", None), int):
        raise RuntimeError("the anonymizer model must have an integer attribute 'crop_size'")
    return model


def frame_seed(seed: int, index: int) -> int:
    """The noise seed of stream frame ``index``: each frame gets its own noise (identical noise
    on every frame could be estimated and subtracted), the same on any device or batching."""
    return (int(seed) * 0x9E3779B97F4A7C15 + (int(index) + 1) * 0xBF58476D1CE4E5B9) & ((1 << 63) - 1)


def _mask_whole(frames: torch.Tensor, which: Sequence[int]) -> torch.Tensor:
    """Fail-closed fallback: blank whole frames (no kernel involved, so it cannot fail the same way)."""
    if len(which) == 0:
        return frames
    out = frames.clone()
    out[list(which)] = 0
    return out


@dataclass
class RunStats:
    """What a run did: frames, time, faces, frames masked whole because of errors."""

    frames: int = 0
    seconds: float = 0.0
    faces: int = 0
    failed_frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None  # per frame, the face boxes (before mask_scale)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


class _HoldTracker:
    """The "tracker" of ``track=False``: no association, no smoothing, no lingering.

    A frame the detector examined gets exactly its detections. A frame it skipped
    (``detect_every > 1``) gets the detections of the detector runs before and after it, both
    held in place: a face seen on either side stays covered in between (a face that moves far
    between two runs can still show; that is what tracking is for). Frames are returned once the
    next detector run has arrived, as :class:`anonface.track.FaceTracker` does.
    """

    def __init__(self) -> None:
        self._next = 0
        self._last = empty_dets()
        self._waiting: list[int] = []

    def update(self, dets: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
        t = self._next
        self._next += 1
        if dets is None:
            self._waiting.append(t)
            return []
        dets = np.asarray(dets, dtype=np.float32)
        if dets.ndim != 2 or dets.shape[1] != 15:
            dets = dets.reshape(-1, 5)
        if self._last.shape[1] != dets.shape[1]:  # one frame with landmarks: all with (NaN: unknown)
            dets, self._last = with_landmarks(dets), with_landmarks(self._last)
        held = np.concatenate([self._last, dets])
        out = [(i, held.copy()) for i in self._waiting] + [(t, dets)]
        self._waiting = []
        self._last = dets
        return out

    def flush(self) -> list[tuple[int, np.ndarray]]:
        out = [(i, self._last.copy()) for i in self._waiting]
        self._waiting = []
        return out


class Anonymizer:
    """Detect, track and anonymize faces; reusable and stateful across calls.

    Args:
        method: ``"pixelate"`` (default, see :data:`DEFAULT_METHOD`), ``"blur"``, ``"solid"``,
            ``"noise"``, ``"learned"`` (the trained anonymizer M), ``"composite"`` (a made-up face
            over the face's own 12x12 mosaic, :mod:`anonface.models.composite`) or ``"none"``
            (detect and track only).
        strength: method parameter (pixelate: cells across the box, 1-16; blur: sigma / box
            size, >= 0.06; noise: sigma in grey levels, >= 100; solid: grey level, 0-255); None =
            :data:`DEFAULT_STRENGTH`. Settings that cannot hide a face are refused (ValueError;
            limits and their measurements in :mod:`anonface.options`). Pixelation also keeps every
            cell at least 2 px wide: a small box gets fewer cells, never one-pixel ones.
        detector: a name for :func:`anonface.detect.build_detector` (``"centerface"``), built on
            ``device`` with ``detector_options``, or any object with ``detect(frames,
            frame_indices)`` (see :class:`anonface.detect.FaceDetector`), e.g. one
            ``build_detector`` made, used as it is.
        detector_options: the options of a detector given by name, passed to
            :func:`anonface.detect.build_detector` and checked (names and the limits of
            :mod:`anonface.options`) before anything runs, also when ``boxes`` replace the
            detector. For CenterFace: ``threshold`` (score, default :data:`anonface.options.DEFAULT_THRESHOLD`, 0.05), ``scale`` (input size
            ``(W, H)``, deface's ``--scale``), ``max_side`` (resize the long side to this for
            detection), ``upscale`` (extra scale factor for tiny faces), ``backend`` (``"auto"``,
            ``"onnxruntime"``, ``"opencv"``, ``"torch"``), ``precision`` (``"auto"``: int8 on the
            CPU with onnxruntime, ~2.2x less detection time for the same recall, float32
            elsewhere; ``"fp32"``, ``"int8"``), ``threads`` (onnxruntime CPU threads, default one
            per core), ``batch_size`` (default: this anonymizer's); see
            :class:`anonface.detect.CenterFace`. Given with a detector object: ValueError (the
            object was built with its own options).
        boxes: the caller's own face boxes instead of a detector (see
            :class:`anonface.detect.BoxesDetector`); then tracking is off unless ``track=True``.
            User boxes are facts about each frame: they are used on every frame whatever
            ``detect_every`` says, and malformed ones (wrong shape, NaN/inf, ``x2 <= x1`` or
            ``y2 <= y1``, e.g. ``(x, y, w, h)`` taken for corners, smaller than a pixel or outside
            the frame) raise ValueError.
        mask_scale: box enlargement, deface's convention (see :func:`scale_boxes`).
        mask: ``"ellipse"`` or ``"box"``.
        feather: soft edge width as a fraction of the box (inside the box), in [0, 0.25]: a
            wider band lets the face show through.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        batch_size: frames per detection/modification batch (a model method draws the faces of a
            batch together: on the CPU in network calls of up to ``render.CPU_DRAW_CHUNK`` faces).
        detect_every: run the detector on every k-th frame (1-30) and track in between. Faces
            seen only between two detector runs can be missed (the price of the speed).
        track: use the tracker (gap filling, smoothing, lingering). Without it each frame gets
            the faces detected in it, and with ``detect_every > 1`` a frame the detector skipped
            gets the faces of the detector runs on both sides of it (held, not moved): no frame
            goes out with no boxes because it was skipped.
        max_gap, linger: tracker settings (defaults scale with ``detect_every``; ``max_gap`` must
            be at least ``detect_every``, or faces between detector runs would go uncovered).
        checkpoint: model checkpoint for ``method="learned"`` or ``"composite"`` (None: the one
            shipped for the method; either method takes either kind of checkpoint), or a
            model already built (an ``nn.Module`` mapping crops ``[K, 3, S, S]`` in [-1, 1] to faces
            of the same shape, with an integer ``crop_size`` S; e.g. the evaluation's baselines).
        on_error: ``"mask"`` (blank a frame that failed, warn) or ``"stop"`` (raise).
        seed: noise seed; for ``learned`` / ``composite`` with a model that takes a code, the seed its made-up
            people (one code per track) are drawn from, independent of the faces.
        mosaic_px: for ``pixelate``, a cell size in pixels (deface's ``--mosaicsize``, >= 2)
            instead of a number of cells per box; each box then gets ``round(size / mosaic_px)``
            cells, within the same bounds as ``strength`` (at most 16 across, each >= 2 px).
        temporal_smoothing: for ``learned`` and ``composite``, the weight (0-0.9) of the face drawn for the same box
            in the frame before, blended into each new one (:class:`anonface.render.FaceMemory`):
            steadier faces through a video; 0 draws every frame afresh.
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        *,
        strength: float | None = None,
        detector: str | FaceDetector = "centerface",
        detector_options: Mapping[str, Any] | None = None,
        boxes: Any = None,
        mask_scale: float = 1.3,
        mask: str = "ellipse",
        feather: float = 0.05,
        device: str | torch.device = "auto",
        batch_size: int = 8,
        detect_every: int = 1,
        track: bool | None = None,
        max_gap: int | None = None,
        linger: int | None = None,
        checkpoint: str | os.PathLike | torch.nn.Module | None = None,
        on_error: str = "mask",
        seed: int = 0,
        mosaic_px: int | None = None,
        temporal_smoothing: float = DEFAULT_TEMPORAL_SMOOTHING,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if mask not in ("ellipse", "box"):
            raise ValueError(f"mask must be 'ellipse' or 'box', got {mask!r}")
        if on_error not in ("mask", "stop"):
            raise ValueError(f"on_error must be 'mask' or 'stop', got {on_error!r}")
        # Every numeric option is checked before anything runs (anonface.options): a NaN or
        # out-of-range value could blind the detector or leave faces visible.
        strength = check_strength(method, strength)
        self.mask_scale = check_option("mask_scale", mask_scale)
        self.feather = check_option("feather", feather)
        self.batch_size = check_option("batch_size", batch_size)
        self.detect_every = check_option("detect_every", detect_every)
        self.mosaic_px = None if mosaic_px is None else check_option("mosaic_px", mosaic_px)
        self.temporal_smoothing = check_option("temporal_smoothing", temporal_smoothing)
        if isinstance(detector, str):  # the detector's options are checked where they live
            detector_options = check_detector_options(detector, detector_options)
        elif detector_options is not None:
            raise ValueError(
                f"detector_options apply to a detector given by name; the {type(detector).__name__} object "
                "was built with its own options (build it with anonface.detect.build_detector(name, "
                "**options), or pass detector='centerface' with detector_options)"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        k = self.detect_every
        max_gap = max(8, 2 * k) if max_gap is None else check_option("max_gap", max_gap)
        linger = max(5, k) if linger is None else check_option("linger", linger)
        if max_gap < k:
            raise ValueError(
                f"max_gap ({max_gap}) must be at least detect_every ({k}): the tracker fills only gaps "
                "up to max_gap frames, so faces between detector runs would go uncovered"
            )
        self.method = method
        self.strength = DEFAULT_STRENGTH.get(method) if strength is None else strength
        self.mask = mask
        self.device = resolve_device(device)
        self.on_error = on_error
        self.seed = int(seed)
        if boxes is not None:
            self.detector: FaceDetector = BoxesDetector(boxes)
            track = False if track is None else track
        elif isinstance(detector, str):
            options = {"batch_size": self.batch_size, **detector_options}
            if method in MODEL_METHODS and detector == "centerface":
                options.setdefault("landmarks", True)  # the drawn face follows the face's landmarks
            self.detector = build_detector(detector, device=self.device, **options)
        else:
            if not callable(getattr(detector, "detect", None)):
                raise ValueError(f"detector must have a detect(frames, frame_indices) method, got {type(detector).__name__}")
            self.detector = detector
        self.track = True if track is None else bool(track)
        self._tracker_args = {"max_gap": max_gap, "linger": linger}
        self.model = _load_learned(checkpoint, self.device, method) if method in MODEL_METHODS else None
        self._memory = FaceMemory(self.temporal_smoothing, seed=self.seed) if method in MODEL_METHODS else None
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream: forget tracks and frame numbering."""
        if self.track:
            self._tracker: FaceTracker | _HoldTracker = FaceTracker(**self._tracker_args)
        else:
            self._tracker = _HoldTracker()
        self._next_index = 0
        self._failed: set[int] = set()  # frames whose detection failed, masked when emitted
        if self._memory is not None:
            self._memory.reset()

    # -- detection ---------------------------------------------------------------------------
    def _detect(self, frames: torch.Tensor | np.ndarray, indices: list[int]) -> list[np.ndarray | Exception]:
        """Detections per frame, or the exception that frame's detection raised."""
        try:
            dets = self.detector.detect(frames, indices)
            if len(dets) != len(indices):
                raise RuntimeError(f"detector returned {len(dets)} results for {len(indices)} frames")
            return [as_dets(d, "detections") for d in dets]
        except Exception as exc:  # noqa: BLE001 - every failure must fail closed
            if len(indices) == 1:
                return [exc]
        out: list[np.ndarray | Exception] = []
        for i, idx in enumerate(indices):  # find which frames fail
            out.extend(self._detect(frames[i : i + 1], [idx]))
        return out

    def _fail(self, index: int, what: str, exc: BaseException) -> None:
        if self.on_error == "stop":
            raise AnonymizationError(f"frame {index}: {what} failed: {exc}") from exc
        log.warning("frame %d: %s failed (%s: %s); the whole frame is masked", index, what,
                    type(exc).__name__, exc)

    # -- core --------------------------------------------------------------------------------
    def _process(
        self,
        items: list[tuple[int, torch.Tensor]],
        final: bool,
        stats: RunStats | None,
    ) -> list[tuple[int, np.ndarray, bool]]:
        """Detect + track one batch. Returns ``(index, boxes, failed)`` for frames now final."""
        failed = self._failed
        # User boxes are per-frame facts, not detections to save: read them on every frame.
        every = self.detect_every if not isinstance(self.detector, BoxesDetector) else 1
        key = [
            (j, idx)
            for j, (idx, _) in enumerate(items)
            if idx % every == 0 or (final and j == len(items) - 1)
        ]
        dets: dict[int, np.ndarray | None] = {}
        if key:
            if self.device.type == "cpu":
                # CPU detectors take one frame at a time anyway: pass views, not a stacked copy.
                results = [r for j, idx in key for r in self._detect(items[j][1][None], [idx])]
            else:
                batch = torch.stack([items[j][1] for j, _ in key])
                results = self._detect(batch, [idx for _, idx in key])
            for (_, idx), r in zip(key, results):
                if isinstance(r, Exception):
                    self._fail(idx, "face detection", r)
                    failed.add(idx)
                    dets[idx] = None
                else:
                    dets[idx] = r
        ready: list[tuple[int, np.ndarray]] = []
        for idx, _ in items:
            ready.extend(self._tracker.update(dets.get(idx)))
        if final:
            ready.extend(self._tracker.flush())
        out = []
        for idx, boxes in ready:
            out.append((idx, boxes, idx in failed))
            failed.discard(idx)
        return out

    def _render(
        self, frames: torch.Tensor, boxes: list[np.ndarray], failed: list[bool], indices: list[int]
    ) -> torch.Tensor:
        """Anonymize a batch ``[B, H, W, 3]`` on the working device."""
        try:
            out = anonymize_faces(
                frames, boxes, method=self.method, strength=self.strength, mask_scale=self.mask_scale,
                mask=self.mask, feather=self.feather, model=self.model, mosaic_px=self.mosaic_px,
                # noise is keyed by the stream's frame number (frame_seed)
                seed=[frame_seed(self.seed, idx) for idx in indices] if self.method == "noise" else self.seed,
                inplace=True, memory=self._memory,
            )
        except Exception as exc:  # noqa: BLE001 - fail closed
            for idx in indices:
                self._fail(idx, "face modification", exc)
            return _mask_whole(frames, list(range(len(indices))))
        bad = [j for j, f in enumerate(failed) if f]
        return _mask_whole(out, bad)

    def _render_per_frame(self) -> bool:
        """Whether :meth:`stream` renders frame by frame: on the CPU for the kernel methods, which
        gain nothing from a batch (and a frame by itself is anonymized in place, without the copy
        a batch is stacked into). A model method draws the faces of a whole batch of frames
        together (on the CPU in calls of up to ``render.CPU_DRAW_CHUNK`` faces), which is worth that
        copy: ~1.3-1.4x faster with a few faces per frame, even on a crowd
        (``benchmarks/bench_render.py``)."""
        return self.device.type == "cpu" and self.method not in MODEL_METHODS

    def stream(
        self,
        frames: Iterable[np.ndarray | torch.Tensor],
        stats: RunStats | None = None,
        *,
        consume: bool = False,
    ) -> Iterator[np.ndarray | torch.Tensor]:
        """Anonymize a stream of ``[H, W, 3]`` RGB uint8 frames; yields them in order.

        Frames are held back until the tracker has seen enough later frames (``max_gap``); the
        end of the iterable flushes them. Output frames have the input's type (numpy or tensor;
        tensors stay on the working device).

        ``consume=True`` hands the frames over: on the CPU a kernel method then anonymizes them in
        place and yields them without a copy (the video path does this with freshly decoded
        frames); a model method stacks each batch into one tensor anyway, to draw all its faces
        together. By default the input frames are left untouched.
        """
        stats = stats if stats is not None else RunStats()
        pending: dict[int, torch.Tensor] = {}
        as_numpy = None
        batch: list[tuple[int, torch.Tensor]] = []
        queue: deque[tuple[int, np.ndarray, bool]] = deque()

        per_frame = self._render_per_frame()

        def render(take: list[tuple[int, np.ndarray, bool]]) -> Sequence[torch.Tensor]:
            idxs = [t[0] for t in take]
            if per_frame or len({tuple(pending[i].shape) for i in idxs}) > 1:  # frames of two sizes: one by one
                out = []
                for idx, b, f in take:
                    fr = pending.pop(idx)
                    fr = fr if consume else fr.clone()
                    out.append(self._render(fr[None], [b], [f], [idx])[0])
                return out
            # torch.stack copies, so the caller's frames are never written to.
            fr = torch.stack([pending.pop(i) for i in idxs])
            return self._render(fr, [t[1] for t in take], [t[2] for t in take], idxs)

        def drain(force: bool) -> Iterator[np.ndarray | torch.Tensor]:
            while queue and (force or len(queue) >= self.batch_size):
                take = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                out = render(take)
                for i, (idx, b, f) in enumerate(take):
                    stats.frames += 1
                    stats.faces += len(b)
                    if f:
                        stats.failed_frames.append(idx)
                    if stats.boxes is not None:
                        stats.boxes.append(b[:, :5])  # landmarks stay inside
                    yield out[i].cpu().numpy() if as_numpy else out[i]

        for frame in frames:
            if as_numpy is None:
                as_numpy = not isinstance(frame, torch.Tensor)
            t = torch.as_tensor(np.ascontiguousarray(frame)) if as_numpy else frame
            if t.ndim != 3 or t.shape[-1] != 3 or t.dtype != torch.uint8:
                raise ValueError(f"stream frames must be [H, W, 3] uint8, got {tuple(t.shape)} {t.dtype}")
            if isinstance(self.detector, BoxesDetector) and not pending:
                # Boxes that cannot cover anything in this frame size are an error, not a no-op.
                self.detector.check_frame(int(t.shape[1]), int(t.shape[0]))
            t = t.to(self.device)
            idx = self._next_index
            self._next_index += 1
            pending[idx] = t
            batch.append((idx, t))
            if len(batch) >= self.batch_size:
                queue.extend(self._process(batch, False, stats))
                batch = []
                yield from drain(False)
        queue.extend(self._process(batch, True, stats))
        yield from drain(True)

    def __call__(self, frames: Any, boxes: Any = None) -> Any:
        """Anonymize ``frames`` (see :func:`anonymize` for the accepted types); same type out.

        A batch is tracked as a sequence; tracks carry on into the next call (a face seen at
        the end of one batch lingers into the next), so a video can be fed batch by batch.
        """
        if boxes is not None:
            raise ValueError("pass boxes to Anonymizer(boxes=...) or anonymize(..., boxes=...)")

        def run(seq: list[torch.Tensor]) -> list[torch.Tensor]:
            have = self.detector.frames if isinstance(self.detector, BoxesDetector) else None
            if have is not None and self._next_index + len(seq) > have:
                raise ValueError(
                    f"boxes has entries for {have} frames, but frames {self._next_index}-"
                    f"{self._next_index + len(seq) - 1} were given: give one box array per frame"
                )
            return list(self.stream(seq))

        return _apply_to(frames, run)


def _apply_to(frames: Any, run: Callable[[list[torch.Tensor]], list[torch.Tensor]]) -> Any:
    """Normalise any accepted frame container to uint8 ``[H, W, 3]`` tensors, run, convert back."""
    is_tensor = isinstance(frames, torch.Tensor)
    if not is_tensor and not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array or a torch tensor, got {type(frames).__name__}")
    x = frames if is_tensor else torch.from_numpy(np.ascontiguousarray(frames))
    if x.ndim not in (3, 4):
        raise ValueError(f"frames must be [H, W, 3], [N, H, W, 3] (or channels-first for tensors), got shape {tuple(x.shape)}")
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.shape[-1] == 3:
        channels_last = True
    elif is_tensor and x.shape[1] == 3:
        channels_last = False
        x = x.permute(0, 2, 3, 1)
    else:
        raise ValueError(f"frames must have 3 (RGB) channels last{' or first' if is_tensor else ''}, got shape {tuple(frames.shape)}")
    dtype = x.dtype
    if dtype == torch.uint8:
        u8 = x
    elif dtype.is_floating_point:
        # The float contract: values in [0, 1]. 0-255 floats would saturate to white, the face
        # kernels would change nothing and the frames would come back with their faces.
        if x.numel():
            if not bool(torch.isfinite(x).all()):
                raise ValueError("float frames must be finite: they contain NaN or infinite values")
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"float frames must hold values in [0, 1], got values from {lo:g} to {hi:g}; "
                    "divide 0-255 floats by 255, or pass uint8 frames"
                )
        u8 = (x.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
    else:
        raise ValueError(f"frames must be uint8 (0-255) or float (0-1), got {dtype}")
    out_frames = run([f.contiguous() for f in u8])
    out = torch.stack(out_frames).to(x.device) if out_frames else u8.clone()
    if dtype != torch.uint8:
        # Only the anonymized pixels change; the others keep their exact float values.
        changed = (out != u8).any(dim=-1, keepdim=True)
        out = torch.where(changed, out.to(dtype) / 255.0, x)
    if not channels_last:
        out = out.permute(0, 3, 1, 2).contiguous()
    if single:
        out = out[0]
    return out if is_tensor else out.numpy()


def anonymize(
    frames: np.ndarray | torch.Tensor,
    *,
    method: str = DEFAULT_METHOD,
    boxes: Any = None,
    detector: str | FaceDetector = "centerface",
    detector_options: Mapping[str, Any] | None = None,
    mask_scale: float = 1.3,
    mask: str = "ellipse",
    device: str | torch.device = "auto",
    **kwargs: Any,
) -> np.ndarray | torch.Tensor:
    """Anonymize the faces in an image or a sequence of frames.

    Args:
        frames: numpy ``[H, W, 3]`` / ``[N, H, W, 3]`` RGB, or a torch tensor ``[H, W, 3]``,
            ``[N, H, W, 3]``, ``[3, H, W]`` or ``[N, 3, H, W]``; uint8 (0-255) or floating point
            with every value in [0, 1] (ValueError otherwise, NaN and inf included: divide
            0-255 floats by 255). A sequence is tracked as consecutive video frames.
        method: see :class:`Anonymizer`.
        boxes: the caller's faces instead of detection: ``[K, 4|5]`` pixel-corner boxes
            ``(x1, y1, x2, y2[, score])`` for one image (or for every frame), or one such array per
            frame (exactly one per frame). Used on every frame; malformed boxes raise ValueError
            (see :class:`anonface.detect.BoxesDetector`).
        detector, detector_options, mask_scale, mask, device, **kwargs: see :class:`Anonymizer`
            (e.g. ``detector_options={"threshold": 0.3}``).

    Returns:
        The same type, shape, dtype, layout and device as ``frames``; only face regions change.
    """
    if boxes is not None and isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 3:
        boxes = [boxes]
    anon = Anonymizer(
        method, detector=detector, detector_options=detector_options, boxes=boxes, mask_scale=mask_scale,
        mask=mask, device=device, **kwargs,
    )
    have = anon.detector.frames if isinstance(anon.detector, BoxesDetector) else None
    if have is not None and isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 4:
        if have != frames.shape[0]:
            raise ValueError(f"boxes has entries for {have} frames, frames has {frames.shape[0]}: "
                             "give one box array per frame (or one [K, 4] array for all)")
    return anon(frames)
