"""Private PostgreSQL and MariaDB servers that a test may restart.

The restart tests stop and start a database server between two logins. The
machine's shared servers serve other test runs at the same time, so these
tests start a server of their own (same binaries, a throwaway data
directory, a free loopback port) and restart that one.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(user: str, command: list[str]) -> list[str]:
    """Run as ``user`` when root (the servers refuse to run as root)."""
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *command]
    return command


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, trust authentication."""

    user = "postgres"

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        pg_ctl = shutil.which("pg_ctl") or (bins[-1] if bins else None)
        if not pg_ctl:
            raise FileNotFoundError("pg_ctl not found")
        self.bindir = Path(pg_ctl).parent
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="ftpserver-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.datadir, self.user, self.user)
        subprocess.run(
            _as_user(self.user, [str(self.bindir / "initdb"), "-D", str(self.datadir),
                                 "-A", "trust", "-U", "postgres", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w",
                                 "-l", str(self.datadir / "log"), "-o", options, *args]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def env(self, name: str) -> dict[str, str]:
        return {"FTPSERVER_TEST_DB": "postgres", "FTPSERVER_TEST_DB_NAME": name,
                "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": "postgres"}  # fmt: skip

    def stop(self) -> None:
        try:
            self._pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB server in a temporary directory, without grant tables."""

    user = "mysql"

    def __init__(self) -> None:
        self.mariadbd = shutil.which("mariadbd") or shutil.which("mysqld")
        if not self.mariadbd:
            for candidate in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
                if os.path.exists(candidate):
                    self.mariadbd = candidate
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not self.mariadbd or not install:
            raise FileNotFoundError("mariadbd or mariadb-install-db not found")
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="ftpserver-maria-"))
        self.process: subprocess.Popen | None = None
        user_args = [f"--user={self.user}"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.datadir, self.user, self.user)
        subprocess.run(
            [install, "--no-defaults", *user_args, f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        self.user_args = user_args

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.mariadbd, "--no-defaults", *self.user_args, f"--datadir={self.datadir}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.datadir}/mysqld.sock", f"--pid-file={self.datadir}/mysqld.pid",
             "--skip-grant-tables", "--innodb-buffer-pool-size=16M", "--skip-log-bin"],
            stdout=subprocess.DEVNULL, stderr=open(self.datadir / "error.log", "ab"),  # noqa: SIM115
        )  # fmt: skip
        _wait_until(lambda: self.connect().close() is None, 60, "MariaDB to accept connections")

    def connect(self, db: str | None = None):
        import MySQLdb

        kwargs = {"db": db} if db else {}
        return MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", **kwargs)

    def restart(self) -> None:
        self._terminate()
        self.start()

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # our own server: a clean shutdown
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def env(self, name: str) -> dict[str, str]:
        return {"FTPSERVER_TEST_DB": "mysql", "FTPSERVER_TEST_DB_NAME": name,
                "MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(self.port), "MYSQL_USER": "root",
                "MYSQL_PASSWORD": ""}  # fmt: skip

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)
