"""The GPU training recipe's data folder (tools/pack_gpu_train_data.py): small enough to travel,
loadable by the trainer as the shared folder is, and holding nothing of the held-out identities."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import shared_data  # type: ignore[import-not-found]

from anonface.data.lfw import pair_fold, read_pairs
from anonface.train.config import DataConfig
from anonface.train.datasets import build_train_data

REPO = Path(__file__).resolve().parents[2]


def _packer():
    spec = importlib.util.spec_from_file_location("pack_gpu_train_data", REPO / "tools" / "pack_gpu_train_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
