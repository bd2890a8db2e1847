"""The ``anonface`` command line.

``anonface [run] INPUT... [options]`` anonymizes videos, images and folders of them, with
deface's flags where they overlap (``-o``, ``-t/--thresh``, ``--scale``, ``--mask-scale``,
``--boxes``, ``--replacewith``, ``--mosaicsize``, ``--keep-audio``, ``--ffmpeg-config``,
``--preview``, ``--draw-scores``); ``anonface video.mp4`` without a subcommand works as in deface.

Other subcommands (``train``, ``evaluate``, ``batch``) register themselves: each module named
in :data:`EXTENSIONS` that is importable must define ``add_parser(subparsers)``, which adds its
parser and sets ``func`` with ``parser.set_defaults(func=callable)``; the callable takes the
parsed ``argparse.Namespace`` and returns the exit status.

Exit status: 0 when every input was anonymized, 1 when any failed (the others are still
processed), 2 for bad arguments (including outputs that would collide or overwrite an input,
checked before anything is written), 130 after Ctrl-C and 143 after SIGTERM (the unfinished
output is removed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from anonface.options import DEFAULT_TEMPORAL_SMOOTHING, DEFAULT_THRESHOLD

__all__ = ["main", "build_parser", "EXTENSIONS", "output_path", "plan_outputs", "anonymizer_from_args",
           "anonymize_file"]

log = logging.getLogger(__name__)

#: Modules that add subcommands when they are importable (see the module docstring).
EXTENSIONS = ("anonface.train.cli", "anonface.eval.cli", "anonface.batch")

_DEFACE_METHODS = {"blur": "blur", "solid": "solid", "none": "none", "mosaic": "pixelate"}


def _scale(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        out = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale must be WxH (e.g. 960x540), got {text!r}") from None
    return out  # the sizes are checked with the other numbers (_check_numeric_options)


def _json_dict(text: str) -> dict[str, Any]:
    try:
        val = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--ffmpeg-config must be JSON: {exc}") from None
    if not isinstance(val, dict):
        raise argparse.ArgumentTypeError(f"--ffmpeg-config must be a JSON object, got {text!r}")
    return val


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    from anonface.render import METHODS

    p.add_argument("input", nargs="+", help="video/image files or folders of them")
    p.add_argument("-o", "--output", default=None, metavar="O",
                   help="output file (one input) or folder (an existing one, or any path ending in /, created); "
                        "default: <stem>_anonymized<ext> beside each input")
    p.add_argument("-t", "--thresh", type=float, default=None, metavar="T",
                   help=f"face detection threshold (default {DEFAULT_THRESHOLD}: more faces than deface's 0.2 "
                        "finds, for ~2%% of the frame covered by false detections; 0.1 halves those and misses "
                        "~1-2%% more faces >= 20 px)")
    p.add_argument("-s", "--scale", type=_scale, default=None, metavar="WxH",
                   help="resize frames to WxH for detection (as deface; aspect not kept)")
    p.add_argument("--max-side", type=int, default=None, metavar="N",
                   help="resize the long side to N pixels for detection, keeping the aspect ratio")
    p.add_argument("--upscale", type=float, default=1.0, metavar="F",
                   help="extra detection scale factor for very small faces (e.g. 2)")
    p.add_argument("--mask-scale", type=float, default=1.3, metavar="M",
                   help="enlarge face masks: each side moves out by (M-1) x the face size (default 1.3, as deface)")
    p.add_argument("--boxes", action="store_true", help="use box masks instead of ellipses")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="anonymization method (default pixelate: ~10 cells across each face box)")
    p.add_argument("--replacewith", choices=sorted(set(_DEFACE_METHODS) | set(METHODS)), default=None,
                   help="deface's name for --method (mosaic = pixelate)")
    p.add_argument("--strength", type=float, default=None,
                   help="method parameter: pixelate cells per box, blur sigma / box size, noise sigma, solid grey level")
    p.add_argument("--mosaicsize", type=int, default=None, metavar="PX",
                   help="pixelate with cells of PX pixels (deface's mosaic size) instead of a fixed number per box")
    p.add_argument("-k", "--keep-audio", action="store_true", help="copy the audio stream unchanged")
    p.add_argument("--ffmpeg-config", type=_json_dict, default=None, metavar="JSON",
                   help='encoder settings, e.g. \'{"codec": "libx264", "crf": 20, "preset": "medium"}\' '
                        '(deface keys quality/bitrate/ffmpeg_params are understood)')
    p.add_argument("-p", "--preview", action="store_true", help="show the output while working (needs a display)")
    p.add_argument("--draw-scores", action="store_true", help="draw detection scores onto the output")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1...")
    p.add_argument("--batch-size", type=int, default=8, help="frames per detection/anonymization batch")
    p.add_argument("--checkpoint", default=None, help="model checkpoint for --method learned or composite (default: the one shipped)")
    p.add_argument("--temporal-smoothing", type=float, default=DEFAULT_TEMPORAL_SMOOTHING, metavar="W",
                   help="--method learned/composite in videos: weight (0-0.9) of the previous frame's face and box in each "
                        f"drawn face (default {DEFAULT_TEMPORAL_SMOOTHING}: steadier faces; 0: every frame drawn "
                        "afresh)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the noise method, and of the made-up people of --method composite (and of a "
                        "learned anonymizer that draws one per track) (default 0: the same input gives the same output)")
    p.add_argument("--detect-every", type=int, default=None, metavar="K",
                   help="detect faces on every K-th frame and track them in between (default 1; 6 with --fast)")
    p.add_argument("--fast", action="store_true",
                   help=f"speed preset: detect on every {FAST_PRESET['detect_every']}th frame only (~2x faster; "
                        "misses faces seen for a few frames: 80.4%% of faces >= 20 px covered instead of 99.5%%, "
                        "see README, Recall against ground truth)")
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default=None,
                   help="CenterFace precision: auto (default: int8 with onnxruntime on the CPU, ~2x faster at "
                        "the same recall; fp32 elsewhere), fp32 or int8")
    p.add_argument("--no-track", action="store_true",
                   help="no tracking: only the faces detected in each frame are hidden (not recommended); "
                        "with --detect-every K>1 the frames in between get the boxes of the detections "
                        "on both sides")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "opencv", "torch"), default="auto",
                   help="CenterFace backend (default: onnxruntime on the CPU, torch on a GPU)")
    p.add_argument("--on-error", choices=("mask", "stop"), default="mask",
                   help="when a frame fails: mask it whole and warn (default) or stop with an error")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="only the first N frames of videos")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages (errors still shown)")
    p.set_defaults(func=run_command)


def _register_extensions(sub: Any) -> None:
    for name in EXTENSIONS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a missing extension module is skipped; a broken one is reported.
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        add = getattr(mod, "add_parser", None)
        if callable(add):
            add(sub)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``run`` plus the registered extension subcommands."""
    from anonface import __version__

    parser = argparse.ArgumentParser(
        prog="anonface",
        description="Anonymize faces in videos and images (deface-compatible flags).",
    )
    parser.add_argument("--version", action="version", version=f"anonface {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="anonymize files (the default command)",
                         description="Anonymize faces in videos, images and folders.")
    _add_run_arguments(run)
    _register_extensions(sub)
    return parser


