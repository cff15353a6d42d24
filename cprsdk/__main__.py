"""``python -m cprsdk`` is the ``cprsdk`` command."""

from __future__ import annotations

import sys

from cprsdk.cli import main

if __name__ == "__main__":
    sys.exit(main())
