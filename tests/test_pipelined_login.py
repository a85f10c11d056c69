"""Pipelined commands around the login and the session's move to its thread.

A client may send many commands in one packet, before the server answered
any (``PASS`` and ``QUIT`` together, a ``PASS`` and then a reset...). Each
gets a well-formed reply or the connection ends; no traceback is logged and
the server goes on serving the next client.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_ftpserver.handlers import DjangoFTPHandler, DjangoTLS_FTPHandler

from .conftest import PASSWORD, REPLY, RunningServer, try_login, wait_until
from .proxy_headers import proxied_ftp, v1
from .test_tls_policy import Certificate, make_certificate, tls_client


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fast_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed login answers after 0.2 s, not 3 s; the race is the same."""
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 0.2)
    monkeypatch.setattr(DjangoTLS_FTPHandler, "auth_failed_timeout", 0.2)


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that carry a traceback, or an error (pyftpdlib logs them as text)."""
    found = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info or "Traceback" in text or record.levelno >= logging.ERROR:
            found.append(f"{record.name}: {text}")
    return found


def read_all(sock: socket.socket, deadline: float = 60) -> bytes:
    """Everything the server sends until it closes the connection (which it must)."""
    sock.settimeout(deadline)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection; it said {data!r}") from None
    return data


def assert_well_formed(data: bytes) -> None:
    for line in data.split(b"\r\n")[:-1]:
        if line.startswith(b" "):  # inside a multi-line reply
            continue
        assert REPLY.match(line), f"malformed reply line {line[:200]!r} in {data[:500]!r}"


def connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=15)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def quiet_and_serving(
    server: RunningServer,
    caplog: pytest.LogCaptureFixture,
    header: bytes = b"",
    tls: Certificate | None = None,
) -> None:
    """No traceback logged, all sessions ended, a normal login works."""
    runner_server = server.runner.server
    wait_until(lambda: runner_server.active_sessions == 0, timeout=60, what="every session to end")
    if header:  # behind a trusted balancer
        ftp = proxied_ftp(server.host, server.port, header)
        assert ftp.login("alice", PASSWORD).startswith("230")
        ftp.quit()
    elif tls is not None:
        client = tls_client(server, tls)
        assert client.login("alice", PASSWORD).startswith("230")
        client.quit()
    else:
        assert try_login(server.host, server.port).startswith("230")
    wait_until(
        lambda: runner_server.active_sessions == 0, timeout=60, what="the check login to end"
    )
    assert tracebacks(caplog) == []


# --- the known defect: a failed login's delayed reply after QUIT


def _plain(server: RunningServer, packet: bytes, header: bytes = b"") -> bytes:
    sock = connect(server)
    try:
        sock.sendall(header + packet)
        return read_all(sock)
    finally:
        sock.close()


def _ftps(server: RunningServer, cert: Certificate, packet: bytes) -> bytes:
    """``AUTH TLS``, then ``packet`` in one TLS record; what the server said in TLS."""
    sock = connect(server)
    try:
        file = sock.makefile("rb")
        assert file.readline().startswith(b"220")
        sock.sendall(b"AUTH TLS\r\n")
        assert file.readline().startswith(b"234")
        tls = cert.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        tls.sendall(packet)
        data = b"220 (greeting read in clear)\r\n"
        tls.settimeout(30)
        try:
            while chunk := tls.recv(65536):
                data += chunk
        except (OSError, ssl.SSLError):  # closed without close_notify: the end as well
            pass
        tls.close()
        return data
    finally:
        sock.close()


@pytest.mark.parametrize("where", ["loop", "thread", "proxied", "ftps"])
def test_wrong_password_then_quit_in_one_packet(
    where, server_factory, settings, account, fast_failures, server_log, recorder_if, certificate
):
    """pyftpdlib's delayed 530 ran after QUIT had closed the session: EBADF traceback."""
    recorder = recorder_if(where == "thread")
    options = {}
    if where == "proxied":
        settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1"]
    if where == "ftps":
        options = {"certfile": str(certificate.certfile), "keyfile": str(certificate.keyfile)}
    server = server_factory(**options)
    packet = b"USER alice\r\nPASS wrong\r\nQUIT\r\n"
    header = v1(("203.0.113.7", 51000)) if where == "proxied" else b""
    for _ in range(3):
        if where == "ftps":
            data = _ftps(server, certificate, packet)
        else:
            data = _plain(server, packet, header)
        assert data.startswith(b"220"), data
        assert_well_formed(data)
        assert b"\r\n221 " in data, data
    quiet_and_serving(server, server_log, header, certificate if where == "ftps" else None)
    if recorder is not None:  # the failure still counts and is still told
        assert len(recorder.wait("ftp_login_failed", 3)) == 3


