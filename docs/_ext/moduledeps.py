"""Draw the modules of ``django_ftpserver`` and their imports, from the code, at build time.

A diagram drawn by hand goes stale with the first module moved; this one is
read from the package each time the docs are built. Every ``.py`` file of
the package is parsed with ``ast`` (nothing is imported) and every import
of another module of the package becomes an edge:

* solid: imported when the module is imported;
* dashed: imported inside a function, when that function first runs (how
  the package breaks its import cycles and keeps optional libraries
  optional);
* imports under ``if TYPE_CHECKING:`` are left out: they only serve type
  checkers.

``.. module-graph::`` draws every module, grouped by subpackage; with
``:packages:`` it draws one box per subpackage instead, the edges between
them merged. The management commands are one box, ``management.commands``,
and migrations are left out. Without Graphviz's ``dot`` on the machine the
directive shows the graph's source instead of failing the build
(``make system-deps`` installs it).

Used by ``docs/architecture.rst``; ``tests/test_architecture.py`` imports
this module to check that the diagram covers every module.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "django_ftpserver"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

#: Modules drawn as one box (their imports merged into it).
COLLAPSED = (f"{PACKAGE}.management.commands",)
#: Modules left out of the picture.
LEFT_OUT = (f"{PACKAGE}.migrations",)

#: Modules nearly everything imports (settings, signals, small helpers): drawn
#: on the right, the edges into them pale, so the others stay legible.
FOUNDATION = tuple(f"{PACKAGE}.{name}" for name in ("conf", "signals", "dispatch", "utils"))

#: Fill colour of each subpackage's boxes; the top-level modules are white.
COLOURS = {
    "handler": "#dbeafe",
    "auth": "#fee2e2",
    "storage": "#dcfce7",
    "connections": "#fef3c7",
    "policy": "#ede9fe",
    "ops": "#e0f2fe",
    "management": "#f3f4f6",
    "templatetags": "#f3f4f6",
}


@dataclass
class Module:
    """One module of the package: its dotted name and what it imports from the package."""

    name: str
    path: Path
    #: Imported module -> True if imported at import time, False if only inside functions.
    imports: dict[str, bool] = field(default_factory=dict)


def module_name(path: Path, root: Path = PACKAGE_DIR, package: str = PACKAGE) -> str:
    """The dotted name of the module in ``path`` (a package's ``__init__.py``: the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def find_modules(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name, migrations left out."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root, package)
        if not name.startswith(LEFT_OUT):
            modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement names."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def read_imports(name: str, path: Path, known: Iterable[str]) -> Module:
    """The imports of module ``name`` (in ``path``) of the modules in ``known``."""
    known = set(known)
    is_package = path.name == "__init__.py"
    found = Module(name, path)

    def add(target: str, at_import: bool) -> None:
        # "from .auth import lockout" names the module auth.lockout, not auth.
        while target and target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            found.imports[target] = found.imports.get(target, False) or at_import

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other, at_import)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, at_import)
            elif isinstance(child, ast.ImportFrom):
                source = _resolve(name, is_package, child)
                for alias in child.names:
                    submodule = f"{source}.{alias.name}"
                    add(submodule if submodule in known else source, at_import)
            inner = at_import and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), True)
    return found


def node_of(module: str, packages: bool = False) -> str:
    """The box ``module`` is drawn in: itself, its collapsed group, or its package."""
    for group in COLLAPSED:
        if module == group or module.startswith(group + "."):
            module = group
    if packages:
        parts = module.split(".")
        if len(parts) > 2:
            return ".".join(parts[:2])
    return module


