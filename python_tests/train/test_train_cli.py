"""`anonface train` / `python -m anonface.train`: argparse wiring, a tiny run, resume, export."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from anonface.models.anonymizer import load_pretrained
from anonface.train.cli import add_parser, main
from anonface.train.config import apply_overrides

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import TINY  # noqa: E402


def _cfg(tmp_path: Path, *extra: str) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(apply_overrides({}, TINY + list(extra))))
    return p


def test_add_parser_registers_train() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    add_parser(sub)
    args = ap.parse_args(["train", "--config", "x.yaml", "--set", "steps=3", "--set", "loss.lambda_l1=2"])
    assert args.cmd == "train" and args.config == "x.yaml" and args.overrides == ["steps=3", "loss.lambda_l1=2"]
    assert callable(args.func)


def test_run_resume_and_export(tmp_path: Path, capsys) -> None:
    cfg = _cfg(tmp_path, "steps=1")
    out = tmp_path / "run"
    assert main(["--config", str(cfg), "--out-dir", str(out), "--export", str(tmp_path / "m.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 1 and summary["steps_run"] == 1
    # resume=auto continues from last.pt up to the new total
    assert main(["--config", str(cfg), "--out-dir", str(out), "--set", "steps=2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 2 and summary["steps_run"] == 1
    assert torch.load(str(out / "last.pt"), weights_only=True)["step"] == 2
    assert load_pretrained(tmp_path / "m.pt").crop_size == 32
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["steps"] == 2 and saved["anonymizer"]["width"] == 8


def test_print_config_and_module_entry(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    r = subprocess.run([sys.executable, "-m", "anonface.train", "--config", str(cfg), "--print-config",
                        "--set", "loss.lambda_l1=4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["loss"]["lambda_l1"] == 4


def test_export_module(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "steps=1")
    main(["--config", str(cfg), "--out-dir", str(tmp_path / "run")])
    from anonface.train.export import main as export_main

    assert export_main([str(tmp_path / "run" / "last.pt"), str(tmp_path / "small.pt"), "--note", "t"]) == 0
    payload = torch.load(str(tmp_path / "small.pt"), weights_only=True)
    assert payload["meta"]["step"] == 1 and payload["meta"]["note"] == "t"
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
