"""Database connections against the real PostgreSQL and MariaDB servers.

Run with ``make test-postgres`` / ``make test-mysql``. Connections are
counted by the database server itself (``pg_stat_activity``, the MariaDB
process list), for the test database only, leaving out the test's own.
The restart tests restart a private server started for them (see
``tests/db_servers.py``), never the shared one.
"""

from __future__ import annotations

import ftplib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from .conftest import PASSWORD, REQUIRE_SERVICES, TEST_DB
from .db_servers import PrivateMariaDB, PrivatePostgres, free_port

ROOT = Path(__file__).resolve().parent.parent


def count_server_connections() -> int:
    """Connections to the test database, other than this test's own."""
    from django.conf import settings

    name = connection.settings_dict["NAME"]
    db = settings.DATABASES["default"]
    with connection.cursor() as cursor:
        if TEST_DB == "postgres":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        own = cursor.fetchone()[0]
    if TEST_DB == "postgres":
        import psycopg

        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
        ) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                (name, own),
            ).fetchone()[0]
    import MySQLdb

    conn = MySQLdb.connect(
        host=db["HOST"], port=int(db["PORT"]), user=db["USER"], passwd=db["PASSWORD"]
    )
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
            (name, own),
        )
        return cursor.fetchone()[0]
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.mysql
@override_settings(FTPSERVER_AUTH_WORKERS=3)
def test_100_idle_sessions_hold_at_most_3_connections(server_factory, make_account):
    make_account("alice")
    # 100 sessions from 127.0.0.1: over the default per-address limit.
    ftp_server = server_factory(**{"max-connections-per-ip": 0})
    ftp_server.runner.server.handler.authorizer.workers.idle_timeout = 1.0
    sessions = [ftp_server.connect("alice") for _ in range(100)]
    try:
        for session in sessions:
            session.voidcmd("NOOP")
        held = count_server_connections()
        assert held <= 3, f"100 idle sessions hold {held} connections"
        # Once the login workers are idle, not even those.
        wait_for(lambda: count_server_connections() == 0, 15, "idle workers to disconnect")
        for session in sessions[:5]:
            session.voidcmd("NOOP")
    finally:
        for session in sessions:
            session.close()


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.slow
def test_no_connection_leaks_after_1000_sessions(ftp_server, make_account):
    make_account("alice")
    server = ftp_server.runner.server
    server.handler.authorizer.workers.idle_timeout = 1.0
    fds_before = len(os.listdir("/proc/self/fd"))
    errors: list[BaseException] = []

    def client(count: int) -> None:
        try:
            for _ in range(count):
                ftp_server.connect("alice").quit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(100,)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    wait_for(lambda: server.active_sessions == 0, 15, "the sessions to end")
    wait_for(lambda: count_server_connections() == 0, 15, "every connection to close")
    # Client and server sockets are closed; idle session threads hold none.
    wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds_before + 2, 15, "descriptors to close")


# --- restarting the database server between two logins


class FTPServerProcess:
    """``manage.py ftpserver`` in a subprocess, on a private database."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        paths = [str(ROOT), os.environ.get("PYTHONPATH")]
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        self.env.pop("FTPSERVER_TEST_DB_DIR", None)
        self.home = home
        self.port = free_port()
        self.log = home.parent / "ftpserver.log"
        self.django("migrate", "-v", "0")
        self.django(
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            "from django_ftpserver.models import FTPUserAccount, FTPUserGroup\n"
            f"u = User.objects.create_user('alice', password={PASSWORD!r})\n"
            "g = FTPUserGroup.objects.create(name='g', permission='elradfmwMT')\n"
            f"FTPUserAccount.objects.create(user=u, group=g, home_dir={str(home)!r})\n",
        )
        # Workers keep their connections for a minute here, so the login
        # after the restart surely meets a connection the restart broke.
        code = (
            "import sys; from django_ftpserver.auth.workers import DatabaseWorkers; "
            "DatabaseWorkers.idle_timeout = 60.0; "
            "from django.core.management import execute_from_command_line; "
            "execute_from_command_line(['manage.py', 'ftpserver', sys.argv[1]])"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - the child writes it for its lifetime
        )
        wait_for(self._ready, 30, "the FTP server to listen")

    def django(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the FTP server exited: {self.log.read_text()[-2000:]}")
        try:
            ftplib.FTP().connect("127.0.0.1", self.port, timeout=5).startswith("220")
        except OSError:
            return False
        return True

    def login(self, password: str = PASSWORD) -> str:
        client = ftplib.FTP()
        client.connect("127.0.0.1", self.port, timeout=30)
        try:
            return client.login("alice", password)
        finally:
            client.close()

    def stop(self) -> str:
        self.process.terminate()  # SIGTERM: the runner stops cleanly
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text()


def private_server(kind: str) -> Iterator[PrivatePostgres | PrivateMariaDB]:
    try:
        server = PrivatePostgres() if kind == "postgres" else PrivateMariaDB()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        if REQUIRE_SERVICES:
            raise
        pytest.skip(f"cannot start a private {kind} server: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_db() -> Iterator[PrivatePostgres | PrivateMariaDB]:
    yield from private_server(TEST_DB)


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.slow
def test_restarting_the_database_between_two_logins_fails_no_login(private_db, tmp_path):
    private_db.create_database("ftpdb")
    home = tmp_path / "home"
    home.mkdir()
    server = FTPServerProcess(private_db.env("ftpdb"), home)
    try:
        assert server.login().startswith("230")
        assert server.login().startswith("230")  # cached, on a warm connection
        private_db.restart()
        assert server.login().startswith("230")
        with pytest.raises(ftplib.error_perm, match="530"):
            server.login("wrong")
        assert server.login().startswith("230")
    finally:
        log = server.stop()
    # The login after the restart met the broken connection and retried.
    assert "retrying on a new connection" in log
    assert "Traceback" not in log, log


@pytest.mark.postgres
@pytest.mark.mysql
def test_fast_login_queries_match_the_orm_on_this_backend(ftp_server, make_account):
    from .test_sessions import test_fast_queries_match_the_orm

    test_fast_queries_match_the_orm(ftp_server, make_account)
