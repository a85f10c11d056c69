"""Connections without a password: per-address limit, login timeout, reserved share.

Real servers on loopback, real sockets. 127.0.0.1, 127.0.0.2... are
different client addresses (all of 127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import resource
import socket
import time

import pytest

from django_ftpserver.connections.limits import AddressCounts, RefusalLog
from django_ftpserver.handlers import DjangoFTPHandler

from .conftest import PASSWORD, RawClient, try_login, wait_until
from .test_tls_policy import certificate  # noqa: F401 - a fixture

FLOOD = 600


@pytest.fixture(autouse=True)
def no_lockout(settings):
    """These tests are about connections, not the password lockout."""
    settings.FTPSERVER_LOCKOUT_FAILURES = 0


@pytest.fixture
def enough_descriptors():
    """Room for both ends of every flood connection, in this one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * FLOOD + 512
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def silent(server, source="127.0.0.1"):
    """Connect and read the greeting (or refusal); send nothing. Returns (socket, reply)."""
    sock = socket.create_connection(
        (server.host, server.port), timeout=30, source_address=(source, 0)
    )
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        reply += chunk
    return sock, reply.decode()


def closed_by_server(sock, timeout=60):
    """Everything the server sends until it closes ``sock``; fails after ``timeout``."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            received += chunk
    return received.decode()


def close_all(socks):
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def flood(server, count=FLOOD, sources=("127.0.0.1",)):
    """``count`` silent connections, round robin over ``sources``."""
    socks, replies = [], []
    for i in range(count):
        sock, reply = silent(server, sources[i % len(sources)])
        socks.append(sock)
        replies.append(reply)
    return socks, replies


def djangoserver(running):
    return running.runner.server


# --- one address


def test_600_silent_connections_leave_room_for_another_address(
    server_factory, account, enough_descriptors, caplog
):
    """The issue's case, with the default settings: 50 from one address, then 421."""
    caplog.set_level(logging.INFO)
    server = server_factory()
    socks, replies = flood(server)
    try:
        assert sum(reply.startswith("220 ") for reply in replies) == 50
        refused = [reply for reply in replies if not reply.startswith("220 ")]
        assert refused == ["421 Too many connections from the same IP address.\r\n"] * 550
        started = time.monotonic()
        assert try_login(server.host, server.port, source_address=("127.0.0.2", 0)).startswith(
            "230"
        )
        login_took = time.monotonic() - started
        assert try_login(server.host, server.port, source_address=("127.0.0.3", 0)).startswith(
            "230"
        )
        # The login came while the flood still held its 50 connections.
        assert djangoserver(server).ip_map.count("127.0.0.1") == 50
        # (The 230 goes out just before the session stops counting as not logged in.)
        wait_until(lambda: djangoserver(server).pre_login_sessions == 50, what="50")
    finally:
        close_all(socks)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # One warning for 550 refusals (at most one a minute), naming limit and address.
    assert warnings == [
        "FTP connection from 127.0.0.1 refused: FTPSERVER_MAX_CONNECTIONS_PER_IP (50) "
        "reached by 127.0.0.1"
    ], warnings
    wait_until(lambda: djangoserver(server).active_sessions == 0, what="the flood to end")
    assert len(djangoserver(server).ip_map) == 0
    print(f"login from another address during the flood: {login_took * 1000:.0f} ms")


def test_silent_connections_are_closed_at_the_login_timeout(
    server_factory, enough_descriptors, caplog
):
    caplog.set_level(logging.INFO)
    server = server_factory(**{"login-timeout": 2})
    started = time.monotonic()
    socks, replies = flood(server)
    try:
        admitted = [
            sock for sock, reply in zip(socks, replies, strict=True) if reply.startswith("220 ")
        ]
        assert len(admitted) == 50
        for sock in admitted:
            assert (
                closed_by_server(sock) == "421 Not logged in within 2 seconds. Disconnecting.\r\n"
            )
        assert time.monotonic() - started >= 2
        wait_until(lambda: djangoserver(server).active_sessions == 0, what="sessions to end")
        assert djangoserver(server).pre_login_sessions == 0
        assert djangoserver(server).ip_map.count("127.0.0.1") == 0
        # The address is welcome again.
        sock, reply = silent(server)
        socks.append(sock)
        assert reply.startswith("220 ")
    finally:
        close_all(socks)
    timeouts = [r.getMessage() for r in caplog.records if "LOGIN_TIMEOUT" in r.getMessage()]
    assert timeouts == [
        "FTP connection from 127.0.0.1 closed: not logged in within FTPSERVER_LOGIN_TIMEOUT (2 s)"
    ]


# --- the login timeout