@pytest.fixture
def recorder_if(request: pytest.FixtureRequest) -> Any:
    """The ``recorder`` fixture (sessions start on their threads) only when asked."""

    def get(wanted: bool) -> Any:
        return request.getfixturevalue("recorder") if wanted else None

    return get


# --- the sweep: more pipelines around the login and the move to a thread

LOGIN = b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\n"

#: (name, bytes sent in one packet, how the client leaves: "read" until the
#: server closes, "close" at once, "reset" at once with a TCP RST).
PIPELINES = [
    ("user-pass-quit", LOGIN + b"QUIT\r\n", "read"),
    ("pass-right-then-reset", LOGIN, "reset"),
    ("pass-wrong-then-reset", b"USER alice\r\nPASS wrong\r\n", "reset"),
    ("pass-right-then-close", LOGIN, "close"),
    ("pass-wrong-then-close", b"USER alice\r\nPASS wrong\r\n", "close"),
    ("pass-wrong-twice-quit", b"USER alice\r\nPASS a\r\nUSER alice\r\nPASS b\r\nQUIT\r\n", "read"),
    (
        "many-before-and-after-pass",
        b"SYST\r\nFEAT\r\nNOOP\r\n" + LOGIN + b"PWD\r\nTYPE I\r\nCWD /\r\nNOOP\r\nQUIT\r\n",
        "read",
    ),
    ("auth-tls-then-garbage", b"AUTH TLS\r\n\x16\x03\x01garbage\xff\x00\r\nQUIT\r\n", "read"),
    ("rein-mid-login", b"USER alice\r\nREIN\r\nPASS x\r\nQUIT\r\n", "read"),
    ("rein-after-pass", LOGIN + b"REIN\r\nPWD\r\nQUIT\r\n", "read"),
    ("pasv-quit", LOGIN + b"PASV\r\nQUIT\r\n", "read"),
    ("pasv-retr-quit", LOGIN + b"PASV\r\nRETR nothing\r\nQUIT\r\n", "read"),
    ("abor-no-transfer", LOGIN + b"ABOR\r\nQUIT\r\n", "read"),
    ("abor-before-login", b"ABOR\r\nQUIT\r\n", "read"),
    ("line-64k", LOGIN + b"NOOP " + b"x" * 65536 + b"\r\nNOOP\r\nQUIT\r\n", "read"),
    ("line-64k-before-pass", b"USER " + b"a" * 65536 + b"\r\n" + LOGIN + b"QUIT\r\n", "read"),
    ("nul-bytes", b"USER al\x00ice\r\n" + LOGIN + b"CWD a\x00b\r\nQUIT\r\n", "read"),
    ("nul-in-pass", b"USER alice\r\nPASS a\x00b\r\nQUIT\r\n", "read"),
    ("invalid-utf8", LOGIN + b"MKD \xff\xfe\r\nCWD \xc3\r\nQUIT\r\n", "read"),
    ("invalid-utf8-pass", b"USER alice\r\nPASS \xff\xfe\r\nQUIT\r\n", "read"),
    ("pass-without-user", b"PASS x\r\nQUIT\r\n", "read"),
    ("quit-then-more", LOGIN + b"QUIT\r\nPWD\r\nNOOP\r\n", "read"),
    ("no-final-newline", LOGIN + b"NOOP\r\nPWD", "close"),
]


