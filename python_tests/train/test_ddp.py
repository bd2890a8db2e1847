"""DistributedDataParallel with 2 CPU processes (gloo): ranks see different batches but stay in sync."""

from __future__ import annotations

import faulthandler
import gc
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, store: str, out: str) -> None:
    # a native abort in a rank (e.g. std::terminate in gloo) then prints where each thread was
    faulthandler.enable(all_threads=True)
    sys.path.insert(0, str(HERE))
    from _tiny import tiny_config

    from anonface.train.datasets import build_train_data
    from anonface.train.trainer import Trainer

    torch.set_num_threads(1)
    # a file store, not a TCP port: a port picked free here can be taken by another process
    # (e.g. a Ray worker left by an earlier test) before rank 0 binds it
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    cfg = tiny_config("d_pretrain_steps=1", "a_pretrain_steps=1", "steps=2")
    t = Trainer(cfg, build_train_data(cfg.data, seed=0), rank=rank, world_size=world)
    init = {k: torch.cat([p.detach().flatten().clone() for p in m.parameters()]) for k, m in t._models().items()}
    t._reseed()
    x, _ = t._faces(4)
    batches = [torch.zeros_like(x) for _ in range(world)]
    dist.all_gather(batches, x)
    for _ in range(t.total_steps):
        t.train_step()
    res = {}
    for k, m in t._models().items():
        v = torch.cat([p.detach().flatten() for p in m.parameters()])
        all_v = [torch.zeros_like(v) for _ in range(world)]
        dist.all_gather(all_v, v)
        res[k] = {"same": all(torch.equal(all_v[0], w) for w in all_v[1:]),
                  "moved": not torch.equal(v, init[k])}
    res["batches_differ"] = not torch.equal(batches[0], batches[1])
    # every rank records its view before the teardown, so a crash there is told apart from a training failure
    torch.save(res, f"{out}.{rank}.part")
    os.replace(f"{out}.{rank}.part", f"{out}.{rank}")
    del t  # as anonface.train does: the DDP wrappers go before their process group
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def test_two_process_ddp_stays_in_sync(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path / "res.pt"
    try:
        mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    except mp.ProcessExitedException as e:
        # Two fresh-clone CI runs (of many) saw one rank abort natively ('terminate called without an active
        # exception', std::terminate inside torch's gloo process group); it never reproduced here (92 runs,
        # with and without a loaded machine). When both ranks had already written their results, the abort
        # came in the teardown, after everything this test checks: say so and still check the results.
        written = [Path(f"{out}.{r}").is_file() for r in range(2)]
        if not all(written) or e.signal_name is None:
            raise
        warnings.warn(f"a DDP rank died by {e.signal_name} after writing its results (teardown): {e}", stacklevel=1)
    views = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    for res in views:
        assert res.pop("batches_differ"), "each rank should draw its own batch"
        for k, r in res.items():
            assert r["same"], f"{k} parameters differ between ranks"
            assert r["moved"], f"{k} did not train"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ANONFACE_SLOW") != "1", reason="slow (~20 s): set ANONFACE_SLOW=1")
def test_cli_under_torchrun(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m anonface.train` runs, checkpoints and exports."""
    sys.path.insert(0, str(HERE))
    from _tiny import TINY

    cfg = tmp_path / "tiny.yaml"
    import yaml

    from anonface.train.config import apply_overrides

    d = apply_overrides({}, TINY + ["steps=1", "d_pretrain_steps=1", "threads=1"])
    cfg.write_text(yaml.safe_dump(d))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "anonface.train", "--config", str(cfg), "--out-dir", str(tmp_path / "run")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"step": 2' in r.stdout
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "anonymizer.pt").is_file()
