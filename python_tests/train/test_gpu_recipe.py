"""The GPU training recipe's data folder (tools/pack_gpu_train_data.py): small enough to travel,
loadable by the trainer as the shared folder is, and holding nothing of the held-out identities."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import load_tool, shared_data  # type: ignore[import-not-found]

from anonface.data.lfw import pair_fold, read_pairs
from anonface.train.config import DataConfig
from anonface.train.datasets import build_train_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lfw_fake import fake_data as _fake_data  # noqa: E402


def _packer():
    return load_tool("pack_gpu_train_data")


def test_packed_folder_trains_like_the_shared_one_without_held_out_faces(tmp_path, monkeypatch) -> None:
    src = shared_data()
    if not (src / "lfw_pairs" / "pairs.txt").is_file() or not (src / "lfw_identities_extra").is_dir():
        pytest.skip("needs the shared LFW data (lfw_pairs, lfw_identities_extra)")
    out = tmp_path / "train_data"
    size = _packer().pack(src, out, [1, 2, 3, 4], [5, 6])
    assert 0 < size < 58 * 2**20  # travels with the working tree (64 MiB in all)
    pairs = read_pairs(src / "lfw_pairs" / "pairs.txt")
    heldout = {n for p in pair_fold(pairs, [5, 6]) for n in (p.name1, p.name2)}
    present = {d.name for d in out.rglob("*") if d.is_dir()}
    assert heldout and not (heldout & present)
    cfg = DataConfig(face_box="pipeline", colour_share=0.3)
    monkeypatch.setenv("ANONFACE_DATA", str(src))
    want = build_train_data(cfg)
    monkeypatch.setenv("ANONFACE_DATA", str(out))
    got = build_train_data(cfg)
    assert got.faces.names == want.faces.names
    assert len(got.faces) == len(want.faces) and got.heldout_names == want.heldout_names


def test_pack_keeps_held_out_people_out_and_refuses_to_replace_other_folders(tmp_path) -> None:
    pack = _packer().pack
    src = _fake_data(tmp_path / "data")
    out = tmp_path / "packed"
    assert pack(src, out, [1], [3]) > 0
    present = {d.name for d in out.rglob("*") if d.is_dir()}
    assert {"Ann_A", "Bob_B", "Cy_C", "Di_D"} <= present and not ({"Ed_E", "Fay_F"} & present)  # held out: fold 3
    gray = {d.name for d in (out / "lfw_pairs" / "images_250_gray").iterdir()}
    assert gray == {"Ann_A", "Bob_B"}  # the pairs images of the train fold only (others via the extra folder)
    assert pack(src, out, [1, 2], [3]) > 0  # its own earlier output is replaced
    assert {d.name for d in (out / "lfw_pairs" / "images_250_gray").iterdir()} == {"Ann_A", "Bob_B", "Cy_C", "Di_D"}
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    for bad_out, match in [(keep, "not a folder this tool packed"), (afile, "not a folder this tool packed"),
                           (src / "inside", "overlaps the data folder"), (src, "overlaps the data folder"),
                           (tmp_path, "overlaps the data folder")]:
        with pytest.raises(ValueError, match=match):
            pack(src, bad_out, [1], [3])
    assert (keep / "notes.txt").read_text() == "mine" and afile.read_text() == "mine" and src.is_dir()
    with pytest.raises(ValueError, match="overlap"):
        pack(src, tmp_path / "new", [1, 3], [3])
    with pytest.raises(ValueError, match=r"folds \[0, 7\] are not in the pairs file"):
        pack(src, tmp_path / "new", [0, 1], [7])
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("max_mb", ["0", "-5", "nan", "inf"])
def test_pack_refuses_a_size_limit_that_is_not_a_positive_number(max_mb, tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        _packer().main(["--out", str(tmp_path / "o"), "--max-mb", max_mb])
    assert exc.value.code == 2 and not (tmp_path / "o").exists()
