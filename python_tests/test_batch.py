"""``anonface batch`` on a local Ray: outputs as ``anonface run`` writes them, the manifest, retries
after a worker is killed, resume after an interrupted driver, a two-node cluster, and the message
without Ray. Media are made here (PyAV, numpy, scikit-image's astronaut)."""

from __future__ import annotations

import csv
import os
import signal
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import data as skdata

from anonface import batch, cli
from anonface.io import read_image, write_image

ray = pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra (make test installs it)")

RUN = ["--method", "solid", "-q", "--ffmpeg-config", '{"preset": "ultrafast", "crf": 18}']


def _face_frames(n: int, shift: int) -> list[np.ndarray]:
    import cv2

    img = cv2.resize(np.ascontiguousarray(skdata.astronaut()), (256, 256), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(np.roll(img, shift + 3 * i, axis=1)) for i in range(n)]


def _write_clip(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 256, 256, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "18"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / batch.MANIFEST_NAME, newline="") as fh:
        return list(csv.DictReader(fh))


def _args(*extra: str):
    return batch._run_parser().parse_args(["x", *RUN, *extra])


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _write_clip(src / "a.mp4", _face_frames(6, 0))
    _write_clip(src / "sub" / "b.mp4", _face_frames(5, 40))
    write_image(str(src / "c.png"), _face_frames(1, 10)[0])
    write_image(str(src / "sub" / "d.jpg"), _face_frames(1, 70)[0])
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video at all" * 20)
    (src / "notes.md").write_text("not media")
    return src


