"""Helpers shared by the benchmark scripts: timing, machine facts, table printing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, text=True, stderr=subprocess.DEVNULL
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, *, repeat: int = 10, warmup: int = 2, min_time: float = 0.0) -> dict:
    """Median and spread of ``fn``'s wall time in milliseconds (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start_all) < min_time:
        if device.startswith("cuda"):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 200:
            break
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    return {"median_ms": statistics.median(times), "p10_ms": q(0.1), "p90_ms": q(0.9), "runs": len(times)}


def time_interleaved(fns: dict[str, Callable[[], object]], device: str, *, repeat: int = 15, warmup: int = 2) -> dict:
    """Time several implementations round-robin (one call of each per round), so that load from
    other processes on a shared machine hits all of them alike. Returns ``{name: stats}``."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {
            "median_ms": statistics.median(ts),
            "p10_ms": ts[int(0.1 * (len(ts) - 1))],
            "p90_ms": ts[int(0.9 * (len(ts) - 1))],
            "runs": len(ts),
        }
    return out


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def write_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    out_dir = Path(out_dir) if out_dir else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(payload, indent=2))
    return path


def save_results(path: Path, payload: dict) -> None:
    """Write ``payload`` (plus the command that ran) as JSON to ``path`` and say where."""
    import sys

    payload = {**payload, "command": " ".join([sys.executable, *sys.argv])}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def anonymizer_kwargs(cfg: dict) -> dict:
    """A flat benchmark configuration, where Anonymizer arguments and detector options mix (as in
    ``anonface.cli.FAST_PRESET``), as keyword arguments of :class:`anonface.Anonymizer`: the names
    it does not take itself go into ``detector_options`` (which checks them)."""
    import inspect

    from anonface import Anonymizer

    own = set(inspect.signature(Anonymizer.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in cfg.items() if k in own}
    options = {k: v for k, v in cfg.items() if k not in own}
    if options:
        kwargs["detector_options"] = {**kwargs.get("detector_options", {}), **options}
    return kwargs
