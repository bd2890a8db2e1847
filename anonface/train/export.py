"""Export the anonymizer M of a training checkpoint as a small fp16 file.

``python -m anonface.train.export runs/x/last.pt anonface/weights/anonymizer.pt``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anonface.models.anonymizer import load_pretrained, save_anonymizer

__all__ = ["export_checkpoint"]


def export_checkpoint(train_ckpt: str | Path, out: str | Path, half: bool = True, note: str = "") -> Path:
    """Write M of ``train_ckpt`` (``anonface train``'s ``last.pt``) to ``out``; returns ``out``."""
    import torch

    sd = torch.load(str(train_ckpt), map_location="cpu", weights_only=True)
    model = load_pretrained(train_ckpt)
    meta = {"step": int(sd.get("step", -1)), "config_name": sd.get("config", {}).get("name", ""),
            "heldout_identities": len(sd.get("heldout_names", [])), "note": note}
    save_anonymizer(model, out, half=half, meta=meta)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anonface.train.export", description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    p = export_checkpoint(a.checkpoint, a.out, half=not a.fp32, note=a.note)
    print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
