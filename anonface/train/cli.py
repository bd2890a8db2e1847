"""``anonface train``: run the three-player training from a YAML config.

Usage::

    anonface train --config configs/lfw_bottleneck.yaml [--set loss.lambda_l1=2] [--resume auto|PATH]
    python -m anonface.train --config ...
    torchrun --nproc_per_node 2 -m anonface.train --config ...    # DDP (gloo on CPU, nccl on GPU)
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser("train", help="train the anonymizer M with D (and the action detector A)",
                              description=__doc__.splitlines()[0])
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None, help="YAML file with a (partial) TrainConfig")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set loss.lambda_l1=2.0 (repeatable)")
    p.add_argument("--resume", default="auto",
                   help="'auto' (resume from <out_dir>/last.pt when it exists), 'none', or a checkpoint path")
    p.add_argument("--out-dir", default=None, help="override out_dir")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--export", default=None, metavar="PATH",
                   help="also write the final anonymizer (fp16) to PATH")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist
    import yaml

    from anonface.train.config import config_to_dict, load_config

    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)  # training progress shows even when a parent CLI configured WARNING
    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return 0
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if world > 1:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    from anonface.train.datasets import build_train_data
    from anonface.train.trainer import Trainer

    data = build_train_data(cfg.data, seed=cfg.seed)
    trainer = Trainer(cfg, data, rank=rank, world_size=world, device=device)
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    ck = None
    if args.resume == "auto":
        ck = out / "last.pt" if (out / "last.pt").is_file() else None
    elif args.resume not in ("none", ""):
        ck = Path(args.resume)
    if ck is not None:
        trainer.resume(ck)
    summary = trainer.fit(out)
    if args.export and rank == 0:
        trainer.export_anonymizer(args.export)
        summary["exported"] = args.export
    if world > 1:
        # the DDP wrappers hold the process group: free them before it goes, not at interpreter exit
        del trainer
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        print(json.dumps(summary, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="anonface-train", description=__doc__.splitlines()[0])
    _arguments(p)
    return run(p.parse_args(argv))
