"""``python -m anonface.eval``: the evaluation suite (see ``anonface.eval.cli``)."""

from anonface.eval.cli import main

raise SystemExit(main())
