"""Archive-scale batch anonymization on Ray: ``anonface batch`` and :func:`run`.

``anonface batch INPUT... -o OUT_DIR [--workers N] [--address ADDR] [--retries K] [run options]``
anonymizes many files with a pool of long-lived workers, each holding its own detector (and
anonymizer network), on one machine or on a Ray cluster:

* **Inputs**: files, folders (walked recursively; hidden and non-media files are left out with a
  note) and text files listing paths (``*.txt`` / ``*.list``, one path a line, ``#`` comments,
  relative paths taken from the list's folder).
* **Outputs**: ``OUT_DIR`` mirrors the inputs' tree below their common folder, so no two inputs can
  collide; names are kept (videos whose container cannot hold H.264 get ``.mp4``). Every output is
  written to a hidden temporary file and renamed into place, so a killed worker never leaves a
  half-written result; its stale temporary file is removed before the file is retried.
* **Manifest**: ``OUT_DIR/anonface_manifest.csv``, one row per input (``input``, ``output``,
  ``status`` = done | failed | skipped, ``frames``, ``faces``, ``seconds``, ``error``,
  ``attempts``, ``key``). Rows are appended as files finish (a crash of the driver loses at most
  the files in flight) and the file is rewritten with one row per input at the end.
* **Resume**: the same command again skips every input whose row is ``done`` with the same key
  (input size, modification time and the options that change the output) and whose output still
  exists, without touching it; failed inputs are tried again.
* **Faults**: a worker that dies (killed, out of memory) is replaced and its file retried up to
  ``--retries`` times, then marked failed with the reason; a file that fails cleanly (corrupt
  input) is marked failed with its message and never blocks the others. Exit status 1 when any
  input failed, 0 otherwise; 2 for bad arguments or without Ray; 130 after Ctrl-C.

Without ``--address`` (or ``RAY_ADDRESS``) a local Ray starts inside the command with one worker
per 2 cores (one per GPU with a CUDA device); with it, the command joins that cluster unchanged.
Ray is an optional extra: ``pip install 'anonface[cluster]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import hashlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["run", "plan_jobs", "list_inputs", "Manifest", "BatchResult", "add_parser", "MANIFEST_NAME"]

log = logging.getLogger(__name__)

MANIFEST_NAME = "anonface_manifest.csv"
FIELDS = ("input", "output", "status", "frames", "faces", "seconds", "error", "attempts", "key")
LIST_SUFFIXES = (".txt", ".list")
INSTALL_HINT = "anonface batch needs Ray: pip install 'anonface[cluster]' (or pip install ray)"

# Options of `anonface run` that do not change what is written.
_NOT_OUTPUT_OPTIONS = {"input", "output", "quiet", "preview", "func", "command", "verbose", "workers", "address",
                       "retries", "batch_size", "device", "backend"}


class BatchUnavailable(RuntimeError):
    """Ray is not installed."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BatchUnavailable(INSTALL_HINT) from exc
    return ray


