"""Sessions served on the accepting loop until they send PASS (``loginloop``).

Most other tests connect a receiver to every signal (the ``recorder``
fixture), so their sessions start on threads of their own; these run
without, the way a project with no ``ftp_client_connected`` receiver does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError

from django_ftpserver import handlers, signals
from django_ftpserver.auth.accounts import AccountLookup
from django_ftpserver.authorizers import FTPAccountAuthorizer
from django_ftpserver.models import FTPUserAccount

from .conftest import PASSWORD, RawClient, RunningServer, wait_until


def djangoserver(running: RunningServer) -> Any:
    return running.runner.server


@pytest.fixture
def raw(ftp_server: RunningServer) -> Iterator[Any]:
    clients: list[RawClient] = []

    def open_client() -> RawClient:
        client = RawClient(ftp_server)
        clients.append(client)
        assert client.banner[0] == 220
        return client

    yield open_client
    for client in clients:
        client.close()


def test_greeting_and_user_are_served_on_the_loop(ftp_server, make_account, raw):
    make_account("alice")
    server = djangoserver(ftp_server)
    client = raw()
    assert client.send(b"USER alice")[0] == 331
    assert server.active_sessions == 1
    assert server.session_threads == 0  # nothing but the loop served it so far
    assert client.send(f"PASS {PASSWORD}".encode())[0] == 230
    wait_until(lambda: server.session_threads == 1, what="the session to get its thread")
    assert client.send(b"QUIT")[0] == 221
    wait_until(lambda: server.active_sessions == 0, what="the session to end")


def test_commands_sent_with_the_password_run_in_order(ftp_server, account, raw, home):
    (home / "a.txt").write_bytes(b"12345")
    client = raw()
    lines = ["USER alice", f"PASS {PASSWORD}", "PWD", "TYPE I", "SIZE a.txt", "NOOP"]
    client.write("".join(line + "\r\n" for line in lines).encode())
    assert client.codes(6) == [331, 230, 257, 200, 213, 200]


def test_wrong_password_with_commands_behind_it(ftp_server, make_account, raw):
    make_account("alice")
    client = raw()
    client.write(b"USER alice\r\nPASS wrong\r\nPWD\r\nNOOP\r\n")
    # As in pyftpdlib: the commands behind a wrong password run (not logged
    # in) while its 530 waits out the failed-login delay.
    assert client.codes(4) == [331, 530, 200, 530]


def test_over_long_line_behind_the_password(ftp_server, make_account, raw):
    make_account("alice")
    client = raw()
    junk = b"X" * 5000
    client.write(f"USER alice\r\nPASS {PASSWORD}\r\n".encode() + junk + b"\r\nNOOP\r\n")
    assert client.codes(4) == [331, 230, 500, 200]


def test_password_split_across_packets(ftp_server, make_account, raw):
    make_account("alice")
    client = raw()
    client.write(b"USER alice\r\nPA")
    assert client.codes(1) == [331]
    time.sleep(0.05)
    client.write(f"SS {PASSWORD}\r\nNO".encode())
    assert client.codes(1) == [230]
    client.write(b"OP\r\n")
    assert client.codes(1) == [200]


def test_disconnect_before_login_is_sent_from_a_session_thread(ftp_server, raw):
    seen: list[tuple[str, Any]] = []
    done = threading.Event()

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append((threading.current_thread().name, kwargs["username"]))
        done.set()

    signals.ftp_client_disconnected.connect(receiver, weak=False)
    try:
        client = raw()
        client.write(b"USER nobody\r\nQUIT\r\n")
        assert client.codes(2) == [331, 221]
        assert done.wait(10)
        time.sleep(0.2)
    finally:
        signals.ftp_client_disconnected.disconnect(receiver)
    assert len(seen) == 1
    thread, username = seen[0]
    assert thread.startswith("ftp-session") and username is None


def test_a_connected_receiver_puts_the_session_on_its_thread_at_once(ftp_server, raw):
    threads: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    signals.ftp_client_connected.connect(receiver, weak=False)
    try:
        client = raw()
        assert client.send(b"NOOP")[0] == 200
    finally:
        signals.ftp_client_connected.disconnect(receiver)
    assert len(threads) == 1 and threads[0].startswith("ftp-session")


class OwnConnectHandler(handlers.DjangoFTPHandler):
    """A project's handler with its own pre-login hook."""

    threads: list[str] = []

    def on_connect(self) -> None:
        self.threads.append(threading.current_thread().name)
        super().on_connect()


def test_a_project_pre_login_hook_runs_on_a_session_thread(server_factory, settings):
    assert handlers.DjangoFTPHandler.can_serve_on_loop()
    assert not OwnConnectHandler.can_serve_on_loop()
    settings.FTPSERVER_HANDLER = OwnConnectHandler
    running = server_factory()
    client = running.connect()
    client.voidcmd("NOOP")
    client.quit()
    assert OwnConnectHandler.threads and OwnConnectHandler.threads[0].startswith("ftp-session")


def test_idle_timeout_before_login(server_factory):
    running = server_factory(timeout=1)
    server = djangoserver(running)
    client = RawClient(running)
    try:
        assert client.banner[0] == 220
        assert client.codes(1) == [421]  # timed out by the loop
        wait_until(lambda: server.active_sessions == 0, what="the session to be counted out")
        assert server.session_threads == 0
    finally:
        client.close()


