"""Connection, login-attempt and bandwidth limits, from settings and options."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
import time

import pytest
from django.core.management.base import CommandError

from django_ftpserver.handlers import DjangoFTPHandler, DjangoThrottledDTPHandler
from django_ftpserver.management.commands.ftpserver import Command

from .conftest import PASSWORD


@pytest.fixture(autouse=True)
def no_lockout(settings):
    """These tests are about the limits, not the address lockout."""
    settings.FTPSERVER_LOCKOUT_FAILURES = 0


def welcome(server, source=None):
    """Connect; return the client, or raise with the server's refusal."""
    ftp = ftplib.FTP(source_address=(source, 0) if source else None)
    ftp.connect(server.host, server.port, timeout=10)
    return ftp


def close_all(clients):
    for client in clients:
        client.close()


# --- connections


def test_max_connections_refuses_with_421(server_factory):
    # Both connections stay before login: none of the total kept for logins.
    server = server_factory(**{"max-connections": 2, "max-pre-login-percent": 100})
    clients = [welcome(server), welcome(server)]
    try:
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections"):
            welcome(server, source="127.0.0.2")  # another address: the total counts
        clients.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the freed slot is reused once its session ended
            try:
                clients.append(welcome(server))
                break
            except ftplib.error_temp:
                assert time.monotonic() < deadline, "a freed connection slot was never reused"
                time.sleep(0.1)
    finally:
        close_all(clients)


def test_max_connections_per_ip_refuses_with_421(server_factory):
    server = server_factory(**{"max-connections-per-ip": 2})
    clients = [welcome(server), welcome(server)]
    try:
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections from the same IP"):
            welcome(server)
        clients.append(welcome(server, source="127.0.0.2"))  # another address is welcome
    finally:
        close_all(clients)


def test_limits_from_settings(server_factory, settings):
    settings.FTPSERVER_MAX_CONNECTIONS_PER_IP = 1
    server = server_factory()
    client = welcome(server)
    try:
        with pytest.raises(ftplib.error_temp, match="^421"):
            welcome(server)
    finally:
        client.close()


def test_new_limits_from_settings_and_options(server_factory, settings):
    settings.FTPSERVER_LOGIN_TIMEOUT = 15
    settings.FTPSERVER_MAX_PRE_LOGIN_PERCENT = 50
    server = server_factory(**{"max-connections": 10})
    assert server.runner.server.handler.login_timeout == 15
    assert server.runner.server.max_pre_login == 5
    server = server_factory(**{"login-timeout": 0, "max-pre-login-percent": 100})
    assert server.runner.server.handler.login_timeout == 0
    assert server.runner.server.max_pre_login == 0  # no share of its own


def test_a_one_connection_server_admits_one_client_not_logged_in(server_factory, account):
    """80 % of 1 is no slot at all: the share never goes below one connection."""
    server = server_factory(**{"max-connections": 1})
    assert server.runner.server.max_pre_login == 1
    client = welcome(server)
    try:
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections"):
            welcome(server)
        client.login(account.user.username, PASSWORD)
        assert client.pwd() == "/"
    finally:
        client.close()


def test_options_win_over_settings(settings):
    settings.FTPSERVER_MAX_CONNECTIONS = 5
    settings.FTPSERVER_MAX_CONNECTIONS_PER_IP = 1
    settings.FTPSERVER_MAX_LOGIN_ATTEMPTS = 7
    settings.FTPSERVER_READ_LIMIT = 1000
    settings.FTPSERVER_WRITE_LIMIT = 2000
    config = Command().build_config(
        {"max-connections-per-ip": 0, "max-login-attempts": 2, "write-limit": 0}
    )
    assert config.max_connections == 5
    assert config.max_connections_per_ip == 0  # 0 given on the command line: no limit
    assert config.max_login_attempts == 2
    assert config.read_limit == 1000
    assert config.write_limit == 0


def test_unset_limits_defaults(server_factory):
    server = server_factory()
    assert server.runner.server.max_cons == 512  # pyftpdlib's
    assert server.runner.server.max_cons_per_ip == 50  # pyftpdlib's: none
    assert server.runner.server.max_pre_login_percent == 80
    assert server.runner.server.max_pre_login == 409
    assert server.runner.server.handler.login_timeout == 60
    assert server.runner.server.handler.max_login_attempts == 3
    assert not issubclass(server.runner.server.handler.dtp_handler, DjangoThrottledDTPHandler)
    assert DjangoFTPHandler.max_login_attempts == 3  # nothing set on the shared class


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"max-connections": -1},
            r"max connections \(--max-connections, FTPSERVER_MAX_CONNECTIONS\) must be"
            " a whole number, 0 or more, not -1",
        ),
        ({"max-login-attempts": 0}, "must be a whole number, 1 or more, not 0"),
        ({"read-limit": -5}, "read limit .* must be a whole number, 0 or more, not -5"),
        (
            {"login-timeout": -1},
            r"login timeout \(--login-timeout, FTPSERVER_LOGIN_TIMEOUT\) must be a whole"
            " number, 0 or more, not -1",
        ),
        (
            {"max-pre-login-percent": 101},
            r"max pre login percent \(--max-pre-login-percent,"
            r" FTPSERVER_MAX_PRE_LOGIN_PERCENT\) must be a whole number, from 1 to 100,"
            " not 101",
        ),
    ],
)
def test_bad_limit_options_are_one_line_errors(server_factory, options, message):
    with pytest.raises(CommandError, match=message):
        server_factory(**options)


