"""``python -m anonface.train`` (also the ``torchrun -m anonface.train`` entry point)."""

from __future__ import annotations

import sys

from anonface.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
