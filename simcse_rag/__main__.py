"""``python -m simcse_rag`` runs the CLI."""

import sys

from simcse_rag.cli import main

sys.exit(main())
