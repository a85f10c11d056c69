"""docs/quickstart.rst, typed in as written: a new project, a real server, real clients.

The page's own commands run in a scratch directory, in order (see
``tests/doc_console.py``). The install steps (a virtualenv and ``pip
install`` from the clone) are the only ones not run: the test runs in the
suite's virtualenv with this checkout first on ``PYTHONPATH``, and the
version check right after them proves the reader got this version. Run as
root, the suite types the page as ``nobody``, as the page is for an
ordinary user.
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
from .db_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE = DOCS / "quickstart.rst"
END = "The example project"  # what follows is make demo, run by test_example_project

# The reader's own setup, done by the suite's virtualenv instead.
INSTALL = (
    re.compile(r"^python3 -m venv venv$"),
    re.compile(r"^\. venv/bin/activate$"),
    re.compile(r"^pip install '\.\./django-ftpserver\[tls\]'$"),
)


def reader_env() -> dict[str, str]:
    """The reader's environment: the suite's virtualenv active, this checkout first.

    The package the suite's virtualenv has installed may be another copy
    (an editable install of another checkout): ``PYTHONPATH`` puts this one
    first.
    """
    return {**doc_console.reader_env(str(Path(sys.executable).parent)), "PYTHONPATH": str(ROOT)}


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


@pytest.fixture
def reader_home(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """The reader's home directory, and the prefix that runs commands as the reader.

    The page is for an ordinary user: when the suite runs as root, the page
    runs as ``nobody`` (in a directory of its own: pytest's ``tmp_path`` is
    private to root), so that nothing on it works only thanks to root. If
    ``nobody`` cannot run the suite's ``python`` from ``PATH`` (a
    virtualenv whose interpreter lives in root's home), it runs as root.
    """
    if os.geteuid() != 0:
        yield tmp_path, []
        return
    prefix, problem = procs.nobody_prefix()
    if not problem:
        found = subprocess.run(
            [*prefix, "bash", "-c", "python -c 'import django, django_ftpserver'"],
            env={**reader_env(), "HOME": "/"},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if found.returncode:
            problem = f"nobody cannot run python from PATH: {found.stderr.strip()}"
    if problem:
        warnings.warn(f"the quickstart runs as root: {problem}", stacklevel=1)
        yield tmp_path, []
        return
    home = Path(tempfile.mkdtemp(prefix="quickstart-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    home.chmod(0o755)
    try:
        yield home, prefix
    finally:
        shutil.rmtree(home)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
@pytest.mark.skipif(not shutil.which("lftp"), reason="lftp is not installed")
@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_quickstart_runs_top_to_bottom(reader_home: tuple[Path, list[str]]) -> None:
    home, as_user = reader_home
    reader = doc_console.Reader(
        cwd=home,
        env={**reader_env(), "HOME": str(home)},
        as_user=as_user,
        port_map={},
        # Each of the page's three servers on a port of its own, picked at
        # its start: one picked once may be taken by the time the next starts.
        server_ports=lambda: {"2121": str(free_port())},
        skip=INSTALL,
    )
    reader.run_page(page_blocks())
    assert len(reader.skipped) == len(INSTALL)
    imported = reader.run(
        ["python", "-c", "import django_ftpserver; print(django_ftpserver.__file__)"]
    )
    assert imported.stdout.strip() == str(ROOT / "django_ftpserver" / "__init__.py")
    whoami = reader.run(["id", "-u"])
    assert whoami.stdout.strip() != "0" or not as_user, "the page ran as root"
    project = home / "ftpdemo"
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