#: Containers that take the default H.264 encoder. Other video inputs (webm, ogv, gif, unknown
#: extensions) get an ``.mp4`` output by default: their own container cannot hold H.264.
_H264_CONTAINERS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts", ".m2ts", ".3gp"}
)


def output_path(src: str, output: str | None, many: bool, subfolder: str = "") -> str:
    """Where ``src``'s result goes: ``<stem>_anonymized<ext>`` beside it, or inside/at ``output``.

    ``output`` is a folder when it exists as one, ends with a path separator, or ``many`` is
    true; ``subfolder`` (the input's folder relative to a folder given as input) is then kept
    under it. Videos whose container cannot hold H.264 get the ``.mp4`` extension.
    """
    from anonface.io import media_kind

    stem, ext = os.path.splitext(os.path.basename(src))
    if media_kind(src) != "image" and ext.lower() not in _H264_CONTAINERS:
        ext = ".mp4"
    default_name = f"{stem}_anonymized{ext}"
    if output is None:
        return os.path.join(os.path.dirname(src), default_name)
    if _names_folder(output) or many:
        return os.path.join(output, subfolder, default_name)
    return output


def _names_folder(output: str) -> bool:
    return os.path.isdir(output) or output.endswith(("/", os.sep))


def _is_earlier_output(name: str) -> bool:
    return os.path.splitext(name)[0].endswith("_anonymized")


