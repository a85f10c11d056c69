"""docs/quickstart.rst, typed in as written: a new project, a real server, real clients.

The page's own commands run in a scratch directory, in order (see
``tests/doc_console.py``), from its first ``mkdir`` on: ``python3 -m venv``
with the ``python3`` the reader finds on ``PATH``, and ``pip install`` of a
copy of this checkout, placed where the page puts the clone
(``../django-ftpserver``), with its dependencies from the package index.
Run as root, the suite types the page as ``nobody``, as the page is for an
ordinary user.

Skips when the reader has no ``python3`` (3.10 or later, with ``venv``) or
the package index cannot be reached, unless FTPSERVER_REQUIRE_SERVICES=1
(CI), where that fails.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import doc_console, procs
from .conftest import REQUIRE_SERVICES, unavailable
from .db_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE = DOCS / "quickstart.rst"
END = "The example project"  # what follows is make demo, run by test_example_project

# The reader's own setup, at the top of the page.
INSTALL = (
    re.compile(r"^python3 -m venv venv$"),
    re.compile(r"^\. venv/bin/activate$"),
    re.compile(r"^pip install '\.\./django-ftpserver\[tls\]'$"),
)
PIP_INSTALL = INSTALL[2]
# pip's words when it cannot reach the package index (not the page's fault).
NO_INDEX = re.compile(
    r"(Failed to establish a new connection|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|Connection to \S+ timed out"
    r"|ProxyError|Could not fetch URL)[^'\"\n]*"
)
# What a clone holds: the checkout without its virtualenvs, caches and builds.
NOT_CLONED = shutil.ignore_patterns(
    ".git", ".venv*", ".tox", "*_cache", "__pycache__", "*.egg-info", "build", "dist", "_build",
    "db.sqlite3", "ftp-homes", "results",
)  # fmt: skip
VENV_OK = "import ensurepip, sys, venv; sys.exit(sys.version_info < (3, 10))"


def page_blocks() -> list[doc_console.Block]:
    return doc_console.blocks(PAGE.read_text(), stop_at=END)


def test_the_page_parses_as_expected() -> None:
    """The harness sees the page's steps: a mistake in the page's markup fails here."""
    texts = list(doc_console.iter_commands(page_blocks()))
    assert texts[:2] == ["mkdir ftpdemo", "cd ftpdemo"]
    assert sum(bool(p.search(t)) for t in texts for p in INSTALL) == len(INSTALL)
    assert sum("manage.py ftpserver" in t for t in texts) == 3
    files = [b.lines[0] for b in page_blocks() if b.language == "python"]
    assert files[:1] == ["import ftplib"] and "# myapp/receivers.py" in files


def fresh_shell_env(home: Path) -> dict[str, str]:
    """A new terminal's environment: no virtualenv active, nothing of the suite's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FTPSERVER_", "PYTEST_", "PYTHON", "VIRTUAL_ENV"))
    }
    active = os.environ.get("VIRTUAL_ENV")
    path = env.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(d for d in path if not active or d != f"{active}/bin")
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")  # the reader sees the server's lines
    return env


def with_reader_python3(env: dict[str, str], as_user: list[str]) -> dict[str, str]:
    """``env`` with a ``python3`` the reader can make virtualenvs with first on ``PATH``.

    The first such one on ``PATH``: the one ``PATH`` finds first may be of no
    use to ``nobody`` (pyenv's, in root's home). None: skip, or fail in CI.
    """
    path = env["PATH"].split(os.pathsep)
    tried = []
    for directory in dict.fromkeys(path):
        python3 = Path(directory) / "python3"
        if not python3.is_file():
            continue
        found = subprocess.run(
            [*as_user, str(python3), "-c", VENV_OK], env=env, cwd="/", capture_output=True
        )
        if found.returncode == 0:
            rest = [d for d in path if d != directory]
            return {**env, "PATH": os.pathsep.join([directory, *rest])}
        tried.append(str(python3))
    unavailable(
        f"no python3 (3.10 or later, with venv) on PATH that {'nobody' if as_user else 'we'}"
        f" can run (tried: {', '.join(tried) or 'none'})"
    )


def give_to(path: Path, as_user: list[str]) -> None:
    """Make ``path`` (and all under it) the reader's, when the reader is ``nobody``."""
    if not as_user:
        return
    nobody = pwd.getpwnam("nobody")
    for directory, _, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            os.chown(name, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)


