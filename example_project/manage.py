#!/usr/bin/env python
"""Django's command-line utility for the example project.

Run from this directory (``make demo`` does): ``python manage.py demo``.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    # The repository root, so that django_ftpserver imports from this checkout
    # even when the package is not installed (it is, in ``make demo``'s venv).
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
