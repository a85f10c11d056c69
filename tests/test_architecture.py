"""docs/architecture.rst cannot go stale: its names exist, its diagram has every module.

The page names code as ``:src:`module.Class.method``` (relative to the
package); each must import, and be defined where it is named. The module
table and diagrams are generated from the code by ``docs/_ext/moduledeps.py``;
these tests check that the generator sees every module and reads imports right.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import django_ftpserver

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "architecture.rst"


def _load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("moduledeps", DOCS / "_ext" / "moduledeps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("moduledeps", module)
    spec.loader.exec_module(module)
    return module


moduledeps = _load_extension()


def page_text() -> str:
    return PAGE.read_text()


def src_names(text: str) -> list[str]:
    return re.findall(r":src:`([^`]+)`", text)


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted``, then follow the attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for name in parts[end:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def section(text: str, title: str) -> str:
    """The text of the section titled ``title`` (up to the next title of its level)."""
    start = text.index(f"\n{title}\n{'=' * len(title)}\n")
    following = re.search(r"\n[^\n]+\n=+\n", text[start + len(title) + 2 :])
    return text[start : start + len(title) + 2 + (following.start() if following else len(text))]


# --- the names the page mentions


def test_the_page_is_in_the_toctree() -> None:
    assert re.search(r"^   architecture$", (DOCS / "index.rst").read_text(), re.M)


@pytest.mark.parametrize("dotted", sorted(set(src_names(page_text()))))
def test_every_name_of_the_page_imports(dotted: str) -> None:
    assert resolve(f"django_ftpserver.{dotted}") is not None
    # And it is defined where the page says, not inherited from elsewhere.
    assert moduledeps.locate(dotted) is None


@pytest.mark.parametrize(
    "dotted",
    sorted(set(re.findall(r"``(pyftpdlib(?:\.\w+)+)``", page_text()))),
)
def test_every_pyftpdlib_name_of_the_page_imports(dotted: str) -> None:
    assert callable(resolve(dotted)) or isinstance(resolve(dotted), type)


def test_every_signal_of_the_page_exists() -> None:
    from django.dispatch import Signal

    from django_ftpserver import signals

    names = set(re.findall(r"``(ftp_\w+)``", page_text()))
    assert len(names) >= 5
    for name in names:
        assert isinstance(getattr(signals, name, None), Signal), name


@pytest.mark.parametrize(("title", "least"), [("A login", 25), ("An upload", 20)])
def test_the_walks_name_the_code(title: str, least: int) -> None:
    names = src_names(section(page_text(), title))
    assert len(names) >= least
    # Each step names methods, not only modules.
    steps = re.split(r"\n#\. ", section(page_text(), title))[1:]
    assert len(steps) >= 7
    for step in steps:
        assert any(name.count(".") >= 2 for name in src_names(step)), step[:60]


# --- every module in the picture and the table


def package_modules() -> set[str]:
    names = {"django_ftpserver"}
    for info in pkgutil.walk_packages(django_ftpserver.__path__, "django_ftpserver."):
        if not info.name.startswith("django_ftpserver.migrations"):
            names.add(info.name)
    return names


def test_the_diagram_reader_finds_every_module() -> None:
    assert set(moduledeps.find_modules()) == package_modules()


def test_every_module_is_in_the_diagrams_and_the_table() -> None:
    modules = moduledeps.read_package()
    source = moduledeps.dot_source(modules)
    packages = moduledeps.dot_source(modules, packages=True)
    table = dict(moduledeps.index_rows())
    drawn = set(moduledeps.boxes(modules))
    for name in package_modules():
        box = moduledeps.node_of(name)
        assert box in table, name
        if moduledeps._is_empty_package(next(m for m in modules if m.name == name)):
            # A package that imports nothing is drawn as the box around its modules.
            assert box in drawn or any(other.startswith(name + ".") for other in drawn), name
            continue
        assert f'"{box}" [label=' in source, name
        assert f'"{moduledeps.node_of(name, packages=True)}" [label=' in packages, name


def test_every_module_says_what_it_is_for() -> None:
    table = dict(moduledeps.index_rows())
    assert [name for name, text in table.items() if not text] == []


def test_the_diagram_draws_the_real_imports() -> None:
    edges = moduledeps.edges(moduledeps.read_package())
    # At import time: the server needs its handlers; checks reads conf.
    assert edges[("django_ftpserver.server", "django_ftpserver.dispatch")] is True
    assert edges[("django_ftpserver.checks", "django_ftpserver.conf")] is True
    # The command imports the daemonizer only when asked to daemonize.
    assert edges[("django_ftpserver.management.commands", "django_ftpserver.daemonizer")] is False


# --- the reader itself, on a package made for it


def test_read_imports(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "conf.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import conf\n"
        "from .b import thing\n"
        "import pkg.conf\n"
        "if TYPE_CHECKING:\n"
        "    from ..other import Type\n"
        "def later():\n"
        "    from . import c\n"
    )
    (root / "sub" / "b.py").write_text("thing = 1\n")
    (root / "sub" / "c.py").write_text("from ..sub.b import thing\n")
    (root / "other.py").write_text("class Type: pass\n")
    modules = moduledeps.find_modules(root, "pkg")
    a = moduledeps.read_imports("pkg.sub.a", root / "sub" / "a.py", modules)
    assert a.imports == {"pkg.conf": True, "pkg.sub.b": True, "pkg.sub.c": False}
    c = moduledeps.read_imports("pkg.sub.c", root / "sub" / "c.py", modules)
    assert c.imports == {"pkg.sub.b": True}


def test_locate() -> None:
    assert moduledeps.locate("server.DjangoFTPServer.move_to_thread") is None
    assert moduledeps.locate("django_ftpserver.conf") is None
    assert "defines no 'nothing_here'" in moduledeps.locate("server.DjangoFTPServer.nothing_here")
    # Inherited from pyftpdlib, not defined by the class: not where the code is.
    assert moduledeps.locate("handlers.DjangoFTPHandler.ftp_USER") is not None
    assert moduledeps.locate("no_such_module.Thing") is not None