def _expand(inputs: Sequence[str], exclude: str | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Files to process as ``(path, subfolder)`` and notes on what folder runs leave out.

    Folders are walked recursively (``subfolder`` is the file's folder relative to the one
    given); hidden files and folders, files that are neither images nor videos, earlier
    results (``*_anonymized.*``), the output folder ``exclude`` and symlinked folders are left
    out, each kind with a note. Files named explicitly are always taken.
    """
    from anonface.io import walk_media

    paths: list[tuple[str, str]] = []
    not_media: list[str] = []
    earlier: list[str] = []
    links: list[str] = []
    for p in inputs:
        if not os.path.isdir(p):
            paths.append((p, ""))
            continue
        found = walk_media(p, exclude)
        not_media += found.not_media
        links += found.links
        for full, rel in found.files:
            if _is_earlier_output(os.path.basename(full)):
                earlier.append(full)
            else:
                paths.append((full, rel))

    def some(names: list[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    notes = []
    if not_media:
        notes.append(f"skipped {len(not_media)} files that are not images or videos by their extension: "
                     f"{some(not_media)} (name a file explicitly to try it as a video)")
    if earlier:
        notes.append(f"skipped {len(earlier)} earlier results (*_anonymized.*): {some(earlier)}")
    if links:
        notes.append(f"did not follow {len(links)} symlinked folders: {some(links)} (name them explicitly)")
    return paths, notes


def plan_outputs(inputs: Sequence[str], output: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """Every ``(input file, output file)`` of a run, checked before anything is written.

    Returns the pairs and notes on files left out of folder runs (see :func:`_expand`).

    Raises:
        ValueError: no input file; several inputs and ``-o`` that is a file or is named like one
            (``out.mp4``; other names are created as folders); two inputs
            whose results would go to the same file (the first would be lost); an output that
            is one of the inputs (by path, symlink or hard link).
    """
    exclude = output if output is not None and _names_folder(output) else None
    files, notes = _expand(inputs, exclude)
    if not files:
        raise ValueError("no input files" + (f" ({'; '.join(notes)})" if notes else ""))
    many = len(files) > 1 or any(os.path.isdir(p) for p in inputs)
    if output is not None and many and not _names_folder(output):
        from anonface.io import media_kind

        # Several results need a folder; a name that looks like a file is a mistake, not a folder.
        if os.path.exists(output) or media_kind(output) != "unknown":
            raise ValueError(f"with several inputs, -o must be a folder; {output} is not one (write "
                             f"{output.rstrip(os.sep)}{os.sep} to have a folder of that name created)")
    plan = [(src, output_path(src, output, many, rel)) for src, rel in files]

    def key(path: str) -> str:
        return os.path.normcase(os.path.realpath(path))

    def inode(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    sources = {key(src): src for src, _ in plan}
    source_inodes = {i: src for src, _ in plan if (i := inode(src)) is not None}
    taken: dict[str, str] = {}
    for src, dst in plan:
        k = key(dst)
        if k in taken:
            raise ValueError(f"{taken[k]} and {src} would both be written to {dst} (the first result would "
                             "be lost); run them separately with different -o, or rename one")
        taken[k] = src
        other = sources.get(k) or source_inodes.get(inode(dst))  # type: ignore[arg-type]
        if other is not None:
            raise ValueError(f"the output for {src} would be {dst}, which is the input {other}; refusing "
                             "to overwrite an input: choose another -o")
    return plan, notes


def _draw_scores(frame: Any, boxes: Any) -> Any:
    import cv2
    import numpy as np

    out = np.ascontiguousarray(frame).copy()
    for b in boxes:
        cv2.putText(out, f"{b[4]:.2f}", (int(b[0]), max(10, int(b[1]) - 5)),
                    cv2.FONT_HERSHEY_DUPLEX, 0.5, (0, 255, 0))
    return out


def _has_display() -> bool:
    """Whether a preview window can be opened. A display named in the environment is tried in a
    child process first: OpenCV aborts the whole process (exit 134, unfinished output left
    behind) when the display it is given cannot be reached."""
    if sys.platform in ("win32", "darwin"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import subprocess

    probe = "import cv2; cv2.namedWindow('anonface'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        res = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def _frame_hook(args: argparse.Namespace) -> Callable[[Any, Any], Any] | None:
    preview = args.preview and _has_display()
    if args.preview and not preview:
        print("anonface: --preview ignored: no display can be opened", file=sys.stderr)
    if not (preview or args.draw_scores):
        return None

    def hook(frame: Any, boxes: Any) -> Any:
        if args.draw_scores:
            frame = _draw_scores(frame, boxes)
        if preview:
            import cv2

            cv2.imshow("anonface preview (q to hide)", frame[:, :, ::-1])
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                cv2.destroyAllWindows()
                args.preview = False
        return frame

    return hook


#: What ``--fast`` sets (unless given explicitly): the defaults' threshold and int8 detector, on
#: every 6th frame. ~4.5x deface on the 1080p crowd clip (benchmarks/bench_video.py), but far fewer
#: ground-truth faces covered than the defaults (benchmarks/bench_recall.py; README).
FAST_PRESET = {"detect_every": 6, "threshold": DEFAULT_THRESHOLD, "precision": "int8"}


def resolve_speed_options(args: argparse.Namespace) -> dict[str, Any]:
    """``threshold``, ``detect_every`` and ``precision`` from the flags and the ``--fast`` preset."""
    from anonface.detect.centerface import resolve_backend
    from anonface.pipeline import resolve_device

    fast = bool(getattr(args, "fast", False))
    out = {
        "threshold": args.thresh if args.thresh is not None else (FAST_PRESET["threshold"] if fast else DEFAULT_THRESHOLD),
        "detect_every": args.detect_every if args.detect_every is not None
        else (FAST_PRESET["detect_every"] if fast else 1),
    }
    # what precision "auto" means for this device and backend (CenterFace decides it the same way)
    _, out["precision"] = resolve_backend(args.backend, args.precision or "auto", resolve_device(args.device))
    return out


def _device_problem(device: str) -> str | None:
    """Why ``--device`` cannot be used here (a CUDA device without CUDA), or None."""
    import torch

    if device == "auto":
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        return f"--device {device!r} is not a device name (auto, cpu, cuda, cuda:1...): {exc}"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            return f"--device {device}: {why}; use --device cpu (or auto)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
    return None


def _max_frames_problem(max_frames: int | None) -> str | None:
    if max_frames is not None and max_frames < 1:
        return f"--max-frames must be at least 1, got {max_frames}"
    return None


def _check_numeric_options(args: argparse.Namespace, method: str) -> None:
    """ValueError naming the flag for any numeric option out of its range (anonface.options).

    NaN, infinities and values that would blind the detector or leave faces visible are refused
    before anything is read or written (exit status 2, one line).
    """
    from anonface.options import check_option, check_scale, check_strength

    if args.thresh is not None:
        check_option("threshold", args.thresh, "-t/--thresh")
    if args.scale is not None:
        check_scale(args.scale, "--scale")
    if args.max_side is not None:
        check_option("max_side", args.max_side, "--max-side")
    check_option("upscale", args.upscale, "--upscale")
    check_option("mask_scale", args.mask_scale, "--mask-scale")
    check_strength(method, args.strength, "--strength")
    if args.mosaicsize is not None and method == "pixelate":
        check_option("mosaic_px", args.mosaicsize, "--mosaicsize")
    check_option("batch_size", args.batch_size, "--batch-size")
    check_option("temporal_smoothing", args.temporal_smoothing, "--temporal-smoothing")
    if args.detect_every is not None:
        check_option("detect_every", args.detect_every, "--detect-every")


def _warn_skipped_frames(args: argparse.Namespace, detect_every: int) -> None:
    """Say loudly (even with -q) that detecting on every K-th frame trades privacy for speed."""
    if detect_every <= 1:
        return
    flag = "--fast" if getattr(args, "fast", False) else f"--detect-every {detect_every}"
    what = f"{flag} runs the face detector on one frame in {detect_every} only"
    between = ("the frames in between get the boxes of the detections on both sides" if args.no_track
               else "faces are tracked in between")
    print(f"anonface: warning: {what} ({between}): a face visible only between detections (for fewer "
          f"than {detect_every} frames, or hidden on every detected frame) may be missed and left "
          "visible; drop --fast/--detect-every for full coverage", file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """Anonymize every input; returns 0 when all succeeded, 1 otherwise."""
    from anonface.io import MediaError
    from anonface.pipeline import AnonymizationError

    try:
        anon, encoder = anonymizer_from_args(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"anonface: error: {exc}", file=sys.stderr)
        return 2
    _warn_skipped_frames(args, anon.detect_every)
    try:
        # Every output is known and checked before anything is written (no two results to one
        # file, no input overwritten).
        plan, notes = plan_outputs(args.input, args.output)
    except ValueError as exc:
        print(f"anonface: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"anonface: note: {note}", file=sys.stderr)
    # -o names a folder (created as needed, with the inputs' subfolders) unless it is the output file.
    out_folder = args.output is not None and any(dst != args.output for _, dst in plan)
    hook = _frame_hook(args)
    failures = 0
    for src, dst in plan:
        if not args.quiet:
            print(f"Input:  {src}\nOutput: {dst}", file=sys.stderr)
        try:
            if out_folder:
                # The -o folder (and the input's subfolders under it) is created as needed.
                os.makedirs(os.path.dirname(dst), exist_ok=True)
            stats = anonymize_file(src, dst, anon, args, encoder, hook)
        except (MediaError, FileNotFoundError, ValueError, AnonymizationError, OSError) as exc:
            failures += 1
            print(f"anonface: error: {src}: {exc}", file=sys.stderr)
            continue
        except RuntimeError as exc:  # e.g. a kernel error with on_error=stop
            failures += 1
            print(f"anonface: error: {src}: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 - one line per failed file; the run goes on
            failures += 1
            log.debug("%s failed", src, exc_info=True)
            print(f"anonface: error: {src}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if stats.failed_frames:
            print(f"anonface: warning: {src}: {len(stats.failed_frames)} frames could not be "
                  "processed and were masked whole", file=sys.stderr)
        if not args.quiet:
            print(f"Done:   {dst} ({stats.frames} frames, {stats.fps:.1f} frames/s, "
                  f"{stats.faces} face boxes)", file=sys.stderr)
    if failures:
        print(f"anonface: {failures} of {len(plan)} inputs failed", file=sys.stderr)
    return 1 if failures else 0


def _run_video(src: str, dst: str, anon: Any, args: argparse.Namespace, encoder: dict[str, Any],
               hook: Callable[[Any, Any], Any] | None) -> Any:
    from anonface.files import anonymize_video
    from anonface.io import probe_video

    bar = None
    if not args.quiet:
        try:
            from tqdm import tqdm

            total = probe_video(src).frames or None
            if args.max_frames is not None and total:
                total = min(total, args.max_frames)
            bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=False)
        except Exception:  # noqa: BLE001 - probing errors surface in anonymize_video
            bar = None

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n - bar.n)

    try:
        return anonymize_video(src, dst, anonymizer=anon, keep_audio=args.keep_audio, encoder=encoder,
                               max_frames=args.max_frames, progress=progress, on_frame=hook)
    finally:
        if bar is not None:
            bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anonface`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set()
    for action in parser._actions:  # noqa: SLF001 - the subcommand names
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            commands = set(action.choices)
    # deface compatibility: `anonface video.mp4 -o out.mp4` means `anonface run ...`.
    first = next((a for a in argv if a not in ("-v", "--verbose")), None)
    if first is not None and first not in commands and first not in ("-h", "--help", "--version"):
        pos = argv.index(first)
        argv.insert(pos, "run")
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    # Ctrl-C and SIGTERM unwind like errors: the unfinished output's temporary file is removed
    # (atomic writes), and the command ends with one line and 130 / 143, not a traceback.
    with _terminate_raises():
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("anonface: interrupted; unfinished outputs were removed", file=sys.stderr)
            return 130
        except _Terminated:
            print("anonface: terminated; unfinished outputs were removed", file=sys.stderr)
            return 143


def anonymizer_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The :class:`~anonface.pipeline.Anonymizer` and encoder settings that ``anonface run``'s
    options describe (``anonface batch`` builds its workers' with this too).

    Raises:
        ValueError: an option is invalid or options disagree (the message says which).
        FileNotFoundError: a checkpoint for ``--method learned`` is missing.
    """
    from anonface.io import encoder_settings
    from anonface.pipeline import Anonymizer

    method = args.method
    if args.replacewith is not None:
        alias = _DEFACE_METHODS.get(args.replacewith, args.replacewith)
        if method is not None and method != alias:
            raise ValueError(f"--method {method} and --replacewith {args.replacewith} disagree")
        method = alias
    method = method or "pixelate"
    problem = _device_problem(args.device) or _max_frames_problem(args.max_frames)
    if problem:
        raise ValueError(problem)
    _check_numeric_options(args, method)
    encoder = encoder_settings(args.ffmpeg_config)
    speed = resolve_speed_options(args)
    detector_options = {
        "threshold": speed["threshold"], "precision": speed["precision"], "backend": args.backend,
        "scale": args.scale, "max_side": args.max_side, "upscale": args.upscale,
    }
    try:
        anon = Anonymizer(
            method, strength=args.strength, detector="centerface", detector_options=detector_options,
            mask_scale=args.mask_scale, mask="box" if args.boxes else "ellipse", device=args.device,
            batch_size=args.batch_size, detect_every=speed["detect_every"], track=not args.no_track,
            checkpoint=args.checkpoint, on_error=args.on_error,
            mosaic_px=args.mosaicsize if method == "pixelate" else None,
            temporal_smoothing=args.temporal_smoothing, seed=args.seed,
        )
    except RuntimeError as exc:
        raise ValueError(str(exc)) from exc
    return anon, encoder


def anonymize_file(src: str, dst: str, anon: Any, args: argparse.Namespace, encoder: dict[str, Any],
                   hook: Callable[[Any, Any], Any] | None = None) -> Any:
    """Anonymize one image or video ``src`` into ``dst`` (written atomically) with ``anon``;
    returns its :class:`~anonface.pipeline.RunStats`. Errors propagate."""
    from anonface.files import anonymize_image
    from anonface.io import media_kind

    if media_kind(src) == "image":
        return anonymize_image(src, dst, anonymizer=anon, on_frame=hook)
    return _run_video(src, dst, anon, args, encoder, hook)


class _Terminated(BaseException):
    """SIGTERM arrived (raised by the handler :func:`_terminate_raises` installs)."""


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the block runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