def read_package(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> list[Module]:
    """Every module of the package with its imports."""
    modules = find_modules(root, package)
    return [read_imports(name, path, modules) for name, path in modules.items()]


def _is_empty_package(module: Module) -> bool:
    """A package ``__init__`` that imports nothing: its box would say nothing."""
    return module.path.name == "__init__.py" and not module.imports


def edges(modules: list[Module], packages: bool = False) -> dict[tuple[str, str], bool]:
    """(from box, to box) -> solid (an import at import time) or dashed."""
    found: dict[tuple[str, str], bool] = {}
    for module in modules:
        source = node_of(module.name, packages)
        for target, at_import in module.imports.items():
            key = (source, node_of(target, packages))
            if key[0] != key[1]:
                found[key] = found.get(key, False) or at_import
    return found


def boxes(modules: list[Module], packages: bool = False) -> list[str]:
    """The boxes drawn, sorted."""
    drawn = set()
    for module in modules:
        if _is_empty_package(module):
            continue
        drawn.add(node_of(module.name, packages))
    return sorted(drawn)


def _label(box: str) -> str:
    short = box.removeprefix(PACKAGE + ".")
    if box == PACKAGE:
        return "django_ftpserver"
    if box in COLLAPSED:
        return f"{short}.*"
    return short.rsplit(".", 1)[-1] if "." in short else short


def _subpackage(box: str) -> str | None:
    parts = box.split(".")
    return parts[1] if len(parts) > 2 else None


def dot_source(modules: list[Module], packages: bool = False) -> str:
    """The Graphviz digraph of ``modules``: boxes grouped by subpackage, edges by import."""
    drawn = boxes(modules, packages)
    lines = [
        "digraph django_ftpserver {",
        "  rankdir=LR; ranksep=0.5; nodesep=0.12; newrank=true;",
        '  graph [fontname="Helvetica", fontsize=11];',
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica",'
        " fontsize=11, height=0.3];",
        '  edge [color="#64748b", arrowsize=0.6];',
    ]
    clusters: dict[str | None, list[str]] = {}
    for box in drawn:
        clusters.setdefault(None if packages else _subpackage(box), []).append(box)
    for cluster, members in sorted(clusters.items(), key=lambda item: item[0] or ""):
        indent = "  "
        if cluster is not None:
            lines.append(f'  subgraph "cluster_{cluster}" {{')
            lines.append(f'    label="{cluster}/"; style="rounded"; color="#94a3b8";')
            indent = "    "
        for box in members:
            part = _subpackage(box) or (box.split(".")[1] if "." in box else "")
            colour = COLOURS.get(part, "white")
            lines.append(f'{indent}"{box}" [label="{_label(box)}", fillcolor="{colour}"];')
        if cluster is not None:
            lines.append("  }")
    foundation = [box for box in drawn if box in FOUNDATION]
    if foundation:
        lines.append("  { rank=sink; " + " ".join(f'"{box}";' for box in foundation) + " }")
    for (source, target), solid in sorted(edges(modules, packages).items()):
        if source in drawn and target in drawn:
            attributes = [] if solid else ["style=dashed"]
            if target in FOUNDATION:
                attributes.append('color="#cbd5e1"')
            style = f" [{', '.join(attributes)}]" if attributes else ""
            lines.append(f'  "{source}" -> "{target}"{style};')
    lines.append("}")
    return "\n".join(lines)


# --- where a name of the code is defined


def _flat(statements: list[ast.stmt]) -> Iterable[ast.stmt]:
    """``statements`` with the bodies of ``if``, ``try`` and ``with`` blocks inlined."""
    for statement in statements:
        if isinstance(statement, ast.If):
            yield from _flat(statement.body + statement.orelse)
        elif isinstance(statement, ast.Try):
            yield from _flat(
                statement.body
                + [s for handler in statement.handlers for s in handler.body]
                + statement.orelse
                + statement.finalbody
            )
        elif isinstance(statement, ast.With):
            yield from _flat(statement.body)
        else:
            yield statement


def _defines(statement: ast.stmt, name: str) -> bool:
    if isinstance(statement, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return statement.name == name
    if isinstance(statement, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in statement.targets)
    if isinstance(statement, ast.AnnAssign):
        return isinstance(statement.target, ast.Name) and statement.target.id == name
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name.split(".")[0]) == name for alias in statement.names)
    return False


def locate(dotted: str, root: Path = PACKAGE_DIR, package: str = PACKAGE) -> str | None:
    """Why ``dotted`` (``module.Class.method``) names nothing; None if it names something.

    ``dotted`` is relative to the package (``server.DjangoFTPServer``) or
    absolute (``django_ftpserver.server``).

    Read from the source, nothing imported: a module, then a name defined
    (or imported) in it, then names defined in the body of the class
    found, one level at a time. An attribute a class inherits does not
    count: the docs name the class that holds the code.
    """
    modules = find_modules(root, package)
    full = (
        dotted if dotted == package or dotted.startswith(package + ".") else f"{package}.{dotted}"
    )
    parts = full.split(".")
    for end in range(len(parts), 0, -1):
        module = ".".join(parts[:end])
        if module in modules:
            break
    else:
        return f"no module of {package} in {dotted!r}"
    body: list[ast.stmt] = ast.parse(modules[module].read_text(encoding="utf-8")).body
    where = module
    for name in parts[end:]:
        found = next((s for s in _flat(body) if _defines(s, name)), None)
        if found is None:
            return f"{where} defines no {name!r}"
        where = f"{where}.{name}"
        body = found.body if isinstance(found, ast.ClassDef) else []
    return None