@pytest.fixture
def reader_home(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """The reader's home directory, and the prefix that runs commands as the reader.

    The page is for an ordinary user: when the suite runs as root, the page
    runs as ``nobody`` (in a directory of its own: pytest's ``tmp_path`` is
    private to root), so that nothing on it works only thanks to root.
    """
    if os.geteuid() != 0:
        yield tmp_path, []
        return
    prefix, problem = procs.setpriv_nobody()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"the quickstart cannot run as nobody: {problem}")
        warnings.warn(f"the quickstart runs as root: {problem}", stacklevel=1)
        yield tmp_path, []
        return
    home = Path(tempfile.mkdtemp(prefix="quickstart-"))
    home.chmod(0o755)
    give_to(home, prefix)
    try:
        yield home, prefix
    finally:
        shutil.rmtree(home)


@pytest.fixture
def pip_cache(request: pytest.FixtureRequest, reader_home: tuple[Path, list[str]]) -> Path:
    """A pip cache kept between runs (in pytest's cache), or in the reader's home."""
    home, as_user = reader_home
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        directory = cache.mkdir("quickstart-pip")
        give_to(directory, as_user)
        writable = subprocess.run(
            [*as_user, "test", "-w", str(directory), "-a", "-x", str(directory)]
        )
        if writable.returncode == 0:
            return directory
    return home / ".cache" / "pip"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
@pytest.mark.skipif(not shutil.which("lftp"), reason="lftp is not installed")
@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_quickstart_runs_top_to_bottom(
    reader_home: tuple[Path, list[str]], pip_cache: Path
) -> None:
    home, as_user = reader_home
    env = with_reader_python3({**fresh_shell_env(home), "PIP_CACHE_DIR": str(pip_cache)}, as_user)
    clone = home / "django-ftpserver"
    shutil.copytree(ROOT, clone, ignore=NOT_CLONED, symlinks=True)
    give_to(clone, as_user)
    reader = doc_console.Reader(
        cwd=home,
        env=env,
        as_user=as_user,
        port_map={},
        # Each of the page's three servers on a port of its own, picked at
        # its start: one picked once may be taken by the time the next starts.
        server_ports=lambda: {"2121": str(free_port())},
    )
    try:
        reader.run_page(page_blocks())
    except doc_console.CommandFailed as exc:
        if PIP_INSTALL.search(exc.command):
            cause = NO_INDEX.search(exc.output)
            if cause or exc.timed_out:
                what = cause.group().strip() if cause else str(exc).splitlines()[1]
                unavailable(f"pip cannot reach the package index: {what}")
        raise
    project = home / "ftpdemo"
    venv = project / "venv"
    # The reader's python is the page's virtualenv's, with the copy installed.
    imported = reader.run(
        [
            "python",
            "-c",
            "import django_ftpserver, sys; print(sys.prefix, django_ftpserver.__file__)",
        ]
    )
    prefix, module = imported.stdout.split()
    assert Path(prefix) == venv and Path(module).is_relative_to(venv), imported.stdout
    whoami = reader.run(["id", "-u"])
    assert whoami.stdout.strip() != "0" or not as_user, "the page ran as root"
    # What the page says the reader ends up with.
    assert (project / "ftp-homes/alice/hello.txt").read_text() == "hello, FTP\n"
    assert (project / "ftp-homes/alice/copy.txt").read_text() == "hello, FTP\n"
    assert len(reader.servers) == 3
    assert all(server.process.returncode == 0 for server in reader.servers), [
        server.output() for server in reader.servers
    ]


def test_a_server_whose_port_was_taken_starts_again_on_another(tmp_path: Path) -> None:
    """A port taken between its pick and the server's bind is picked again."""
    (tmp_path / "manage.py").write_text(
        textwrap.dedent(
            f"""\
            import os, sys
            sys.path.insert(0, {str(ROOT)!r})
            os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
            from django.core.management import execute_from_command_line
            execute_from_command_line(sys.argv)
            """
        )
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [str(taken.getsockname()[1]), str(free_port())]
        reader = doc_console.Reader(
            cwd=tmp_path,
            env=doc_console.reader_env(str(Path(sys.executable).parent)),
            port_map={},
            server_ports=lambda: {"2121": ports.pop(0)},
        )
        page = textwrap.dedent(
            """\
            .. code-block:: console

               $ python manage.py ftpserver 127.0.0.1:2121
               ...
               Serving FTP on 127.0.0.1:2121
            """
        )
        reader.run_page(doc_console.blocks(page))
    assert not ports
    assert len(reader.servers) == 1
    assert reader.servers[0].process.returncode == 0, reader.servers[0].output()
    assert f"Serving FTP on 127.0.0.1:{reader.port_map['2121']}" in reader.servers[0].output()
