"""``python -m lakekit.cli``: the ``lakekit`` command."""

import sys

from lakekit.cli import main

sys.exit(main())
