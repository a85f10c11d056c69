"""Two server processes sharing the machine's Redis lock out together.

Each server is a real ``manage.py ftpserver`` process (``python -m django
ftpserver``) using ``tests.settings_redis``: the test's database and a Redis
cache under a key prefix unique to this run. Skips when Redis is not
reachable, unless FTPSERVER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from django_ftpserver.auth import lockout

from .conftest import PASSWORD, try_login, unavailable

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("FTPSERVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCKED = "Too many failed logins from your address"


@pytest.fixture
def redis_prefix(settings):
    """A Redis cache for this test, under a fresh key prefix, emptied afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        reason = f"Redis is not reachable at {REDIS_URL}: {exc}".splitlines()[0]
        unavailable(reason)
    prefix = f"ftpserver-test-lockout-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    settings.FTPSERVER_LOCKOUT_FAILURES = 4
    settings.FTPSERVER_LOCKOUT_WINDOW = 60
    settings.FTPSERVER_LOCKOUT_DURATION = 30
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


class ServerProcess:
    """``python -m django ftpserver 127.0.0.1:0`` in a process of its own."""

    def __init__(self, prefix: str) -> None:
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
            DJANGO_SETTINGS_MODULE="tests.settings_redis",
            FTPSERVER_TEST_SERVER_DB=str(connection.settings_dict["NAME"]),
            FTPSERVER_TEST_REDIS_URL=REDIS_URL,
            FTPSERVER_TEST_REDIS_PREFIX=prefix,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "ftpserver", "127.0.0.1:0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = self._wait_for_port()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _wait_for_port(self) -> int:
        found: list[int] = []

        def read() -> None:
            for line in self.proc.stdout:
                match = re.search(r"Serving FTP on 127\.0\.0\.1:(\d+)", line)
                if match:
                    found.append(int(match.group(1)))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(30)
        if not found:
            self.stop()
            raise AssertionError(f"server process did not start: {''.join(self.stderr)}")
        return found[0]

    def login(self, user: str = "alice", password: str = PASSWORD) -> str:
        return try_login("127.0.0.1", self.port, user, password)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def processes(redis_prefix, account):
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        server = ServerProcess(redis_prefix)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.slow
def test_failures_on_one_process_lock_the_address_on_another(processes):
    a, b = processes(), processes()
    assert a.login().startswith("230")
    assert b.login().startswith("230")

    # Four failures at once, two on each process: each process counts in
    # Redis, and exactly one of them sees the fourth and locks the address.
    replies: list[str] = []
    threads = [
        threading.Thread(target=lambda s=server: replies.append(s.login("alice", "wrong")))
        for server in (a, b, a, b)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(replies) == 4
    assert all(reply.startswith("530 Authentication failed") for reply in replies), replies

    assert LOCKED in a.login()
    assert LOCKED in b.login()  # with the right password, on the other process
    locked_lines = [
        line for line in a.stderr + b.stderr if "FTP address 127.0.0.1 locked out" in line
    ]
    assert len(locked_lines) == 1, a.stderr + b.stderr

    # This process sees the same state through the same cache.
    assert [item.address for item in lockout.list_lockouts()] == ["127.0.0.1"]
    out = StringIO()
    call_command("listftplockouts", stdout=out)
    assert "127.0.0.1" in out.getvalue()
    call_command("clearftplockout", "127.0.0.1", stdout=StringIO())
    assert a.login().startswith("230")
    assert b.login().startswith("230")


@pytest.mark.slow
def test_a_third_process_joining_later_sees_the_lockout(processes):
    a = processes()
    for _ in range(4):
        lockout.record_failure("127.0.0.1", "mallory")  # as if from a fourth host
    assert LOCKED in a.login()
    c = processes()
    started = time.monotonic()
    assert LOCKED in c.login()
    assert time.monotonic() - started < 3  # refused before any delay or hashing
