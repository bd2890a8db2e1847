"""CenterFace on ONNX Runtime: the prepared float32 graph matches cv2.dnn; the int8 model is cached
and still finds the faces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skimage_data

from anonface.detect import CenterFace, box_iou, default_onnx_path  # noqa: E402
from anonface.detect import ort as ort_backend  # noqa: E402


@pytest.fixture(scope="module")
def people() -> np.ndarray:
    a = np.ascontiguousarray(skimage_data.astronaut())
    small = a[::2, ::2]  # a second, smaller face: 256x256
    canvas = np.full((512, 1024, 3), 127, np.uint8)
    canvas[:, :512] = a
    canvas[128:384, 640:896] = small[:, ::-1]
    return canvas


@pytest.fixture(scope="module")
def int8_path(tmp_path_factory) -> str:
    return ort_backend.int8_model_path(default_onnx_path(), tmp_path_factory.mktemp("cache"))


def test_prepared_graph_is_dynamic_and_constant_weighted() -> None:
    model = ort_backend.prepare_graph(default_onnx_path())
    assert [i.name for i in model.graph.input] == ["input.1"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13


def test_fp32_matches_opencv(people: np.ndarray) -> None:
    rng = np.random.default_rng()
    frames = np.stack([people, np.ascontiguousarray(people[:, ::-1])])
    frames = np.clip(frames.astype(int) + rng.integers(-3, 4, frames.shape), 0, 255).astype(np.uint8)
    cv = CenterFace(0.2, backend="opencv").detect(frames)
    ox = CenterFace(0.2, backend="onnxruntime", precision="fp32", threads=1).detect(frames)
    for a, b in zip(cv, ox):
        assert len(a) == len(b) == 2
        np.testing.assert_allclose(a, b, atol=1e-2)


def test_int8_finds_the_same_faces(people: np.ndarray, int8_path: str, monkeypatch) -> None:
    monkeypatch.setenv("ANONFACE_CACHE", str(Path(int8_path).parent))
    ref = CenterFace(0.2, backend="onnxruntime", precision="fp32").detect(people)[0]
    det = CenterFace(0.1, precision="int8")  # auto backend -> onnxruntime, the cached model
    assert det.backend == "onnxruntime"
    got = det.detect(people)[0]
    assert len(ref) == 2 and len(got) == 2
    assert (box_iou(ref, got).max(axis=1) > 0.8).all()
    assert (got[:, 4] > 0.5).all()


def test_int8_model_is_quantized_once_and_cached(int8_path: str, monkeypatch) -> None:
    cache = Path(int8_path).parent
    mtime = os.stat(int8_path).st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("quantized again although cached")

    import onnxruntime.quantization as q

    monkeypatch.setattr(q, "quantize_static", boom)
    assert ort_backend.int8_model_path(default_onnx_path(), cache) == int8_path
    assert os.stat(int8_path).st_mtime_ns == mtime
    # The model and its sha256 record; no temporary files left.
    assert sorted(p.name for p in cache.iterdir()) == [Path(int8_path).name, Path(int8_path).name + ".json"]
    # The name changes with the recipe, so a new recipe quantizes again.
    monkeypatch.setattr(ort_backend, "RECIPE", ort_backend.RECIPE + 1)
    with pytest.raises(AssertionError, match="quantized again"):
        ort_backend.int8_model_path(default_onnx_path(), cache)


def test_unwritable_cache_falls_back_to_a_temporary_dir(tmp_path: Path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    written = []

    def fake_quantize(src, dst, reader, **kwargs):
        assert reader.get_next() is not None  # calibration images are produced
        Path(dst).write_bytes(Path(src).read_bytes())
        written.append(dst)

    import onnxruntime.quantization as q

    monkeypatch.setattr(q, "quantize_static", fake_quantize)
    monkeypatch.setattr(ort_backend, "calibration_images", lambda n=4: [np.zeros((64, 64, 3), np.uint8) + 50])
    with caplog.at_level("WARNING"):
        path = ort_backend.int8_model_path(default_onnx_path(), blocker / "sub")
    assert os.path.isfile(path) and not path.startswith(str(blocker))
    assert "not writable" in caplog.text and written


def test_calibration_images_are_deterministic_photos() -> None:
    a, b = ort_backend.calibration_images(2), ort_backend.calibration_images(2)
    assert len(a) == 2 and a[0].shape == (1088, 1920, 3) and a[0].dtype == np.uint8
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert a[0].std() > 20  # real content, not a blank canvas


def test_bad_precision_and_backend() -> None:
    with pytest.raises(ValueError, match="precision"):
        CenterFace(precision="fp16")
    with pytest.raises(ValueError, match="int8.*onnxruntime"):
        CenterFace(precision="int8", backend="opencv")
    with pytest.raises(ValueError, match="backend"):
        CenterFace(backend="tensorrt")