def test_sessions_on_the_loop_count_towards_max_connections(server_factory):
    # None of the two kept for logged-in sessions: max_cons alone refuses the third.
    running = server_factory(**{"max-connections": 2, "max-pre-login-percent": 100})
    first, second = RawClient(running), RawClient(running)
    third = RawClient(running)
    try:
        assert first.banner[0] == 220 and second.banner[0] == 220
        assert third.banner == (421, b"Too many connections. Service temporarily unavailable.")
        assert first.send(b"QUIT")[0] == 221
        wait_until(lambda: djangoserver(running).active_sessions == 1, what="one session to end")
        fourth = RawClient(running)
        assert fourth.banner[0] == 220
        fourth.close()
    finally:
        for client in (first, second, third):
            client.close()


def test_stop_with_sessions_on_the_loop(server_factory):
    disconnected: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        disconnected.append(kwargs["remote_ip"])

    running = server_factory()
    clients = [RawClient(running) for _ in range(5)]
    for client in clients:
        assert client.banner[0] == 220
    signals.ftp_client_disconnected.connect(receiver, weak=False)
    try:
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < 5
    finally:
        signals.ftp_client_disconnected.disconnect(receiver)
    for client in clients:
        assert client.file.read() == b""  # closed by the server
        client.close()
    assert disconnected == ["127.0.0.1"] * 5


def test_cached_logins_use_the_fast_lane(ftp_server, make_account, monkeypatch):
    make_account("alice")
    lanes: list[str] = []
    original = FTPAccountAuthorizer._login

    def login(self: Any, username: str, password: str) -> Any:
        lanes.append(threading.current_thread().name)
        return original(self, username, password)

    monkeypatch.setattr(FTPAccountAuthorizer, "_login", login)
    for _ in range(3):
        ftp_server.connect("alice").quit()
    assert lanes[0].startswith("ftp-login-worker")  # nothing cached: a hash
    assert all(lane.startswith("ftp-login-fast") for lane in lanes[1:])


def queue_logins(
    ftp_server: RunningServer, raw: Any, users: list[str]
) -> tuple[list[RawClient], Callable[[], None]]:
    """Clients whose USER and PASS wait for the busy fast lane; and what frees it."""
    fast_lane = djangoserver(ftp_server).handler.authorizer.fast_lane
    gate = threading.Event()
    fast_lane.submit(gate.wait, 10)
    clients = [raw() for _ in users]
    for client, user in zip(clients, users, strict=True):
        client.write(f"USER {user}\r\nPASS {PASSWORD}\r\n".encode())
    wait_until(
        lambda: sum(map(len, fast_lane._open_batches.values())) == len(users),
        what="the logins to wait for the fast lane, together",
    )
    return clients, gate.set


def logins_together(ftp_server: RunningServer, raw: Any, users: list[str]) -> list[RawClient]:
    """Clients that sent USER and PASS while the fast lane was busy; replies unread."""
    clients, release = queue_logins(ftp_server, raw, users)
    release()
    return clients


def test_cached_logins_that_arrive_together_share_one_query(
    ftp_server, make_account, raw, monkeypatch
):
    for name in ("alice", "bob", "carol", "dave"):
        make_account(name)
        ftp_server.connect(name).quit()  # cached from now on
    carol = FTPUserAccount.objects.get(user__username="carol").user
    carol.set_password("changed")
    carol.save()
    FTPUserAccount.objects.get(user__username="dave").delete()
    calls: dict[str, list[Any]] = {"fetch": [], "fetch_many": []}
    for name in calls:
        original = getattr(AccountLookup, name)

        def spy(self: Any, arg: Any, _original: Any = original, _name: str = name) -> Any:
            calls[_name].append(arg)
            return _original(self, arg)

        monkeypatch.setattr(AccountLookup, name, spy)
    users = ["alice", "bob", "alice", "carol", "dave"]
    clients = logins_together(ftp_server, raw, users)
    replies = [client.codes(2)[1] for client in clients]
    # A password changed and an account deleted since they were cached are
    # refused, though read in the same query as the others.
    assert replies == [230, 230, 230, 530, 530]
    # One query for the five, in the order the loop read their passwords.
    assert [sorted(names) for names in calls["fetch_many"]] == [sorted(users)]
    assert calls["fetch"] == []
    assert clients[1].send(b"PWD")[0] == 257  # served on its thread from then on


def test_a_failed_shared_query_leaves_each_login_its_own(
    ftp_server, make_account, raw, monkeypatch, caplog
):
    for name in ("alice", "bob"):
        make_account(name)
        ftp_server.connect(name).quit()

    def down(self: Any, usernames: list[str]) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(AccountLookup, "fetch_many", down)
    clients = logins_together(ftp_server, raw, ["alice", "bob"])
    assert [client.codes(2)[1] for client in clients] == [230, 230]
    assert "database error while reading 2 accounts" in caplog.text


def test_a_client_gone_while_its_login_waited_leaves_the_batch_alone(
    ftp_server, make_account, raw, caplog
):
    for name in ("alice", "bob"):
        make_account(name)
        ftp_server.connect(name).quit()
    (gone, staying), release = queue_logins(ftp_server, raw, ["alice", "bob"])
    gone.close()
    release()
    assert staying.codes(2) == [331, 230]
    assert staying.send(b"PWD")[0] == 257
    assert staying.send(b"QUIT")[0] == 221
    server = djangoserver(ftp_server)
    wait_until(lambda: server.active_sessions == 0, what="both sessions to end")
    assert "Traceback" not in caplog.text