def test_bad_limit_setting_is_a_one_line_error(server_factory, settings):
    settings.FTPSERVER_WRITE_LIMIT = "1MB"
    with pytest.raises(CommandError, match="FTPSERVER_WRITE_LIMIT.* must be a whole number.*'1MB'"):
        server_factory()


def test_limit_options_parse_from_the_command_line():
    parser = Command().create_parser("manage.py", "ftpserver")
    options = vars(
        parser.parse_args(
            [
                "--max-connections-per-ip",
                "3",
                "--read-limit",
                "100",
                "--login-timeout",
                "20",
                "--max-pre-login-percent",
                "90",
            ]
        )
    )
    assert options["max-connections-per-ip"] == 3
    assert options["read-limit"] == 100
    assert options["login-timeout"] == 20
    assert options["max-pre-login-percent"] == 90
    with pytest.raises(CommandError, match="invalid int value: 'lots'"):
        parser.parse_args(["--max-connections", "lots"])


# --- login attempts per connection


def test_max_login_attempts_disconnects(server_factory, account, monkeypatch):
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 0.05)
    server = server_factory(**{"max-login-attempts": 2})
    ftp = server.connect()
    with pytest.raises(ftplib.error_perm, match=r"^530 Authentication failed\.$"):
        ftp.login("alice", "wrong")
    with pytest.raises(ftplib.error_perm, match=r"^530 Authentication failed\. Disconnecting\.$"):
        ftp.login("alice", "wrong")
    with pytest.raises((EOFError, OSError)):
        ftp.login("alice", PASSWORD)
    ftp.close()
    assert server.connect("alice").pwd() == "/"  # a new connection may try again


def test_pipelined_passwords_are_not_all_checked(server_factory, account, settings):
    """pyftpdlib reads on while a failed login's reply waits: each PASS was checked."""
    from .test_lockout import CountingHasher

    settings.PASSWORD_HASHERS = ["tests.test_lockout.CountingHasher"]
    server = server_factory(**{"max-login-attempts": 3})
    before = CountingHasher.calls
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.recv(1024)
        sock.sendall(b"".join(b"USER alice\r\nPASS guess%d\r\n" % i for i in range(20)))
        replies = b""
        while chunk := sock.recv(65536):  # the server hangs up after the third failure
            replies += chunk
    lines = replies.decode().splitlines()
    assert lines.count("530 Authentication failed.") == 2
    assert lines.count("530 Authentication failed. Disconnecting.") == 1
    assert lines.count("530 Too many failed logins on this connection.") == 17
    assert CountingHasher.calls - before == 3


# --- bandwidth

SIZE = 160 * 1024
LIMIT = 64 * 1024  # bytes per second: SIZE takes about 1.5 s and more


def timed_transfers(ftp, home):
    payload = os.urandom(SIZE)
    started = time.monotonic()
    ftp.storbinary("STOR up.bin", io.BytesIO(payload))
    upload = time.monotonic() - started
    assert (home / "up.bin").read_bytes() == payload
    out = io.BytesIO()
    started = time.monotonic()
    ftp.retrbinary("RETR up.bin", out.write)
    download = time.monotonic() - started
    assert out.getvalue() == payload
    return upload, download


@pytest.mark.slow
def test_read_and_write_limits_slow_transfers(server_factory, account, home):
    free = server_factory()
    ftp = free.connect("alice")
    free_up, free_down = timed_transfers(ftp, home)
    ftp.quit()

    limited = server_factory(**{"read-limit": LIMIT})
    ftp = limited.connect("alice")
    slow_up, fast_down = timed_transfers(ftp, home)
    ftp.quit()

    limited = server_factory(**{"write-limit": LIMIT})
    ftp = limited.connect("alice")
    fast_up, slow_down = timed_transfers(ftp, home)
    ftp.quit()

    # pyftpdlib allows a second's worth at once, then sleeps: 160 KiB at
    # 64 KiB/s take 1.5 s or more. Unlimited loopback takes milliseconds.
    assert slow_up > 1.0 and slow_up > 5 * max(free_up, fast_up), (free_up, fast_up, slow_up)
    assert slow_down > 1.0 and slow_down > 5 * max(free_down, fast_down), (
        free_down,
        fast_down,
        slow_down,
    )


@pytest.fixture
def tls_files(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return certfile, context


@pytest.mark.slow
def test_write_limit_over_tls(server_factory, account, home, tls_files):
    certfile, context = tls_files
    server = server_factory(certfile=str(certfile), **{"write-limit": LIMIT})
    (home / "big.bin").write_bytes(payload := os.urandom(SIZE))
    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect(server.host, server.port, timeout=10)
    ftp.login("alice", PASSWORD)
    ftp.prot_p()
    out = io.BytesIO()
    started = time.monotonic()
    ftp.retrbinary("RETR big.bin", out.write)
    elapsed = time.monotonic() - started
    ftp.quit()
    assert out.getvalue() == payload
    assert elapsed > 1.0
