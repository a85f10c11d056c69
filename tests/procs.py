"""Run ``manage.py`` commands as real processes, against a database of their own.

The test database of the pytest process is not visible to a subprocess, so
``project_env`` gives each test a fresh copy of a migrated SQLite database
(with the account ``alice``/``PASSWORD``) and the environment pointing to it.
The subprocesses use ``tests.probe_settings``: their server signals are
appended to ``FTPSERVER_PROBE_FILE`` (see ``tests.signal_probe``).
"""

from __future__ import annotations

import ftplib
import functools
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, wait_until

ROOT = Path(__file__).resolve().parent.parent


def base_env(directory: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FTPSERVER_", "DJANGO_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.probe_settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        FTPSERVER_TEST_DB="sqlite",
        FTPSERVER_TEST_DB_DIR=str(directory),
        FTPSERVER_PROBE_FILE=str(directory / "signals.jsonl"),
    )
    return env


def command_line(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def manage(
    env: dict[str, str], *args: str, check: bool = False, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py <args>`` to completion."""
    return subprocess.run(
        command_line(*args),
        env=env,
        cwd=env["FTPSERVER_TEST_DB_DIR"],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        **kwargs,
    )


def probe_lines(env: dict[str, str], name: str | None = None) -> list[dict[str, Any]]:
    """The signals recorded by the subprocesses of ``env`` (only ``name`` if given)."""
    path = Path(env["FTPSERVER_PROBE_FILE"])
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line for line in lines if name is None or line["signal"] == name]


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


class ServerProcess:
    """``manage.py ftpserver`` in a subprocess, on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.daemonized = "--daemonize" in args
        self.proc = subprocess.Popen(
            command_line("ftpserver", *args),
            env=env,
            cwd=env["FTPSERVER_TEST_DB_DIR"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_started(self, timeout: float = 30) -> dict[str, Any]:
        """Wait for ``ftp_server_started``: the signal handlers are installed then."""

        def started() -> dict[str, Any] | None:
            if not self.daemonized and self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"server exited {self.proc.returncode}: {err or out}")
            lines = probe_lines(self.env, "ftp_server_started")
            return lines[-1] if lines else None

        line = wait_until(started, timeout, "ftp_server_started")
        self.pid, self.host, self.port = line["pid"], line["host"], line["port"]
        return line

    def connect(self, user: str | None = "alice", timeout: float = 10) -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(self.host, self.port, timeout=timeout)
        if user:
            ftp.login(user, PASSWORD)
        return ftp

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(signum)
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database holding the FTP account ``alice``."""
    directory = tmp_path_factory.mktemp("project-template")
    env = base_env(directory)
    manage(env, "migrate", "-v0", check=True)
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "from django_ftpserver.models import FTPUserAccount, FTPUserGroup\n"
        f"user = get_user_model().objects.create_user('alice', password={PASSWORD!r})\n"
        "group = FTPUserGroup.objects.create(name='staff', permission='elradfmwMT')\n"
        "FTPUserAccount.objects.create(user=user, group=group, home_dir='unset')\n",
        check=True,
    )
    return directory / "db.sqlite3"


@pytest.fixture
def project_env(project_template: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of a subprocess using a fresh copy of the template database.

    The account ``alice`` gets ``tmp_path / "home"`` as home directory.
    """
    directory = tmp_path / "project"
    directory.mkdir()
    shutil.copy(project_template, directory / "db.sqlite3")
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(directory / "db.sqlite3") as db:
        db.execute("UPDATE django_ftpserver_ftpuseraccount SET home_dir = ?", (str(home),))
    db.close()
    env = base_env(directory)
    env["TEST_HOME"] = str(home)
    yield env


def as_nobody() -> list[str]:
    """A command prefix running the rest as the unprivileged user ``nobody``."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the server as another user")
    prefix, problem = nobody_prefix()
    if problem:
        pytest.skip(problem)
    return prefix


def nobody_prefix() -> tuple[list[str], str | None]:
    """``setpriv`` arguments that run this interpreter as ``nobody`` (for root), or why not."""
    prefix, problem = setpriv_nobody()
    if problem:
        return [], problem
    return prefix, _nobody_cannot_run_django(tuple(prefix))


def setpriv_nobody() -> tuple[list[str], str | None]:
    """``setpriv`` arguments that run a command as ``nobody`` (for root), or why not."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return [], "setpriv (util-linux) is not installed"
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return [], "no 'nobody' user"
    prefix = [
        setpriv,
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--inh-caps=-all",
    ]
    return prefix, None


@functools.cache
def _nobody_cannot_run_django(prefix: tuple[str, ...]) -> str | None:
    """Why ``nobody`` cannot run this interpreter and import the project, or None.

    A checkout (or its virtualenv) in a directory other users cannot
    enter, such as root's 0700 home, stops ``nobody`` at the interpreter
    or at ``import django``: the test would fail on that, not on what it
    checks.
    """
    env = base_env(Path(tempfile.gettempdir()))
    try:
        result = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                "import django, django_ftpserver, tests.probe_settings",
            ],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as exc:
        result = None
        detail = str(exc)
    if result is not None and result.returncode == 0:
        return None
    if result is not None:
        lines = (result.stderr or result.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit status {result.returncode}"
    return (
        f"user nobody cannot run {sys.executable} and import Django and the project "
        f"(a checkout in a directory other users cannot read?): {detail}"
    )