def test_plan_mirrors_the_tree_and_refuses_collisions(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    for name in ("x/a.mp4", "x/y/a.mp4", "x/y/v.webm", "x/y/v.mp4"):
        (tmp_path / name).write_bytes(b"")
    files, skipped = batch.list_inputs([str(tmp_path / "x" / "a.mp4"), str(tmp_path / "x" / "y" / "a.mp4")])
    plan = batch.plan_jobs(files, str(tmp_path / "o"))
    assert [d for _, d in plan] == [str(tmp_path / "o" / "a.mp4"), str(tmp_path / "o" / "y" / "a.mp4")]
    with pytest.raises(ValueError, match="both be written"):
        batch.plan_jobs(batch.list_inputs([str(tmp_path / "x" / "y")])[0], str(tmp_path / "o"))
    with pytest.raises(ValueError, match="is an input"):
        batch.plan_jobs([str(tmp_path / "x" / "a.mp4")], str(tmp_path / "x"))
    # folders are walked as `anonface run` walks them: other files and symlinked folders are listed
    (tmp_path / "x" / "notes.md").write_text("n")
    (tmp_path / "z").mkdir()
    (tmp_path / "x" / "link").symlink_to(tmp_path / "z")
    files, skipped = batch.list_inputs([str(tmp_path / "x")], exclude=str(tmp_path / "x" / "y"))
    assert files == [str(tmp_path / "x" / "a.mp4")]
    assert {Path(p).name: why.split(" ")[0] for p, why in skipped} == {"notes.md": "not", "link": "a"}
    lst = tmp_path / "list.txt"
    lst.write_text("# clips\nx/a.mp4\n\nx/y/a.mp4\nx/a.mp4\n")
    assert batch.list_inputs([str(lst)])[0] == [str(tmp_path / "x" / "a.mp4"), str(tmp_path / "x" / "y" / "a.mp4")]
    lst.write_text("x/missing.mp4\n")
    with pytest.raises(ValueError, match="list.txt:1"):
        batch.list_inputs([str(lst)])


def test_without_ray_one_line_and_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    rc = cli.main(["batch", str(tmp_path), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'anonface[cluster]'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_batch_matches_run_manifest_and_exit_1(local_ray, tree: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = cli.main(["batch", str(tree), "-o", str(out), "--workers", "2", *RUN])
    assert rc == 1  # broken.mp4
    rows = {Path(r["input"]).name: r for r in _rows(out)}
    assert len(_rows(out)) == len(rows) == 6
    assert {k: r["status"] for k, r in rows.items()} == {
        "a.mp4": "done", "b.mp4": "done", "c.png": "done", "d.jpg": "done", "broken.mp4": "failed",
        "notes.md": "skipped"}
    assert rows["broken.mp4"]["error"] and "Traceback" not in rows["broken.mp4"]["error"]
    assert rows["a.mp4"]["frames"] == "6" and int(rows["a.mp4"]["faces"]) >= 5
    # the same files through `anonface run`, one by one: the same pixels
    for rel in ("a.mp4", "sub/b.mp4", "c.png", "sub/d.jpg"):
        ref = tmp_path / "ref" / Path(rel).name
        ref.parent.mkdir(exist_ok=True)
        assert cli.main(["run", str(tree / rel), "-o", str(ref), *RUN]) == 0
        got = out / rel
        if rel.endswith(".mp4"):
            a, b = _decode(got), _decode(ref)
            assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 0.5
        else:
            a, b = read_image(str(got)), read_image(str(ref))
            assert np.array_equal(a, b)
        src = _decode(tree / rel) if rel.endswith(".mp4") else read_image(str(tree / rel))
        assert not np.array_equal(a, src), f"{rel}: the face was not covered"
    assert not list(out.rglob(".*.part*"))


def test_killed_worker_is_replaced_and_its_file_retried(local_ray, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    killed = []

    def on_event(kind, info):
        if kind == "start" and info["input"].endswith("a.mp4") and not killed and info["pid"]:
            os.kill(info["pid"], signal.SIGKILL)
            killed.append(info["pid"])

    res = batch.run([str(tree / "a.mp4"), str(tree / "c.png")], str(out), _args(), workers=1, retries=2,
                    progress=False, on_event=on_event)
    assert killed and res.failed == 0 and res.done == 2
    rows = _rows(out)
    assert len(rows) == 2
    a = next(r for r in rows if r["input"].endswith("a.mp4"))
    assert a["status"] == "done" and a["attempts"] == "2" and a["frames"] == "6"
    assert not list(out.rglob(".*.part*"))
    assert len(_decode(out / "a.mp4")) == 6


def test_worker_dying_every_time_is_failed_after_retries(local_ray, tree: Path, tmp_path: Path) -> None:
    def on_event(kind, info):
        if kind == "start" and info["pid"]:
            os.kill(info["pid"], signal.SIGKILL)

    res = batch.run([str(tree / "c.png")], str(tmp_path / "out"), _args(), workers=1, retries=1,
                    progress=False, on_event=on_event)
    assert res.exit_status == 1 and res.failed == 1
    (row,) = _rows(tmp_path / "out")
    assert row["status"] == "failed" and "worker died" in row["error"] and row["attempts"] == "2"
    assert not (tmp_path / "out" / "c.png").exists()


def test_interrupted_driver_resumes_only_unfinished(local_ray, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    inputs = [str(tree / "c.png"), str(tree / "sub" / "d.jpg"), str(tree / "a.mp4")]

    def stop_after_first(kind, info):
        if kind == "finish":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.run(inputs, str(out), _args(), workers=1, progress=False, on_event=stop_after_first)
    (first,) = [r for r in _rows(out) if r["status"] == "done"]
    first_out = Path(first["output"])
    mtime = first_out.stat().st_mtime_ns
    started = []
    res = batch.run(inputs, str(out), _args(), workers=1, progress=False,
                    on_event=lambda k, i: started.append(i["input"]) if k == "start" else None)
    assert res.already_done == 1 and res.done == 2 and res.failed == 0
    assert first["input"] not in started and len(started) == 2
    assert first_out.stat().st_mtime_ns == mtime
    assert len(_rows(out)) == 3 and all(r["status"] == "done" for r in _rows(out))
    # other options are another job: everything is done again
    res = batch.run(inputs, str(out), _args("--mask-scale", "1.5"), workers=1, progress=False)
    assert res.already_done == 0 and res.done == 3


def test_two_node_cluster_runs_the_same_job(tree: Path, tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        res = batch.run([str(tree / "c.png"), str(tree / "sub" / "d.jpg"), str(tree / "sub" / "b.mp4")],
                        str(tmp_path / "out"), _args(), workers=2, address=cluster.address, progress=False)
        assert res.done == 3 and res.exit_status == 0
        assert {r["status"] for r in _rows(tmp_path / "out")} == {"done"}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--workers", "-3"], ["--retries", "-1"],
                                  ["--mask-scale", "nan"], ["--workers", "two"]])
def test_bad_batch_options_exit_2_before_anything_starts(argv, tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    write_image(str(tmp_path / "in" / "a.png"), _face_frames(1, 0)[0])
    try:
        rc = cli.main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *argv])
    except SystemExit as exc:  # argparse's own refusal of a non-integer
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert not (tmp_path / "out" / batch.MANIFEST_NAME).exists()


def test_unreachable_cluster_address_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    """Ray waits minutes for an address nothing answers at; the command says so at once."""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if ray.is_initialized():
        ray.shutdown()
    (tmp_path / "in").mkdir()
    write_image(str(tmp_path / "in" / "a.png"), _face_frames(1, 0)[0])
    rc = cli.main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--address", f"127.0.0.1:{port}",
                   *RUN])
    err = capsys.readouterr().err
    assert rc == 2 and "no Ray cluster answers" in err and "Traceback" not in err


def test_output_that_is_a_file_or_collides_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    _write_clip(tmp_path / "in" / "v.webm.mp4", _face_frames(2, 0))
    (tmp_path / "in" / "v.webm").write_bytes((tmp_path / "in" / "v.webm.mp4").read_bytes())
    (tmp_path / "in" / "v.mp4").write_bytes((tmp_path / "in" / "v.webm.mp4").read_bytes())
    (tmp_path / "file").write_text("x")
    assert cli.main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "file"), *RUN]) == 2
    assert "not a folder" in capsys.readouterr().err
    # v.webm and v.mp4 would both become OUT/v.mp4: refused before anything is written
    assert cli.main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *RUN]) == 2
    assert "both be written" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

