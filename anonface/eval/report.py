"""Report writing: a JSON file, a markdown table and a privacy-versus-naturalness plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from anonface.eval._deps import import_matplotlib

logger = logging.getLogger(__name__)

__all__ = ["REFERENCE_REID", "markdown_table", "write_json", "plot_tradeoff", "write_report"]

# Re-identification rates an independent study measured (another team's recogniser, 300 shared LFW pairs),
# keyed by the row label whose setting is closest (blur: cv2.GaussianBlur k=15 / k=31 is sigma 2.6 / 5 px,
# about 0.016 / 0.03 of the ~165 px enlarged LFW face box; solid: a black mask).
REFERENCE_REID: dict[str, tuple[float, str]] = {
    "none": (0.97, "none"),
    "blur 0.016": (0.927, "blur k=15"),
    "blur 0.03": (0.437, "blur k=31"),
    "pixelate 16": (0.097, "pixelate 16x16"),
    "pixelate 8": (0.023, "pixelate 8x8"),
    "solid": (0.01, "black mask"),
    "solid 0": (0.01, "black mask"),
    "noise 50": (0.52, "noise sigma 50"),
}


def _pct(d: dict | None, digits: int = 1) -> str:
    if not d or d.get("value") is None:
        return "—"
    return f"{100 * d['value']:.{digits}f}%"


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison table: one row per method and strength (columns nobody measured are left out)."""
    header = ["method", "re-identified ↓", "re-id, judge must detect ↓", "verification acc.",
              "still a face: CenterFace ↑", "still a face: dlib ↑", "landmark shift ↓", "realism FD ↓",
              "look-alikes ↓", "fps (method)",
              "fps (whole pipeline)", "frame-mAP ↑", "independent re-id"]
    body: list[list[str] | tuple[str, str]] = []
    for r in report.get("rows", []):
        label = r["label"]
        if r.get("unavailable"):
            body.append((label, f"unavailable: {r['unavailable']}"))
            continue
        p = r.get("privacy") or {}
        sp = r.get("speed") or {}
        ut = r.get("utility") or {}
        lm = (p.get("landmark_displacement") or {}).get("mean")
        fd = p.get("realism_fd")
        if fd is None:
            fd_cell = "—"
        else:
            fd_cell = "n/a" if fd.get("value") is None else f"{fd['value']:.3f}"
        ref = REFERENCE_REID.get(label)
        if "frame_map" in ut:
            fm = f"{ut['frame_map']:.3f}"
        elif ut.get("unavailable"):
            fm = "n/a"
        else:
            fm = "—"
        body.append([
            label, _pct(p.get("reid")), _pct(p.get("reid_detecting")), _pct(p.get("verification_accuracy")),
            _pct(p.get("still_face_centerface")), _pct(p.get("still_face_dlib")), _num(lm, ".3f"), fd_cell,
            _pct(p.get("lookalike")),
            _num(sp.get("method_fps"), ".1f"), _num(sp.get("pipeline_fps"), ".2f"), fm,
            f"{100 * ref[0]:.1f}% ({ref[1]})" if ref else "—",
        ])
    full = [row for row in body if isinstance(row, list)]
    keep = [0] + [j for j in range(1, len(header)) if any(row[j] != "—" for row in full)] if full else \
        list(range(len(header)))
    lines = ["| " + " | ".join(header[j] for j in keep) + " |", "|" + "---|" * len(keep)]
    for row in body:
        if isinstance(row, tuple):
            lines.append(f"| {row[0]} | {row[1]} |" + " |" * (len(keep) - 2))
        else:
            lines.append("| " + " | ".join(row[j] for j in keep) + " |")
    return "\n".join(lines) + "\n"


def _notes(report: dict[str, Any]) -> str:
    out = []
    u = report.get("untouched")
    if u:
        out.append(
            f"Judge (dlib ResNet, distance < 0.6) on the untouched pairs: accuracy {_pct(u['judge_accuracy'])} "
            f"({u['pairs_same']} same-person + {u['pairs_different']} different-person pairs, {u['images']} images); "
            f"same-person pairs matched {_pct(u['judge_same_match'])}. Judge fallback boxes: "
            f"{u['judge_fallback_boxes']}; CenterFace fallback boxes: {u['centerface_fallback_boxes']}."
        )
    rr = report.get("realism_reference")
    if rr:
        if rr.get("images"):
            out.append(
                f"Realism FD: Frechet distance between Gaussians fitted to the judge's 128-d descriptors of the "
                f"anonymized faces (where the judge found the untouched face) and of {rr['images']} untouched "
                f"images of {rr['identities']} other people (fold {', '.join(map(str, rr['folds']))}); lower is "
                f"closer to real faces. The none row is the floor two samples of untouched faces give; "
                f"n/a: fewer than {rr['min_samples']} descriptors in a set."
            )
        else:
            out.append(f"Realism FD not measured: {rr.get('note') or 'no reference images'}.")
        reasons = sorted({((r.get("privacy") or {}).get("realism_fd") or {}).get("reason")
                          for r in report.get("rows", [])} - {None})
        if reasons:
            out.append("Realism FD n/a: " + "; ".join(reasons) + ".")
    if any((r.get("privacy") or {}).get("lookalike") for r in report.get("rows", [])):
        out.append(
            "Look-alikes: of all pairs of different people among the anonymized faces, the share the judge calls "
            "the same person (its descriptors where it found the untouched face, distance < 0.6); the none row is "
            "the judge's false-match rate on the untouched faces. A method that gives everybody one face scores "
            "100%. Pairs share faces, so no interval is given."
        )
    s = report.get("speed_clip")
    if s:
        out.append(
            f"Speed on the first {s['frames']} frames of `{s['clip']}` ({s['width']}x{s['height']}, "
            f"{s['faces_per_frame']:.1f} faces per frame). fps (method): the method alone on CenterFace's "
            f"boxes (median of repeats); fps (whole pipeline): `anonface.Anonymizer` with its defaults "
            f"(CenterFace at full resolution, tracking, the method). CenterFace alone (cv2.dnn, full "
            f"resolution): {s['detector_fps']:.2f} fps."
        )
    ut = report.get("utility_note")
    if ut:
        out.append(f"Utility: {ut}")
    return "\n\n".join(out) + ("\n" if out else "")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")


