"""django-ftpserver 1.0's API contracts, as 1.0-era project code and tests use them.

* ``FTPServerRunner.run()`` serves through ``server.serve_forever()``: a
  server class overriding it, or a test patching it, is honoured; stopping
  still works and ``ftp_server_stopped`` is sent once, whatever happens.
* ``FTPAccountAuthorizer().validate_authentication()`` called directly runs
  on the caller's thread and database connection, so it sees the data of a
  ``django.test.TestCase`` (whose transaction other threads cannot see).
"""

from __future__ import annotations

import ftplib
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import TestCase
from pyftpdlib.authorizers import AuthenticationFailed

from django_ftpserver import signals
from django_ftpserver.authorizers import FTPAccountAuthorizer
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.server import DjangoFTPServer, FTPServerConfig, FTPServerRunner

from .conftest import PASSWORD


class ValidateAuthenticationInATestCase(TestCase):
    """1.0's own tests call the authorizer like this, inside a transaction."""

    @classmethod
    def setUpTestData(cls) -> None:
        user = get_user_model().objects.create_user("alice", password=PASSWORD)
        group = FTPUserGroup.objects.create(name="staff", permission="elr")
        FTPUserAccount.objects.create(user=user, group=group, home_dir="/tmp/alice")

    def test_right_password(self) -> None:
        threads: list[threading.Thread] = []
        authenticate = FTPAccountAuthorizer.authenticate

        def recording(self: FTPAccountAuthorizer, *args: Any) -> Any:
            threads.append(threading.current_thread())
            return authenticate(self, *args)

        with mock.patch.object(FTPAccountAuthorizer, "authenticate", recording):
            FTPAccountAuthorizer().validate_authentication("alice", PASSWORD, None)
        assert threads == [threading.current_thread()]  # no hop to a login worker

    def test_wrong_password_and_unknown_user(self) -> None:
        authorizer = FTPAccountAuthorizer()
        with pytest.raises(AuthenticationFailed):
            authorizer.validate_authentication("alice", "wrong", None)
        with pytest.raises(AuthenticationFailed):
            authorizer.validate_authentication("nobody-here", PASSWORD, None)

    def test_sees_changes_made_in_the_test(self) -> None:
        FTPUserAccount.objects.filter(user__username="alice").update(home_dir="/srv/alice")
        authorizer = FTPAccountAuthorizer()
        authorizer.validate_authentication("alice", PASSWORD, None)
        assert authorizer.get_home_dir("alice") == "/srv/alice"


# --- FTPServerRunner.run() and serve_forever()


@pytest.fixture
def stopped_signals() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.ftp_server_stopped.connect(receiver, weak=False)
    yield received
    signals.ftp_server_stopped.disconnect(receiver)


def _runner(**config: Any) -> FTPServerRunner:
    runner = FTPServerRunner(FTPServerConfig(host="127.0.0.1", port=0, **config))
    runner.create_server()
    return runner


def _refused(address: tuple[str, int]) -> bool:
    try:
        ftplib.FTP().connect(*address, timeout=5)
    except OSError:
        return True
    return False


def test_a_patched_serve_forever_is_what_runs(transactional_db, stopped_signals):
    runner = _runner()
    with mock.patch.object(DjangoFTPServer, "serve_forever") as serve_forever:
        runner.run()  # 1.0's tests patch it to return at once: run() returns too
    serve_forever.assert_called_once_with()
    assert len(stopped_signals) == 1
    assert _refused(runner.address)  # the server was closed all the same


def test_serve_forever_raising_still_stops_once(transactional_db, stopped_signals):
    runner = _runner()
    with (
        mock.patch.object(DjangoFTPServer, "serve_forever", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError, match="boom"),
    ):
        runner.run()
    assert len(stopped_signals) == 1
    assert _refused(runner.address)


class RecordingServer(DjangoFTPServer):
    """A project's server class with its own ``serve_forever``."""

    calls: list[str] = []

    def serve_forever(self, *args: Any, **kwargs: Any) -> None:
        RecordingServer.calls.append("before")
        try:
            super().serve_forever(*args, **kwargs)
        finally:
            RecordingServer.calls.append("after")


def test_an_overriding_server_class_serves_and_stops(transactional_db, stopped_signals):
    RecordingServer.calls = []
    runner = _runner(server_class=RecordingServer)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    client = ftplib.FTP()
    client.connect(*runner.address, timeout=10)
    assert client.getwelcome().startswith("220")
    client.quit()
    runner.stop()
    thread.join(15)
    assert not thread.is_alive()
    assert RecordingServer.calls == ["before", "after"]
    assert len(stopped_signals) == 1
    assert _refused(runner.address)


def test_stop_before_run_returns_at_once(transactional_db, stopped_signals):
    runner = _runner()
    runner.stop()
    runner.run()
    assert len(stopped_signals) == 1