def test_dribbling_client_is_closed_at_the_login_timeout(server_factory):
    """A byte every 0.2 s, complete commands now and then: the idle timer is reset, not this."""
    server = server_factory(**{"login-timeout": 2, "timeout": 300})
    started = time.monotonic()  # before the greeting, when the server's deadline starts
    sock, reply = silent(server)
    assert reply.startswith("220 ")
    received = b""
    sock.settimeout(0.2)
    with sock:
        for byte in b"NOOP\r\nHELP\r\nSYST\r\nUSER alice\r\n" * 100:
            try:
                sock.sendall(bytes([byte]))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            assert time.monotonic() - started < 60, "the dribbling client kept its connection"
        else:
            pytest.fail("the dribbling client kept its connection")
    elapsed = time.monotonic() - started
    assert received.startswith(b"200 ")  # its commands were served meanwhile
    assert received.endswith(b"421 Not logged in within 2 seconds. Disconnecting.\r\n")
    assert elapsed >= 2


def login_timeout_passed(server):
    """Wait until a connection opened now is closed by the login timeout.

    Its deadline comes after that of every connection opened before it.
    """
    sock, reply = silent(server, "127.0.0.9")
    with sock:
        assert reply.startswith("220 ")
        assert closed_by_server(sock).startswith("421 Not logged in within")


def test_logged_in_sessions_keep_the_idle_timeout(server_factory, account):
    server = server_factory(**{"login-timeout": 1})
    client = RawClient(server)
    try:
        client.login("alice")
        # Past the login timeout, not the idle timeout (300 s): still served.
        login_timeout_passed(server)
        assert client.send(b"NOOP")[0] == 200
        assert client.send(b"PWD")[0] == 257
    finally:
        client.close()


def test_rein_starts_a_new_login_timeout(server_factory, account):
    server = server_factory(**{"login-timeout": 2})
    client = RawClient(server)
    with contextlib.closing(client):
        client.login("alice")
        wait_until(lambda: djangoserver(server).pre_login_sessions == 0, what="login")
        assert client.send(b"REIN")[0] == 230
        assert djangoserver(server).pre_login_sessions == 1
        started = time.monotonic()
        client.sock.settimeout(30)
        assert client.read_reply() == (421, b"Not logged in within 2 seconds. Disconnecting.")
        assert time.monotonic() - started >= 1.5
    wait_until(lambda: djangoserver(server).active_sessions == 0, what="the session to end")
    assert djangoserver(server).pre_login_sessions == 0


def test_login_timeout_during_a_failed_logins_delay(
    server_factory, account, monkeypatch, caplog, recorder
):
    """pyftpdlib re-registers the session after the delay: not once it was closed."""
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 3)
    server = server_factory(**{"login-timeout": 1})
    client = RawClient(server, timeout=30)
    with contextlib.closing(client):
        assert client.send(b"USER alice")[0] == 331
        client.write(b"PASS wrong\r\n")
        assert client.read_reply() == (421, b"Not logged in within 1 second. Disconnecting.")
        assert client.file.read() == b""  # closed, no 530 after it
    # The failed login's delayed callback has run (it re-registers the
    # session first, then sends ftp_login_failed).
    recorder.wait("ftp_login_failed")
    assert try_login(server.host, server.port).startswith("230")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def test_tls_handshake_that_stalls_is_closed_at_the_login_timeout(server_factory, certificate):  # noqa: F811
    server = server_factory(
        certfile=str(certificate.certfile),
        keyfile=str(certificate.keyfile),
        **{"login-timeout": 1},
    )
    sock, reply = silent(server)
    with sock:
        assert reply.startswith("220 ")
        sock.sendall(b"AUTH TLS\r\n")
        sock.settimeout(30)
        assert sock.recv(1024).startswith(b"234 ")
        # No ClientHello: the server waits in the handshake, then gives up.
        assert closed_by_server(sock) == ""
    wait_until(lambda: djangoserver(server).active_sessions == 0, what="the session to end")


def test_tls_login_within_the_timeout(server_factory, certificate, account):  # noqa: F811
    server = server_factory(
        certfile=str(certificate.certfile),
        keyfile=str(certificate.keyfile),
        **{"login-timeout": 2},
    )
    client = ftplib.FTP_TLS(context=certificate.client_context())
    client.connect(server.host, server.port, timeout=10)
    try:
        client.login("alice", PASSWORD)
        login_timeout_passed(server)
        assert client.pwd() == "/"
    finally:
        client.close()


# --- the share kept for sessions that logged in