def summary(path: Path) -> str:
    """The first line of a module's docstring (what the module is for), or ""."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return docstring.strip().splitlines()[0] if docstring else ""


def index_rows(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> list[tuple[str, str]]:
    """(module, what it is for) for every module, the collapsed groups as one row."""
    rows: dict[str, str] = {}
    for name, path in find_modules(root, package).items():
        box = node_of(name)
        if box in COLLAPSED:
            if box not in rows:
                rows[box] = summary(find_modules(root, package)[box])
            continue
        rows[name] = summary(path)
    return sorted(rows.items())


# --- the directives


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.parsers.rst import directives
    from sphinx.ext.graphviz import graphviz
    from sphinx.util.docutils import SphinxDirective

    class ModuleGraph(SphinxDirective):
        """``.. module-graph::`` (``:packages:`` for one box per subpackage)."""

        has_content = False
        option_spec = {"packages": directives.flag, "alt": directives.unchanged}

        def run(self) -> list[Any]:
            modules = read_package()
            for module in modules:  # rebuild the page when the code changes
                self.env.note_dependency(str(module.path))
            code = dot_source(modules, packages="packages" in self.options)
            if shutil.which(self.config.graphviz_dot) is None:
                block = nodes.literal_block(code, code)
                block["language"] = "text"
                note = nodes.paragraph(
                    text="(Graphviz's dot is not installed here: the diagram's source follows.)"
                )
                return [note, block]
            node = graphviz()
            node["code"] = code
            current = getattr(self.env, "current_document", None)
            docname = current.docname if current is not None else self.env.docname
            node["options"] = {"docname": docname}
            node["alt"] = self.options.get("alt", "modules of django_ftpserver and their imports")
            box = nodes.container(classes=["module-graph"])
            box += node
            return [box]

    class ModuleIndex(SphinxDirective):
        """``.. module-index::``: a table of every module and the first line of its docstring."""

        has_content = False

        def run(self) -> list[Any]:
            rows = index_rows()
            for name in find_modules().values():
                self.env.note_dependency(str(name))
            table = nodes.table(classes=["module-index"])
            group = nodes.tgroup(cols=2)
            table += group
            group += nodes.colspec(colwidth=30)
            group += nodes.colspec(colwidth=70)
            head = nodes.thead()
            group += head
            head += _row(nodes.Text("Module"), nodes.Text("What it is for"))
            body = nodes.tbody()
            group += body
            for name, text in rows:
                short = name.removeprefix(PACKAGE + ".") or name
                if name in COLLAPSED:
                    short += ".*"
                cell, _ = self.state.inline_text(text, self.lineno)
                body += _row(nodes.literal(short, short), *cell)
            return [table]

    def _row(first: Any, *second: Any) -> Any:
        row = nodes.row()
        for content in ((first,), second):
            entry = nodes.entry()
            entry += nodes.paragraph("", "", *content)
            row += entry
        return row

    def src_role(
        name: str,
        rawtext: str,
        text: str,
        lineno: int,
        inliner: Any,
        options: Any = None,
        content: Any = None,
    ) -> tuple[list[Any], list[Any]]:
        """``:src:`module.Class.method```: a name of the code, checked to exist when building."""
        problem = locate(text)
        node = nodes.literal(rawtext, text, classes=["xref", "src"])
        if problem is None:
            return [node], []
        message = inliner.reporter.warning(f":src:`{text}`: {problem}", line=lineno)
        return [node], [message]

    def add_static(app: Any) -> None:
        app.config.html_static_path.append(str(Path(__file__).parent / "static"))

    app.connect("builder-inited", add_static)
    app.add_css_file("moduledeps.css")
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("module-graph", ModuleGraph)
    app.add_directive("module-index", ModuleIndex)
    app.add_role("src", src_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
