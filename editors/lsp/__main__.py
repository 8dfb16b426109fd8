"""``python -m editors.lsp``: the same as ``inkstone lsp``."""

import sys

from editors.lsp import main

sys.exit(main())