def run_pipeline(server: RunningServer, packet: bytes, leave: str) -> bytes:
    sock = connect(server)
    with contextlib.suppress(OSError):  # the server closed first: what it said still counts
        sock.sendall(packet)
    if leave == "reset":
        reset(sock)
        return b""
    if leave == "close":
        sock.close()
        return b""
    data = read_all(sock, 60)
    sock.close()
    assert data, "the server closed without a greeting"
    assert_well_formed(data)
    return data


@pytest.mark.parametrize("where", ["loop", "thread"])
@pytest.mark.parametrize(("name", "packet", "leave"), PIPELINES, ids=[p[0] for p in PIPELINES])
def test_pipelines_around_the_login(
    where, name, packet, leave, ftp_server, account, fast_failures, server_log, recorder_if
):
    recorder_if(where == "thread")
    data = run_pipeline(ftp_server, packet, leave)
    if leave == "read":
        assert data.startswith(b"220")
        if b"QUIT" in packet:
            assert b"\r\n221 " in data, data
    quiet_and_serving(ftp_server, server_log)


def test_random_pipelines(settings, ftp_server, account, fast_failures, server_log):
    """200 random pipelines (fixed seed): each answered in form, the server unharmed."""
    rng = random.Random(20261130)
    pieces = [
        b"USER alice",
        b"USER nobody",
        b"PASS " + PASSWORD.encode(),
        b"PASS wrong",
        b"PASS",
        b"USER",
        b"SYST",
        b"FEAT",
        b"NOOP",
        b"PWD",
        b"CWD /",
        b"CDUP",
        b"TYPE I",
        b"TYPE Z",
        b"PASV",
        b"EPSV",
        b"PORT 127,0,0,1,0,1",
        b"ABOR",
        b"REIN",
        b"REST 10",
        b"SIZE x",
        b"MDTM x",
        b"STAT",
        b"HELP",
        b"OPTS UTF8 ON",
        b"AUTH TLS",
        b"PBSZ 0",
        b"PROT P",
        b"MKD \xff",
        b"CWD a\x00b",
        b"NOOP " + b"y" * 5000,
        b"\x16\x03\x01\x00",
        b"",
        b"XYZZY",
    ]
    started = time.monotonic()
    for round_ in range(200):
        caches["default"].clear()  # the lockout may refuse within a round, not across them
        lines = [rng.choice(pieces) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.5:
            lines[rng.randrange(len(lines))] = b"USER alice\r\nPASS " + rng.choice(
                [PASSWORD.encode(), b"wrong"]
            )
        leave = rng.choices(["read", "close", "reset"], [6, 2, 2])[0]
        packet = b"\r\n".join(lines) + b"\r\n"
        if leave == "read":
            packet += b"QUIT\r\n"
        run_pipeline(ftp_server, packet, leave)  # replies well-formed, the connection ended
        assert tracebacks(server_log) == [], (round_, packet)
    quiet_and_serving(ftp_server, server_log)
    assert time.monotonic() - started < 600


@pytest.mark.parametrize("leave", ["read", "reset"])
def test_auth_tls_then_garbage_on_ftps(
    leave, server_factory, account, certificate, fast_failures, server_log
):
    """Not a TLS handshake after ``234``: the connection ends, quietly."""
    server = server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))
    # (A TLS record header with a long length would make it wait for the
    # rest of the record, until the idle timeout, as for any slow client.)
    packet = b"AUTH TLS\r\n\x16\x03\x01\x00\x05hello\r\n" + LOGIN + b"QUIT\r\n"
    data = run_pipeline(server, packet, leave)
    if leave == "read":
        assert data.startswith(b"220") and data.endswith(b"\r\n234 AUTH TLS successful.\r\n")
        # Read in clear behind AUTH: never run as if sent inside TLS.
        wait_until(lambda: "sent data behind AUTH TLS" in server_log.text, 30, "the log line")
        assert "logged in" not in server_log.text
    quiet_and_serving(server, server_log, tls=certificate)
