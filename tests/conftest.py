"""Fixtures: a real server on a free loopback port, real clients, signal recording."""

from __future__ import annotations

import contextlib
import ftplib
import logging
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from django.contrib.auth import get_user_model

from django_ftpserver import signals as ftp_signals
from django_ftpserver.management.commands.ftpserver import Command
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.runner import FTPServerRunner

# S3 fixtures (a real moto_server process): see tests/s3.py.
from .s3 import moto_server, s3_bucket, s3_requests, s3_settings  # noqa: F401

PASSWORD = "s3cret-pass"

TEST_DB = os.environ.get("FTPSERVER_TEST_DB", "sqlite")
REQUIRE_SERVICES = os.environ.get("FTPSERVER_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip for what this machine lacks; fail instead where CI requires it."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (required: FTPSERVER_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _database_reachable() -> str | None:
    """Return why the configured database server is unreachable, or None.

    Asks the driver directly: pytest-django blocks the ORM outside tests.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    try:
        if TEST_DB == "postgres":
            import psycopg

            psycopg.connect(
                host=db["HOST"],
                port=db["PORT"],
                user=db["USER"],
                dbname="postgres",
                connect_timeout=5,
            ).close()
        else:
            import MySQLdb

            MySQLdb.connect(
                host=db["HOST"],
                port=int(db["PORT"]),
                user=db["USER"],
                passwd=db["PASSWORD"],
                connect_timeout=5,
            ).close()
    except Exception as exc:
        return f"{TEST_DB} is not reachable: {exc}".splitlines()[0]
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if TEST_DB == "sqlite":
        return
    reason = _database_reachable()
    if reason:
        if REQUIRE_SERVICES:
            pytest.exit(f"{reason} (required: FTPSERVER_REQUIRE_SERVICES=1)", returncode=1)
        pytest.exit(f"skipping the {TEST_DB} tests: {reason}", returncode=0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        backends = [name for name in ("postgres", "mysql") if name in item.keywords]
        if backends and TEST_DB not in backends:
            wanted = " or ".join(f"make test-{name}" for name in backends)
            item.add_marker(pytest.mark.skip(reason=f"runs against a database server ({wanted})"))


SIGNAL_NAMES = [name for name in dir(ftp_signals) if name.startswith("ftp_")]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30, what: str = "", interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


def try_login(
    host: str, port: int, user: str = "alice", password: str = PASSWORD, **connect: Any
) -> str:
    """Log in on a fresh connection; return the '230 ...' reply or the error reply."""
    ftp = ftplib.FTP(**connect)
    ftp.connect(host, port, timeout=15)
    try:
        return ftp.login(user, password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


@dataclass
class RunningServer:
    runner: FTPServerRunner
    thread: threading.Thread
    host: str
    port: int

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "server did not stop"

    def connect(
        self, user: str | None = None, password: str = PASSWORD, timeout: float = 10
    ) -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(self.host, self.port, timeout=timeout)
        if user:
            ftp.login(user, password)
        return ftp


REPLY = re.compile(rb"^(\d{3})([ -])(.*)$")


class RawClient:
    """A control connection that sends bytes exactly as given."""

    def __init__(self, server: RunningServer, timeout: float = 10) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.banner = self.read_reply()

    def read_reply(self) -> tuple[int, bytes]:
        """One complete reply (multi-line replies included); checks its form."""
        line = self.file.readline(65536)
        match = REPLY.match(line.rstrip(b"\r\n"))
        assert line.endswith(b"\r\n") and match, f"malformed reply {line[:200]!r}"
        code, sep, text = match.groups()
        if sep == b"-":
            while True:
                more = self.file.readline(65536)
                assert more, "connection closed inside a multi-line reply"
                if more.startswith(code + b" "):
                    break
        return int(code), text

    def codes(self, count: int) -> list[int]:
        """The codes of the next ``count`` replies."""
        return [self.read_reply()[0] for _ in range(count)]

    def write(self, raw: bytes) -> None:
        """Send ``raw`` as given (several lines, part of one), reading nothing."""
        self.sock.sendall(raw)

    def send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw + b"\r\n")
        return self.read_reply()

    def login(self, user: str, password: str = PASSWORD) -> None:
        assert self.send(f"USER {user}".encode())[0] == 331
        assert self.send(f"PASS {password}".encode())[0] == 230

    def pasv_transfer(self, command: bytes, payload: bytes = b"") -> tuple[int, bytes, bytes]:
        """Run a data command over PASV: (final code, final text, data received).

        ``payload`` is sent (then the data connection closed) for uploads.
        """
        code, text = self.send(b"PASV")
        assert code == 227
        numbers = [int(n) for n in re.search(rb"\((\d+(?:,\d+){5})\)", text).group(1).split(b",")]
        data = socket.create_connection(
            (".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]), timeout=10
        )
        code, text = self.send(command)
        received = b""
        if code in (125, 150):
            if payload or command[:4] in (b"STOR", b"APPE", b"STOU"):
                data.sendall(payload)
                data.close()
            else:
                while chunk := data.recv(65536):
                    received += chunk
                data.close()
            code, text = self.read_reply()
        else:
            data.close()
        return code, text, received

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        self.file.close()
        self.sock.close()


def start_server(**options: Any) -> RunningServer:
    """Start ``manage.py ftpserver``'s own code path on a free port, in a thread."""
    options.setdefault("host_port", "127.0.0.1:0")
    command = Command()
    runner = command.create_runner(options)
    thread = threading.Thread(target=runner.run, kwargs={"sender": Command}, daemon=True)
    thread.start()
    host, port = runner.address
    return RunningServer(runner, thread, host, port)


@pytest.fixture(autouse=True)
def _fresh_lockout_state() -> Iterator[None]:
    """Each test starts with no failed logins counted.

    The lockout counts in the cache (``LocMemCache`` here, one per process),
    so without this, failures from 127.0.0.1 in earlier tests would add up
    to a lockout in a later one.
    """
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    def clear() -> None:
        cache = caches["default"]
        if isinstance(cache, LocMemCache):  # never flush a shared Redis
            cache.clear()

    clear()
    yield
    clear()


class DeprecationErrors(logging.Handler):
    """Collects logged exceptions that are deprecation warnings.

    pyproject.toml's ``filterwarnings`` turns a deprecation raised from our
    modules into an exception. On the test's own thread that fails the test;
    on a server thread pyftpdlib or ``send_robust`` logs it and the session
    goes on, so the test might still pass. Logged here, it fails the test.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Some of pyftpdlib's handlers log traceback.format_exc() as the
        # message: the exception being handled is the one logged.
        error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if isinstance(error, (DeprecationWarning, PendingDeprecationWarning)):
            self.errors.append(error)

    def describe(self) -> str:
        """The first error and the deepest line of our own code it went through."""
        error = self.errors[0]
        frames = traceback.extract_tb(error.__traceback__)
        ours = [frame for frame in frames if _is_ours(frame.filename)] or frames
        where = f" at {ours[-1].filename}:{ours[-1].lineno}" if ours else ""
        return f"{type(error).__name__} raised as an error on a server thread{where}: {error}"


def _is_ours(filename: str) -> bool:
    path = Path(filename).resolve()
    root = Path(__file__).resolve().parent.parent
    return any(path.is_relative_to(root / top) for top in ("django_ftpserver", "tests"))


@pytest.fixture(autouse=True)
def deprecation_errors() -> Iterator[DeprecationErrors]:
    """Fail the test when a server thread logged a deprecation warning raised as an error."""
    handler = DeprecationErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    if handler.errors:
        pytest.fail(handler.describe(), pytrace=False)


@pytest.fixture
def server_factory(transactional_db: None) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(**options: Any) -> RunningServer:
        server = start_server(**options)
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.thread.is_alive():
            server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.storages("disk", "s3")``: run the test once per storage.

    ``disk`` is the local filesystem (pyftpdlib's own, homes are directories);
    ``s3`` is ``StorageFS`` on django-storages' ``S3Storage`` against the
    session's ``moto_server``, homes being key prefixes (``home`` is then a
    :class:`tests.s3.S3Path`). Unmarked tests run on disk only.
    """
    marker = metafunc.definition.get_closest_marker("storages")
    if marker is not None and "storage_backend" in metafunc.fixturenames:
        metafunc.parametrize("storage_backend", marker.args, indirect=True)


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> str:
    """Where the accounts' files live: ``disk`` (default) or ``s3``."""
    backend = getattr(request, "param", "disk")
    if backend == "s3":
        request.getfixturevalue("s3_settings")
    return backend


@pytest.fixture
def ftp_server(server_factory: Callable[..., RunningServer], storage_backend: str) -> RunningServer:
    return server_factory()


@pytest.fixture
def make_account(
    transactional_db: None, tmp_path: Path, storage_backend: str
) -> Callable[..., FTPUserAccount]:
    def make(
        username: str = "alice",
        password: str = PASSWORD,
        permission: str = "elradfmwMT",
        home: Path | None = None,
    ) -> FTPUserAccount:
        if storage_backend == "s3":
            home_dir = str(home or username)  # a key prefix in the bucket
        else:
            home = home or tmp_path / "homes" / username
            home.mkdir(parents=True, exist_ok=True)
            home_dir = str(home)
        user = get_user_model().objects.create_user(username, password=password)
        group, _ = FTPUserGroup.objects.get_or_create(
            name=f"g-{permission}"[:30], defaults={"permission": permission}
        )
        return FTPUserAccount.objects.create(user=user, group=group, home_dir=home_dir)

    return make


@pytest.fixture
def account(make_account: Callable[..., FTPUserAccount]) -> FTPUserAccount:
    return make_account()


@pytest.fixture
def home(account: FTPUserAccount, storage_backend: str, request: pytest.FixtureRequest) -> Any:
    """The account's home: a ``Path`` on disk, an ``S3Path`` (same methods) on S3."""
    if storage_backend == "s3":
        from .s3 import S3Path

        return S3Path(request.getfixturevalue("s3_bucket"), account.home_dir.strip("/"))
    return Path(account.home_dir)


@pytest.fixture
def ftp(ftp_server: RunningServer, account: FTPUserAccount) -> Iterator[ftplib.FTP]:
    client = ftp_server.connect(account.user.username)
    yield client
    try:
        client.quit()
    except (OSError, EOFError, AttributeError, ftplib.Error):  # closed by the test
        client.close()


@dataclass
class SignalRecorder:
    """Records every FTP signal sent; waits for ones sent on session threads."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def receiver_for(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            kwargs["sender"] = sender
            with self.condition:
                self.events.append((name, kwargs))
                self.condition.notify_all()

        return receive

    def of(self, name: str) -> list[dict[str, Any]]:
        with self.condition:
            return [kwargs for event, kwargs in self.events if event == name]

    def names(self) -> list[str]:
        with self.condition:
            return [event for event, _ in self.events]

    def wait(self, name: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while len([1 for event, _ in self.events if event == name]) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} {name} signal(s), got {self.names()}")
                self.condition.wait(remaining)
        return self.of(name)

    def settle(self, delay: float = 0.3) -> None:
        """Give session threads time to send anything still pending."""
        time.sleep(delay)


@pytest.fixture
def recorder() -> Iterator[SignalRecorder]:
    recorder = SignalRecorder()
    receivers = []
    for name in SIGNAL_NAMES:
        receiver = recorder.receiver_for(name)
        getattr(ftp_signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield recorder
    for name, receiver in receivers:
        getattr(ftp_signals, name).disconnect(receiver)
