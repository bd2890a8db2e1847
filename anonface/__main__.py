"""``python -m anonface`` runs the ``anonface`` command."""

import sys

from anonface.cli import main

sys.exit(main())
