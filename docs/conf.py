"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html``."""

import sys
from pathlib import Path

# The package is imported from this checkout, installed or not; the
# extensions of these docs live in _ext.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

from django_ftpserver import __version__  # noqa: E402

project = "django-ftpserver"
author = "django-ftpserver developers"
copyright = "django-ftpserver developers"
version = ".".join(__version__.split(".")[:2])
release = __version__

# moduledeps: the module diagram and index of architecture.rst, read from
# the code at build time (needs Graphviz's dot: make system-deps).
extensions: list[str] = ["moduledeps"]
graphviz_output_format = "svg"

root_doc = "index"
exclude_patterns = ["_build"]
default_role = "literal"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

html_theme = "furo"
html_title = f"django-ftpserver {release}"
html_static_path: list[str] = []