def plot_tradeoff(report: dict[str, Any], path: Path) -> bool:
    """Re-identification (x) against "still a face" (y, CenterFace and dlib), one point per row.

    Returns False (and writes nothing) when no row has both figures.
    """
    pts = []
    for r in report.get("rows", []):
        p = r.get("privacy") or {}
        x = (p.get("reid") or {}).get("value")
        yc = (p.get("still_face_centerface") or {}).get("value")
        yd = (p.get("still_face_dlib") or {}).get("value")
        if x is not None and (yc is not None or yd is not None):
            pts.append((r["label"], r["method"], x, yc, yd))
    if not pts:
        return False
    plt = import_matplotlib()
    colors = {"none": "black", "blur": "tab:blue", "pixelate": "tab:orange", "solid": "tab:gray",
              "noise": "tab:green", "learned": "tab:red", "composite": "tab:purple",
              "smooth-mosaic": "tab:brown"}
    strength = {r["label"]: r.get("strength") for r in report.get("rows", [])}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), sharex=True, sharey=True)
    for ax, idx, title in ((axes[0], 3, "CenterFace (threshold {t})"), (axes[1], 4, "dlib frontal detector")):
        placed = [(lab, m, 100 * x, 100 * (yc, yd)[idx - 3]) for lab, m, x, yc, yd in pts
                  if (yc, yd)[idx - 3] is not None]
        # one line per method through its strengths, so each family reads as a curve
        for method in dict.fromkeys(m for _, m, _, _ in placed):
            fam = sorted((p for p in placed if p[1] == method), key=lambda p: strength.get(p[0]) or 0.0)
            ax.plot([p[2] for p in fam], [p[3] for p in fam], "-o", color=colors.get(method, "tab:purple"),
                    ms=6, lw=1, alpha=0.9, label=method, zorder=3)
        # points that (nearly) coincide share one stacked label
        clusters: list[list[tuple[str, str, float, float]]] = []
        for p in placed:
            for c in clusters:
                if abs(c[0][2] - p[2]) < 3.0 and abs(c[0][3] - p[3]) < 3.0:
                    c.append(p)
                    break
            else:
                clusters.append([p])
        done: list[tuple[float, float]] = []
        for c in sorted(clusters, key=lambda c: c[0][2]):
            x, y = c[0][2], c[0][3]
            right = x > 80
            # labels of neighbours on one level step down (or up) so they do not overprint
            level = sum(1 for (dx, dy) in done if abs(dx - x) < 25 and abs(dy - y) < 6)
            done.append((x, y))
            dy = (6 + 11 * level) if y < 50 else (-4 - 11 * level)
            ax.annotate("\n".join(p[0] for p in c), (x, y), textcoords="offset points",
                        xytext=(-6 if right else 6, dy), ha="right" if right else "left",
                        va="bottom" if y < 50 else "top", fontsize=7.5)
        ax.legend(loc="center right", fontsize=8)
        thr = (report.get("protocol") or {}).get("face_thresh", "?")
        ax.set_title("still a face: " + title.format(t=thr))
        ax.set_xlabel("re-identified by dlib (% of same-person pairs), lower is more private")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(-3, 103)
        ax.set_ylim(-3, 103)
    axes[0].set_ylabel("anonymized faces still detected as a face (%)")
    n = (report.get("untouched") or {}).get("pairs_same")
    fig.suptitle(f"Privacy vs naturalness on LFW ({n} same-person pairs, one image of each anonymized): "
                 "best is top left (rarely re-identified, still a face)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(report: dict[str, Any], out_dir: Path, *, plot: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (when matplotlib is there) ``privacy_vs_naturalness.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    write_json(report, paths["json"])
    md = "# anonface evaluation\n\n"
    if report.get("command"):
        md += f"Command: `{report['command']}`\n\n"
    md += markdown_table(report) + "\n" + _notes(report)
    paths["markdown"].write_text(md)
    if plot:
        png = out_dir / "privacy_vs_naturalness.png"
        if plot_tradeoff(report, png):
            paths["plot"] = png
    return paths