def test_flood_from_many_addresses_leaves_room_for_logged_in_sessions(
    server_factory, account, caplog
):
    caplog.set_level(logging.INFO)
    server = server_factory(
        **{"max-connections": 10, "max-pre-login-percent": 50, "login-timeout": 3}
    )
    alice = RawClient(server)
    socks = []
    try:
        alice.login("alice")
        sources = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
        socks, replies = flood(server, 20, sources)  # the 6th is from 127.0.0.3
        assert sum(reply.startswith("220 ") for reply in replies) == 5  # 50% of 10
        refused = [reply for reply in replies if not reply.startswith("220 ")]
        assert refused == ["421 Too many connections waiting to log in. Try again later.\r\n"] * 15
        assert djangoserver(server).pre_login_sessions == 5
        wait_until(lambda: djangoserver(server).active_sessions == 6, what="6 sessions")
        # The session that logged in is served as before.
        assert alice.send(b"NOOP")[0] == 200
        # A new client is refused while the flood holds its share...
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections waiting"):
            try_login(server.host, server.port, source_address=("127.0.0.9", 0))
        # ...and gets in once the flood timed out.
        wait_until(
            lambda: djangoserver(server).pre_login_sessions == 0,
            what="the flood to time out",
        )
        assert try_login(server.host, server.port, source_address=("127.0.0.9", 0)).startswith(
            "230"
        )
        assert alice.send(b"NOOP")[0] == 200
    finally:
        alice.close()
        close_all(socks)
    warnings = [r.getMessage() for r in caplog.records if "MAX_PRE_LOGIN_PERCENT" in r.getMessage()]
    assert warnings == [
        "FTP connection from 127.0.0.3 refused: FTPSERVER_MAX_PRE_LOGIN_PERCENT reached "
        "(50% of 10 connections: 5 not logged in)"
    ], warnings


def test_logged_in_sessions_may_use_the_reserved_share(server_factory, account):
    server = server_factory(**{"max-connections": 4, "max-pre-login-percent": 50})
    sessions = []
    try:
        for _ in range(4):  # one after the other: each logs in before the next comes
            sessions.append(server.connect("alice"))
        assert djangoserver(server).active_sessions == 4
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections. Service"):
            server.connect()
    finally:
        for session in sessions:
            session.close()


def test_share_of_100_percent_reserves_nothing(server_factory, settings):
    settings.FTPSERVER_MAX_PRE_LOGIN_PERCENT = 100
    server = server_factory(**{"max-connections": 3})
    assert djangoserver(server).max_pre_login == 0
    socks, replies = flood(server, 4, ("127.0.0.2",))
    close_all(socks)
    assert [reply[:4] for reply in replies] == ["220 ", "220 ", "220 ", "421 "]


# --- per address: IPv6 per /64


def test_ipv6_addresses_are_counted_per_64():
    counts = AddressCounts()
    counts.append("2001:db8:1:2::1")
    counts.append("2001:db8:1:2:aaaa::7")
    counts.append("2001:db8:1:3::1")
    counts.append("::ffff:192.0.2.1")
    counts.append("192.0.2.1")
    assert counts.count("2001:db8:1:2:ffff::") == 2
    assert counts.count("2001:db8:1:3::9") == 1
    assert counts.count("192.0.2.1") == 2
    assert "2001:db8:1:2::99" in counts and "2001:db8:9::1" not in counts
    counts.remove("2001:db8:1:2::1")
    counts.remove("2001:db8:9::1")  # not counted: nothing happens
    assert counts.count("2001:db8:1:2::") == 1
    assert len(counts) == 4


def test_ipv6_server_counts_the_64(server_factory, caplog):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = server_factory(host_port="[::1]:0", **{"max-connections-per-ip": 1})
    except Exception as exc:  # no ::1 on this machine
        pytest.skip(f"cannot listen on ::1: {exc}")
    first = socket.create_connection(("::1", server.port), timeout=10)
    second = socket.create_connection(("::1", server.port), timeout=10)
    with first, second:
        assert first.recv(1024).startswith(b"220 ")
        assert closed_by_server(second).startswith("421 Too many connections from the same IP")
    assert any("reached by ::/64" in r.getMessage() for r in caplog.records)


# --- the warnings


def test_refusal_log_warns_once_per_interval_and_counts_the_rest(caplog):
    log = RefusalLog(logging.getLogger("tests.refusals"))
    log.interval = 0.5
    caplog.set_level(logging.WARNING, logger="tests.refusals")
    started = time.monotonic()
    assert log.note("a", "refused %s", "192.0.2.1")
    assert not log.note("a", "refused %s", "192.0.2.2")
    assert not log.note("a", "refused %s", "192.0.2.3")
    assert log.note("b", "other %s", "192.0.2.4")  # each limit on its own
    wait_until(lambda: time.monotonic() - started > 0.6, what="the interval to pass")
    assert log.note("a", "refused %s", "192.0.2.5")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 192.0.2.1",
        "other 192.0.2.4",
        "refused 192.0.2.5 (2 more since the last warning)",
    ]


def test_refusals_send_no_warning_each(server_factory, caplog):
    """pyftpdlib logs each refusal as a warning; 600 of them would flood the log."""
    caplog.set_level(logging.DEBUG)
    server = server_factory(**{"max-connections-per-ip": 1})
    socks, replies = flood(server, 30)
    close_all(socks)
    assert replies.count("421 Too many connections from the same IP address.\r\n") == 29
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "django_ftpserver.server"