# -- planning ------------------------------------------------------------------------------------
def list_inputs(inputs: Sequence[str], exclude: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Absolute paths of the media files that ``inputs`` name, in order, each once, and the
    ``(path, reason)`` of what folders held but were left out (other files, symlinked folders).
    Folders are walked as ``anonface run`` walks them (:func:`anonface.io.walk_media`);
    ``exclude`` (the output folder) is never walked into."""
    from anonface.io import walk_media

    out: list[str] = []
    seen: set[str] = set()
    notes: list[tuple[str, str]] = []

    def add(path: str) -> None:
        path = os.path.abspath(path)
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    def from_list(path: str) -> None:
        base = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                p = line if os.path.isabs(line) else os.path.join(base, line)
                if not os.path.isfile(p):
                    raise ValueError(f"{path}:{n}: {line} is not a file")
                add(p)

    for item in inputs:
        if os.path.isdir(item):
            found = walk_media(item, exclude)
            for full, _ in found.files:
                add(full)
            notes += [(os.path.abspath(f), "not an image or video by its extension") for f in found.not_media]
            notes += [(os.path.abspath(d), "a symlinked folder, not followed (name it as an input)") for d in found.links]
        elif os.path.isfile(item) and item.lower().endswith(LIST_SUFFIXES):
            from_list(item)
        elif os.path.isfile(item):
            add(item)
        else:
            raise ValueError(f"input {item} does not exist")
    return out, notes


def plan_jobs(files: Sequence[str], out_dir: str) -> list[tuple[str, str]]:
    """``(input, output)`` pairs: ``out_dir`` mirrors the inputs' tree below their common folder.

    Raises:
        ValueError: two inputs would share an output (e.g. ``a.webm`` and ``a.mp4`` in one folder,
            both written as ``a.mp4``), or an output would be one of the inputs.
    """
    from anonface.cli import _H264_CONTAINERS
    from anonface.io import media_kind

    if not files:
        return []
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    out_dir = os.path.abspath(out_dir)
    plan = []
    taken: dict[str, str] = {}
    inputs = {os.path.normcase(os.path.realpath(f)) for f in files}
    for src in files:
        rel = os.path.relpath(src, root)
        stem, ext = os.path.splitext(rel)
        if media_kind(src) != "image" and ext.lower() not in _H264_CONTAINERS:
            rel = stem + ".mp4"
        dst = os.path.join(out_dir, rel)
        k = os.path.normcase(os.path.realpath(dst))
        if k in taken:
            raise ValueError(f"{taken[k]} and {src} would both be written to {dst}; rename one")
        if k in inputs:
            raise ValueError(f"the output for {src} would be {dst}, which is an input; choose another -o")
        taken[k] = src
        plan.append((src, dst))
    return plan


def options_digest(args: argparse.Namespace) -> str:
    """A short hash of the options that change what is written (not paths, devices, verbosity)."""
    opts = {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_OUTPUT_OPTIONS}
    if opts.get("checkpoint"):
        opts["checkpoint"] = _file_key(opts["checkpoint"])
    return hashlib.sha256(json.dumps(opts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def input_key(path: str, digest: str) -> str:
    return f"{_file_key(path)}:{digest}"


# -- manifest ------------------------------------------------------------------------------------
class Manifest:
    """``anonface_manifest.csv``: appended to as files finish, rewritten whole by :meth:`compact`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: dict[str, dict[str, str]] = {}
        if os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    if row.get("input"):
                        self.rows[row["input"]] = {k: row.get(k) or "" for k in FIELDS}  # last row wins
        self._fh = None

    def record(self, row: dict[str, Any]) -> None:
        row = {k: "" if row.get(k) is None else str(row.get(k)) for k in FIELDS}
        self.rows[row["input"]] = row
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if self._fh is None:
            self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - kept open
        w = csv.DictWriter(self._fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def compact(self) -> None:
        """Rewrite the file with one row per input (atomically)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            w.writeheader()
            for row in self.rows.values():
                w.writerow(row)
        os.replace(tmp, self.path)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a cluster address nothing answers at (Ray itself waits minutes, then fails).

    ``HOST:PORT`` and ``ray://HOST:PORT`` are tried with a TCP connection; other forms (``auto``)
    are left to Ray.
    """
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
                         "or leave out --address to run on this machine") from None


def _remove_partials(dst: str) -> None:
    """Delete temporary files a killed worker left for ``dst`` (see ``anonface.io.atomic_output``)."""
    stem, ext = os.path.splitext(os.path.basename(dst))
    for p in glob.glob(os.path.join(glob.escape(os.path.dirname(dst)), f".{glob.escape(stem)}.*.part{ext}")):
        with contextlib.suppress(OSError):
            os.unlink(p)


# -- workers -------------------------------------------------------------------------------------
class _Worker:
    """One long-lived worker: builds the anonymizer once, then anonymizes file after file."""

    def __init__(self, args: argparse.Namespace, threads: int) -> None:
        import torch

        from anonface.cli import anonymizer_from_args

        torch.set_num_threads(max(1, threads))
        self.args = args
        self.anon, self.encoder = anonymizer_from_args(args)

    def pid(self) -> int:
        return os.getpid()

    def process(self, src: str, dst: str) -> dict[str, Any]:
        from anonface.cli import anonymize_file

        t0 = time.perf_counter()
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            stats = anonymize_file(src, dst, self.anon, self.args, self.encoder)
        except Exception as exc:  # noqa: BLE001 - a failed file is a row, never a dead worker
            return {"status": "failed", "error": str(exc) or type(exc).__name__,
                    "seconds": round(time.perf_counter() - t0, 3)}
        out = {"status": "done", "frames": stats.frames, "faces": stats.faces,
               "seconds": round(time.perf_counter() - t0, 3), "error": ""}
        if stats.failed_frames:
            out["error"] = f"{len(stats.failed_frames)} frames could not be processed and were masked whole"
        return out


@dataclass
class BatchResult:
    """What :func:`run` did: counts per status and the exit status the command returns."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    frames: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


def _default_workers(ray: Any, gpu: bool) -> int:
    res = ray.cluster_resources()
    if gpu:
        return max(1, int(res.get("GPU", 0)))
    return max(1, int(res.get("CPU", os.cpu_count() or 1)) // 2)


def run(
    inputs: Sequence[str],
    out_dir: str,
    args: argparse.Namespace | None = None,
    *,
    workers: int | None = None,
    address: str | None = None,
    retries: int = 2,
    progress: bool = True,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> BatchResult:
    """Anonymize every media file ``inputs`` name into ``out_dir`` with a pool of Ray workers.

    Args:
        inputs: files, folders and path lists (see the module docstring).
        out_dir: the output folder (created); it mirrors the inputs' tree and holds the manifest.
        args: ``anonface run`` options as parsed by its parser (None: the defaults).
        workers: worker count (None: one per 2 CPUs of the cluster, or one per GPU).
        address: a Ray cluster to join (None: ``RAY_ADDRESS``, else a local Ray started here).
        retries: how often a file whose worker died is tried again on another worker.
        progress: show one progress bar for the whole job.
        on_event: called with ``("start", {"input", "output", "pid"})`` when a file is handed to a
            worker and ``("finish", row)`` when its row is recorded (for monitoring and tests).

    Returns:
        A :class:`BatchResult`; ``exit_status`` is 1 when any input failed.

    Raises:
        BatchUnavailable: Ray is not installed.
        ValueError: bad arguments (nothing is written then).
    """
    ray = _ray()
    if args is None:
        args = _run_parser().parse_args(["placeholder"])
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if retries < 0:
        raise ValueError(f"--retries must be >= 0, got {retries}")
    from anonface.cli import _warn_skipped_frames, anonymizer_from_args

    anon, _ = anonymizer_from_args(args)  # the options are checked here, before a cluster is started
    _warn_skipped_frames(args, anon.detect_every)
    del anon
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"-o {out_dir} exists and is not a folder")
    files, notes = list_inputs(inputs, exclude=out_dir)
    plan = plan_jobs(files, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest = Manifest(os.path.join(out_dir, MANIFEST_NAME))
    digest = options_digest(args)
    result = BatchResult()
    todo: deque[tuple[str, str, str]] = deque()
    for src, dst in plan:
        key = input_key(src, digest)
        row = manifest.rows.get(src)
        if row and row["status"] == "done" and row["key"] == key and os.path.exists(row["output"]):
            result.already_done += 1
            continue
        todo.append((src, dst, key))
    for path, reason in notes:
        if manifest.rows.get(path, {}).get("status") != "skipped":
            manifest.record({"input": path, "status": "skipped", "error": reason})
        result.skipped += 1

    started_ray = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            _check_reachable(address)
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        started_ray = True
    try:
        _run_pool(ray, args, todo, manifest, result, workers, retries, progress, on_event)
    finally:
        manifest.compact()
        if started_ray:
            ray.shutdown()
    return result


def _run_pool(ray: Any, args: argparse.Namespace, todo: deque[tuple[str, str, str]], manifest: Manifest,
              result: BatchResult, workers: int | None, retries: int, progress: bool,
              on_event: Callable[[str, dict[str, Any]], None] | None) -> None:
    want_gpu = args.device.startswith("cuda") or (
        args.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    n = workers or _default_workers(ray, want_gpu)
    n = max(1, min(n, len(todo))) if todo else 0
    cpus = max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)) // max(n, 1))
    worker_args = argparse.Namespace(**vars(args))
    worker_args.quiet = True
    worker_args.device = ("cuda" if want_gpu else "cpu") if args.device == "auto" else args.device
    remote = ray.remote(num_cpus=cpus, num_gpus=1 if want_gpu else 0, max_restarts=0)(_Worker)

    pids: dict[Any, Any] = {}

    def spawn() -> Any:
        actor = remote.remote(worker_args, cpus)
        pids[actor] = actor.pid.remote()  # queued first: known before the worker's first file
        return actor

    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(todo) + result.already_done, initial=result.already_done, unit="file",
                       dynamic_ncols=True)
        except ImportError:
            bar = None
    attempts: dict[str, int] = {}
    idle = [spawn() for _ in range(n)]
    running: dict[Any, tuple[Any, str, str, str]] = {}

    def finish(row: dict[str, Any]) -> None:
        manifest.record(row)
        if row["status"] == "done":
            result.done += 1
            result.frames += int(row.get("frames") or 0)
        else:
            result.failed += 1
            result.failures.append((row["input"], row.get("error", "")))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(frames=result.frames, failed=result.failed, refresh=False)
        if on_event is not None:
            on_event("finish", row)

    try:
        while todo or running:
            while todo and idle:
                src, dst, key = todo.popleft()
                actor = idle.pop()
                attempts[src] = attempts.get(src, 0) + 1
                _remove_partials(dst)
                ref = actor.process.remote(src, dst)
                running[ref] = (actor, src, dst, key)
                if on_event is not None:
                    try:
                        pid = ray.get(pids[actor], timeout=120)
                    except Exception:  # noqa: BLE001 - the worker may already be gone
                        pid = None
                    on_event("start", {"input": src, "output": dst, "pid": pid})
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            actor, src, dst, key = running.pop(ref)
            base = {"input": src, "output": dst, "attempts": attempts[src], "key": key}
            try:
                out = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as exc:
                # the worker died (killed, out of memory): replace it, retry the file elsewhere
                _remove_partials(dst)
                with contextlib.suppress(Exception):
                    ray.kill(actor)
                pids.pop(actor, None)
                idle.append(spawn())
                reason = f"worker died: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("%s: %s (attempt %d)", src, reason, attempts[src])
                if attempts[src] <= retries:
                    todo.appendleft((src, dst, key))
                else:
                    finish({**base, "status": "failed", "error": f"{reason}; gave up after {attempts[src]} attempts"})
                continue
            except ray.exceptions.RayTaskError as exc:  # the worker could not even be built
                idle.append(actor)
                finish({**base, "status": "failed", "error": str(exc.cause if exc.cause else exc)})
                continue
            idle.append(actor)
            finish({**base, **out})
    finally:
        if bar is not None:
            bar.close()
        for actor in idle + [a for a, *_ in running.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)


# -- command line --------------------------------------------------------------------------------
def _run_parser() -> argparse.ArgumentParser:
    from anonface.cli import _add_run_arguments

    p = argparse.ArgumentParser(prog="anonface batch", add_help=False)
    _add_run_arguments(p)
    return p


def add_parser(sub: Any) -> None:
    """Register ``anonface batch`` (called by :mod:`anonface.cli`)."""
    from anonface.cli import _add_run_arguments

    p = sub.add_parser(
        "batch", help="anonymize many files with a pool of workers (Ray; local or a cluster)",
        description="Anonymize files, folders and path lists into OUT_DIR (a mirror of the inputs' tree) "
                    "with long-lived workers on Ray; resumable (anonface_manifest.csv), retries files whose "
                    "worker died. Every `anonface run` option applies to every file.")
    _add_run_arguments(p)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: one per 2 cores, or one per GPU)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray started here)")
    p.add_argument("--retries", type=int, default=2, metavar="K",
                   help="retry a file whose worker died up to K times (default 2)")
    p.set_defaults(func=batch_command)


def batch_command(args: argparse.Namespace) -> int:
    if args.output is None:
        print("anonface: error: batch needs -o OUT_DIR", file=sys.stderr)
        return 2
    try:
        _ray()
    except BatchUnavailable as exc:
        print(f"anonface: error: {exc}", file=sys.stderr)
        return 2
    try:
        res = run(args.input, args.output, args, workers=args.workers, address=args.address,
                  retries=args.retries, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as exc:
        print(f"anonface: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anonface: interrupted; finished files are kept and recorded in the manifest; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    for src, err in res.failures:
        print(f"anonface: error: {src}: {err}", file=sys.stderr)
    if not args.quiet:
        print(f"anonface batch: {res.done} done, {res.already_done} already done, {res.failed} failed, "
              f"{res.skipped} skipped; {res.frames} frames; manifest: "
              f"{os.path.join(os.path.abspath(args.output), MANIFEST_NAME)}", file=sys.stderr)
    return res.exit_status

