"""The PROXY protocol on the control port (and passive data ports), with real headers.

The test client stands in for the balancer: it connects from 127.0.0.1 (the
trusted proxy here) and writes a v1 or v2 header on the raw socket before
reading the greeting, exactly as HAProxy's ``send-proxy`` and
``send-proxy-v2`` do. The clients it names are documentation addresses
(192.0.2.0/24, 203.0.113.0/24, 2001:db8::/32) or other loopback addresses
(127.0.0.x) when a data connection must come from the client itself.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ftpserver import checks
from django_ftpserver.connections.proxyprotocol import (
    ProxyProtocolError,
    TrustedProxies,
    client_ip,
    header_length,
    parse,
)
from django_ftpserver.handlers import DjangoFTPHandler
from django_ftpserver.runner import ConfigError, FTPServerConfig

from .conftest import PASSWORD, RawClient, wait_until
from .proxy_headers import connect_raw, proxied_ftp, tlv, v1, v2

LOCKED = "Too many failed logins from your address"


# --- the parser alone


@pytest.mark.parametrize(
    ("header", "family", "source", "destination"),
    [
        (
            v1(("203.0.113.7", 51000), ("192.0.2.1", 21)),
            "TCP4",
            ("203.0.113.7", 51000),
            ("192.0.2.1", 21),
        ),
        (
            v1(("2001:db8::7", 1), ("2001:db8::1", 21)),
            "TCP6",
            ("2001:db8::7", 1),
            ("2001:db8::1", 21),
        ),
        (
            v2(("203.0.113.7", 65535), ("192.0.2.1", 21)),
            "TCP4",
            ("203.0.113.7", 65535),
            ("192.0.2.1", 21),
        ),
        (
            v2(("2001:db8::7", 40000), ("2001:db8::1", 21)),
            "TCP6",
            ("2001:db8::7", 40000),
            ("2001:db8::1", 21),
        ),
        # TLVs after the addresses (here: ALPN and an AWS VPC endpoint id) are skipped
        (
            v2(
                ("198.51.100.2", 5),
                ("192.0.2.1", 21),
                tlvs=tlv(0x01, b"ftp") + tlv(0xEA, b"\x01vpce-1"),
            ),
            "TCP4",
            ("198.51.100.2", 5),
            ("192.0.2.1", 21),
        ),
        # a balancer on "::" names IPv4 clients as IPv4-mapped: taken as IPv4
        (
            v1(("::ffff:203.0.113.7", 2), ("::ffff:192.0.2.1", 21)),
            "TCP6",
            ("203.0.113.7", 2),
            ("192.0.2.1", 21),
        ),
        (
            v2(("::ffff:203.0.113.7", 2), ("::ffff:192.0.2.1", 21)),
            "TCP6",
            ("203.0.113.7", 2),
            ("192.0.2.1", 21),
        ),
    ],
)
def test_headers_that_name_a_client(header, family, source, destination):
    assert header_length(header) == len(header)
    assert header_length(header + b"USER x\r\n") == len(header)  # what follows is not the header's
    parsed = parse(header)
    assert (parsed.command, parsed.family) == ("PROXY", family)
    assert (parsed.source, parsed.destination) == (source, destination)


@pytest.mark.parametrize(
    ("header", "command", "family"),
    [
        (b"PROXY UNKNOWN\r\n", "PROXY", "UNKNOWN"),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "PROXY", "UNKNOWN"),
        (v2(command=0x0), "LOCAL", "UNSPEC"),  # the balancer's own health check
        (v2(("203.0.113.7", 1), command=0x0), "LOCAL", "UNSPEC"),  # addresses ignored
        (v2(family_protocol=0x00, addresses=b""), "PROXY", "UNSPEC"),
        (
            v2(family_protocol=0x31, addresses=b"/run/client.sock".ljust(216, b"\0") * 2),
            "PROXY",
            "UNIX",
        ),
    ],
)
def test_headers_that_name_no_client(header, command, family):
    parsed = parse(header)
    assert (parsed.command, parsed.family, parsed.source) == (command, family, None)


def test_incomplete_headers_ask_for_more():
    for header in (v1(("203.0.113.7", 1)), v2(("2001:db8::7", 1))):
        for cut in range(len(header)):
            assert header_length(header[:cut]) in (None, len(header)), cut
        assert header_length(header[:15]) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"USER alice\r\n", "not a PROXY protocol header"),
        (b"GET / HTTP/1.1\r\n", "not a PROXY protocol header"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2 extra\r\n", "expected"),
        (b"PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n", "expected"),
        (b"PROXY TCP4 203.0.113.999 192.0.2.1 1 2\r\n", "bad address"),
        (b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n", "not an TCP4 address"),
        (b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n", "not an TCP6 address"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 21\r\n", "bad port"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 21\r\n", "bad port"),
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 \xd9\xa1 21\r\n", "not ASCII"),
        (b"PROXY TCP4 203.0.113.7  192.0.2.1 1 21\r\n", "expected"),
        (b"PROXY " + b"1" * 110 + b"\r\n", "longer than 107 bytes"),
        (v2(("203.0.113.7", 1))[:12] + b"\x11" + v2(("203.0.113.7", 1))[13:], "unknown version"),
        (v2(("203.0.113.7", 1), command=0x2), "unknown command"),
        (v2(family_protocol=0x41, addresses=b"x" * 12), "unknown address family"),
        (v2(("203.0.113.7", 1), family_protocol=0x12), "not a TCP"),
        (v2(family_protocol=0x11, addresses=b"\x01\x02\x03\x04"), "too short"),
        (v2(family_protocol=0x21, addresses=b"\x00" * 12), "too short"),
    ],
)
def test_malformed_headers(data, message):
    with pytest.raises(ProxyProtocolError, match=message):
        length = header_length(data)
        parse(data[:length] if length else data)


def test_trusted_proxies():
    trusted = TrustedProxies(["10.0.0.0/8", "192.0.2.5", "2001:db8:1::/48"])
    assert "10.1.2.3" in trusted and "192.0.2.5" in trusted and "2001:db8:1::9" in trusted
    assert "::ffff:10.1.2.3" in trusted  # as a dual-stack socket reports it
    assert "192.0.2.6" not in trusted and "2001:db8:2::1" not in trusted
    assert "not-an-address" not in trusted
    assert not TrustedProxies([])
    for bad in (["10.0.0.1/8"], ["example.com"], [None], ["10.0.0.0/33"]):
        with pytest.raises(ValueError, match="not an address or network"):
            TrustedProxies(bad)
    assert client_ip("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_ip("2001:db8::7") == "2001:db8::7"


# --- through a real server


@pytest.fixture
def trusted(settings):
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1"]
    return settings


@pytest.fixture
def quick_failures(monkeypatch):
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 0.05)


def closed_without_banner(sock: socket.socket, timeout: float = 30) -> bool:
    """True when the server closes ``sock`` without sending a byte."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1024)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"the server answered {data!r}"
    return True


def login(ftp: ftplib.FTP, password: str = PASSWORD) -> str:
    try:
        return ftp.login("alice", password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


@pytest.mark.parametrize(
    ("header", "client"),
    [
        (v1(("203.0.113.7", 51000)), "203.0.113.7"),
        (v1(("2001:db8::7", 51000), ("2001:db8::1", 21)), "2001:db8::7"),
        (v2(("203.0.113.7", 51000)), "203.0.113.7"),
        (v2(("2001:db8::7", 51000), ("2001:db8::1", 21), tlvs=tlv(0x05, b"id-1")), "2001:db8::7"),
    ],
    ids=["v1-ipv4", "v1-ipv6", "v2-ipv4", "v2-ipv6"],
)
def test_signals_see_the_client_named_by_the_header(
    trusted, server_factory, account, recorder, header, client
):
    server = server_factory()
    ftp = proxied_ftp(server.host, server.port, header)
    assert ftp.welcome.startswith("220")
    assert ftp.login("alice", PASSWORD).startswith("230")
    ftp.quit()
    for name in ("ftp_client_connected", "ftp_login", "ftp_logout", "ftp_client_disconnected"):
        assert [e["remote_ip"] for e in recorder.wait(name)] == [client], name
    assert recorder.of("ftp_client_connected")[0]["remote_port"] == 51000


def test_header_split_across_packets(trusted, server_factory, account, recorder):
    server = server_factory()
    cases = [(v1(("203.0.113.8", 1)), "203.0.113.8"), (v2(("2001:db8::8", 1)), "2001:db8::8")]
    for count, (header, client) in enumerate(cases, 1):
        sock = connect_raw(server.host, server.port)
        for i in range(0, len(header), 5):  # a few bytes per segment (TCP_NODELAY)
            sock.sendall(header[i : i + 5])
            time.sleep(0.02)
        assert login(proxied_ftp_on(sock, server)).startswith("230")
        assert recorder.wait("ftp_login", count)[-1]["remote_ip"] == client


def proxied_ftp_on(sock: socket.socket, server) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=10)
    ftp.host, ftp.port, ftp.sock, ftp.af = server.host, server.port, sock, sock.family
    ftp.file = sock.makefile("r", encoding=ftp.encoding)
    ftp.welcome = ftp.getresp()
    return ftp


def test_header_with_the_first_command_behind_it(trusted, server_factory, account):
    """Bytes after the header stay for the FTP session (a client that spoke first)."""
    server = server_factory()
    sock = connect_raw(server.host, server.port)
    sock.sendall(v2(("203.0.113.9", 1)) + b"USER alice\r\n")
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"220")
    assert reader.readline().startswith(b"331")
    sock.close()


@pytest.mark.parametrize(
    "data",
    [
        b"",  # a trusted proxy that sends no header at all
        b"PROXY TCP4 203.0.113.7 192.0.2.1",  # half a v1 header
        v2(("203.0.113.7", 1))[:20],  # half a v2 header
    ],
    ids=["nothing", "half-v1", "half-v2"],
)
def test_slow_or_missing_header_is_closed_without_banner(
    trusted, server_factory, account, recorder, caplog, data
):
    trusted.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0.5
    server = server_factory()
    sock = connect_raw(server.host, server.port)
    sock.sendall(data)
    with caplog.at_level(logging.WARNING, logger="django_ftpserver"):
        assert closed_without_banner(sock)
        wait_until(lambda: "no complete PROXY header in time" in caplog.text, 10, "the log line")
    sock.close()
    assert "Traceback" not in caplog.text
    assert recorder.of("ftp_client_connected") == []
    # and the server keeps serving
    assert login(proxied_ftp(server.host, server.port, v1(("203.0.113.7", 1)))).startswith("230")


@pytest.mark.parametrize(
    "data",
    [
        b"USER alice\r\n",
        b"PROXY TCP4 203.0.113.999 192.0.2.1 1 21\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 1 21 and more\r\n",
        b"PROXY " + b"x" * 200,
        v2(("203.0.113.7", 1), family_protocol=0x12),  # UDP
        v2(family_protocol=0x11, addresses=b"\x01"),  # too short for its family
        b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    ],
    ids=["ftp-command", "bad-address", "extra-field", "overlong", "udp", "short", "bad-signature"],
)
def test_malformed_header_is_closed_without_banner(
    trusted, server_factory, account, recorder, caplog, data
):
    server = server_factory()
    sock = connect_raw(server.host, server.port)
    with caplog.at_level(logging.WARNING, logger="django_ftpserver"):
        sock.sendall(data)
        assert closed_without_banner(sock)
        wait_until(lambda: "from trusted proxy 127.0.0.1:" in caplog.text, 10, "the log line")
    sock.close()
    assert "Traceback" not in caplog.text
    assert recorder.of("ftp_client_connected") == []
    assert login(proxied_ftp(server.host, server.port, v2(("203.0.113.7", 1)))).startswith("230")


def test_health_check_that_connects_and_leaves_is_quiet(trusted, server_factory, caplog):
    server = server_factory()
    with caplog.at_level(logging.DEBUG, logger="django_ftpserver.server"):
        connect_raw(server.host, server.port).close()
        wait_until(lambda: "closed before sending anything" in caplog.text, 10, "the debug line")
        ftp = proxied_ftp(server.host, server.port, v1(("203.0.113.7", 1)))
        assert ftp.welcome.startswith("220")  # still serving
        ftp.close()
    about_it = [r for r in caplog.records if "trusted proxy" in r.getMessage()]
    assert about_it and [r.levelname for r in about_it] == ["DEBUG"]


@pytest.mark.parametrize(
    "header",
    [
        v2(command=0x0),
        b"PROXY UNKNOWN\r\n",
        v2(family_protocol=0x00, addresses=b""),
        v2(family_protocol=0x31, addresses=b"/run/c.sock".ljust(216, b"\0") * 2),
    ],
    ids=["v2-local", "v1-unknown", "v2-unspec", "v2-unix"],
)
def test_header_naming_no_client_serves_the_balancers_connection(
    trusted, server_factory, account, recorder, header
):
    server = server_factory()
    assert login(proxied_ftp(server.host, server.port, header)).startswith("230")
    assert recorder.wait("ftp_login")[0]["remote_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    "header", [v1(("203.0.113.7", 1)), v2(("203.0.113.7", 1))], ids=["v1", "v2"]
)
@pytest.mark.parametrize("trusted_list", [[], ["192.0.2.10", "10.0.0.0/8"]], ids=["off", "other"])
def test_header_from_untrusted_address_is_refused(
    settings, server_factory, account, recorder, caplog, header, trusted_list
):
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = trusted_list
    server = server_factory()
    sock = connect_raw(server.host, server.port)
    reader = sock.makefile("rb")
    with caplog.at_level(logging.WARNING, logger="django_ftpserver"):
        assert reader.readline().startswith(b"220")
        sock.sendall(header)
        reply = reader.readline()
        assert reply.startswith(b"500 PROXY protocol header refused"), reply
        assert reader.read() == b""  # closed
        wait_until(lambda: "FTP PROXY protocol header from 127.0.0.1 refused" in caplog.text)
    sock.close()
    # the claimed address was never used
    assert [e["remote_ip"] for e in recorder.wait("ftp_client_disconnected")] == ["127.0.0.1"]
    assert "Traceback" not in caplog.text


def test_lockout_counts_the_client_not_the_balancer(
    trusted, server_factory, account, quick_failures
):
    trusted.FTPSERVER_LOCKOUT_FAILURES = 2
    trusted.FTPSERVER_LOCKOUT_WINDOW = 60
    trusted.FTPSERVER_LOCKOUT_DURATION = 60
    server = server_factory()

    def via(header, password=PASSWORD):
        return login(proxied_ftp(server.host, server.port, header), password)

    for _ in range(2):
        assert via(v1(("203.0.113.7", 1)), "wrong").startswith("530")
    assert LOCKED in via(v2(("203.0.113.7", 2)))  # v1 or v2: the same client
    assert via(v1(("203.0.113.8", 1))).startswith("230")  # another client behind the balancer
    assert via(v2(command=0x0)).startswith("230")  # the balancer itself
    from django_ftpserver.auth import lockout

    assert lockout.is_locked("203.0.113.7") and not lockout.is_locked("127.0.0.1")


def test_ipv6_clients_are_locked_out_per_64(trusted, server_factory, account, quick_failures):
    trusted.FTPSERVER_LOCKOUT_FAILURES = 2
    server = server_factory()
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2"):
        header = v2((host, 1), ("2001:db8::1", 21))
        assert login(proxied_ftp(server.host, server.port, header), "wrong").startswith("530")
    header = v1(("2001:db8:1:2::3", 1), ("2001:db8::1", 21))
    assert LOCKED in login(proxied_ftp(server.host, server.port, header))
    header = v1(("2001:db8:1:3::1", 1), ("2001:db8::1", 21))
    assert login(proxied_ftp(server.host, server.port, header)).startswith("230")


def test_connections_per_ip_count_the_client(trusted, server_factory, account):
    trusted.FTPSERVER_MAX_CONNECTIONS_PER_IP = 1
    server = server_factory()
    first = proxied_ftp(server.host, server.port, v1(("203.0.113.7", 1)))
    try:
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections from the same IP"):
            proxied_ftp(server.host, server.port, v2(("203.0.113.7", 2)))
        other = proxied_ftp(server.host, server.port, v1(("203.0.113.8", 1)))
        assert other.welcome.startswith("220")
        other.close()
    finally:
        first.close()


def test_session_log_lines_name_the_client(trusted, server_factory, account, caplog):
    server = server_factory()
    with caplog.at_level(logging.INFO, logger="pyftpdlib"):
        ftp = proxied_ftp(server.host, server.port, v1(("203.0.113.7", 4242)))
        assert ftp.login("alice", PASSWORD).startswith("230")
        ftp.quit()
        wait_until(lambda: "USER 'alice' logged in" in caplog.text, 10, "the login log line")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("pyftpdlib")]
    assert lines and all("127.0.0.1" not in line for line in lines), lines
    assert any("203.0.113.7:4242" in line for line in lines), lines


# --- passive data connections behind a balancer


def pasv_port(raw: RawClient) -> int:
    code, text = raw.send(b"PASV")
    assert code == 227, text
    numbers = [int(n) for n in re.search(rb"\((\d+(?:,\d+){5})\)", text).group(1).split(b",")]
    return numbers[4] * 256 + numbers[5]


class ProxiedRawClient(RawClient):
    def __init__(self, server, header: bytes) -> None:  # noqa: D107 - RawClient's, with a header
        self.sock = connect_raw(server.host, server.port)
        self.sock.sendall(header)
        self.file = self.sock.makefile("rb")
        self.banner = self.read_reply()


def test_data_connection_from_the_client_itself(trusted, server_factory, account, home):
    """Passive ports reached directly: the data connection comes from the client's address."""
    (home / "f.txt").write_bytes(b"hello")
    server = server_factory()
    ftp = proxied_ftp(server.host, server.port, v1(("127.0.0.5", 1)), data_source="127.0.0.5")
    ftp.login("alice", PASSWORD)
    out = io.BytesIO()
    ftp.retrbinary("RETR f.txt", out.write)
    assert out.getvalue() == b"hello"
    assert ftp.nlst() == ["f.txt"]
    ftp.quit()


def test_data_connection_from_another_address_is_refused(
    trusted, server_factory, account, home, caplog
):
    (home / "f.txt").write_bytes(b"hello")
    server = server_factory()
    raw = ProxiedRawClient(server, v1(("127.0.0.5", 1)))
    raw.login("alice")
    port = pasv_port(raw)
    thief = socket.create_connection(
        (server.host, port), timeout=10, source_address=("127.0.0.6", 0)
    )
    # Closed at once; the session hears nothing of it (no unrequested 425
    # shifting its replies): the next reply is the NOOP's.
    with contextlib.suppress(ConnectionResetError):
        assert thief.recv(1024) == b""
    thief.close()
    assert raw.send(b"NOOP")[0] == 200
    wait_until(
        lambda: any(
            "data connection from 127.0.0.6" in r.getMessage()
            and "the session's client is 127.0.0.5" in r.getMessage()
            for r in caplog.records
        ),
        what="the warning",
    )
    raw.close()


def test_data_connection_through_the_balancer_with_its_header(
    trusted, server_factory, account, home
):
    """Passive ports forwarded by the balancer with send-proxy: the header names the client."""
    (home / "f.txt").write_bytes(b"hello")
    server = server_factory()
    raw = ProxiedRawClient(server, v2(("203.0.113.7", 1)))
    raw.login("alice")
    port = pasv_port(raw)
    data = connect_raw(server.host, port)
    data.sendall(v1(("203.0.113.7", 2)))
    code, _ = raw.send(b"RETR f.txt")
    assert code in (125, 150)
    received = b""
    while chunk := data.recv(65536):
        received += chunk
    assert received == b"hello"
    assert raw.read_reply()[0] == 226
    data.close()
    raw.close()


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (v2(command=0x0), b"names no client"),
        (b"garbage\r\n", b"no valid PROXY header"),
        (b"", b"no valid PROXY header"),  # none within the timeout
    ],
    ids=["local", "garbage", "none"],
)
def test_data_connection_through_the_balancer_must_name_the_client(
    trusted, server_factory, account, home, header, reason
):
    trusted.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0.5
    server = server_factory()
    raw = ProxiedRawClient(server, v2(("203.0.113.7", 1)))
    raw.login("alice")
    port = pasv_port(raw)
    data = connect_raw(server.host, port)
    data.sendall(header)
    code, text = raw.read_reply()
    assert code == 425 and reason in text, text
    assert closed_without_banner(data)
    data.close()
    assert raw.send(b"NOOP")[0] == 200  # the session goes on
    raw.close()


def test_data_connection_through_the_balancer_for_another_client(
    trusted, server_factory, account, home, caplog
):
    """Another client's transfer: closed, quietly for the session, as a direct one."""
    server = server_factory()
    raw = ProxiedRawClient(server, v2(("203.0.113.7", 1)))
    raw.login("alice")
    port = pasv_port(raw)
    data = connect_raw(server.host, port)
    data.sendall(v1(("203.0.113.8", 2)))
    assert closed_without_banner(data)
    data.close()
    assert raw.send(b"NOOP")[0] == 200  # the next reply is the NOOP's: no 425 before it
    assert any(
        "data connection from 203.0.113.8" in r.getMessage()
        and "the session's client is 203.0.113.7" in r.getMessage()
        for r in caplog.records
    )
    raw.close()


# --- configuration


def test_bad_trusted_entry_stops_the_server_with_one_line(settings):
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["10.0.0.1/8"]
    with pytest.raises(
        ConfigError,
        match="FTPSERVER_PROXY_PROTOCOL_TRUSTED: not an address or network: '10.0.0.1/8'",
    ):
        FTPServerConfig(host="127.0.0.1", port=0).validate()
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1"]
    settings.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0
    with pytest.raises(ConfigError, match="FTPSERVER_PROXY_PROTOCOL_TIMEOUT must be more than 0"):
        FTPServerConfig(host="127.0.0.1", port=0).validate()


def test_command_refuses_a_bad_trusted_entry(settings):
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["balancer.example.com"]
    with pytest.raises(CommandError, match="not an address or network: 'balancer.example.com'"):
        call_command("ftpserver", "127.0.0.1:0", stdout=io.StringIO())


def test_server_class_without_support_is_refused(settings):
    from django_ftpserver.runner import FTPServerRunner

    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1"]
    config = FTPServerConfig(host="127.0.0.1", port=0, server_class="pyftpdlib.servers.FTPServer")
    with pytest.raises(ConfigError, match="needs a server class based on"):
        FTPServerRunner(config).create_server()


def test_check_e011_bad_trusted_entries(settings):
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["10.0.0.0/8", "not-an-ip"]
    errors = checks.check_proxy_protocol()
    assert [e.id for e in errors] == ["django_ftpserver.E011"]
    assert "not-an-ip" in errors[0].msg
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = "10.0.0.0/8"  # one string: allowed
    assert checks.check_proxy_protocol() == []
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = 10
    assert [e.id for e in checks.check_proxy_protocol()] == ["django_ftpserver.E011"]


def test_check_e012_bad_timeout(settings):
    settings.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = -1
    assert [e.id for e in checks.check_proxy_protocol()] == ["django_ftpserver.E012"]
    settings.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 2.5
    assert checks.check_proxy_protocol() == []


def test_session_of_the_balancer_itself_still_needs_data_headers(
    trusted, server_factory, account, home
):
    """Every connection from a trusted address starts with a header, data ones too."""
    (home / "f.txt").write_bytes(b"hello")
    trusted.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0.5
    server = server_factory()
    raw = ProxiedRawClient(server, v2(command=0x0))
    raw.login("alice")
    data = connect_raw(server.host, pasv_port(raw))
    code, text = raw.read_reply()
    assert code == 425 and b"no valid PROXY header" in text, text
    data.close()
    data = connect_raw(server.host, pasv_port(raw))
    data.sendall(v1(("127.0.0.1", 2)))
    assert raw.send(b"NLST")[0] in (125, 150)
    assert data.makefile("rb").read() == b"f.txt\r\n"
    assert raw.read_reply()[0] == 226
    data.close()
    raw.close()


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_curl_with_haproxy_protocol(trusted, server_factory, account, home, recorder):
    """A real client sending a real v1 header: curl --haproxy-protocol (from 127.0.0.1)."""
    (home / "f.txt").write_bytes(b"hello from curl")
    server = server_factory()
    url = f"ftp://alice:{PASSWORD}@{server.host}:{server.port}/f.txt"
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--haproxy-protocol", url],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello from curl"
    assert recorder.wait("ftp_login")[0]["remote_ip"] == "127.0.0.1"
    # Without the header, curl's connection from the trusted address is closed ungreeted.
    trusted.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0.5
    server = server_factory()
    url = f"ftp://alice:{PASSWORD}@{server.host}:{server.port}/f.txt"
    done = subprocess.run(["curl", "-sS", "--max-time", "30", url], capture_output=True, timeout=60)
    assert done.returncode != 0 and done.stdout == b""


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_balancer_and_dual_stack_listener(settings, server_factory, account, home, recorder):
    """A server on "::": the balancer's IPv4 address arrives IPv4-mapped, and so do clients'."""
    (home / "f.txt").write_bytes(b"hello")
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1", "::1"]
    server = server_factory(host_port="[::]:0")
    # From ::1 (an IPv6 balancer), naming an IPv4 client.
    ftp = proxied_ftp("::1", server.port, v2(("203.0.113.7", 1)))
    assert login(ftp).startswith("230")
    # From 127.0.0.1, seen as ::ffff:127.0.0.1 on the dual-stack socket: trusted all the same;
    # the client's direct data connection (::ffff:127.0.0.5) matches its header (127.0.0.5).
    ftp = proxied_ftp("127.0.0.1", server.port, v1(("127.0.0.5", 1)), data_source="127.0.0.5")
    ftp.login("alice", PASSWORD)
    assert ftp.nlst() == ["f.txt"]
    ftp.quit()
    ips = [e["remote_ip"] for e in recorder.wait("ftp_login", 2)]
    assert ips == ["203.0.113.7", "127.0.0.5"]


def test_ftps_behind_the_balancer(trusted, server_factory, account, home, recorder, tmp_path):
    """Explicit TLS: the header comes first, AUTH TLS after it; PROT P data from the client."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    certfile = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    (home / "f.txt").write_bytes(b"secret")
    server = server_factory(certfile=str(certfile))
    ftp = proxied_ftp(
        server.host,
        server.port,
        v2(("127.0.0.5", 1)),
        data_source="127.0.0.5",
        ftp_class=ftplib.FTP_TLS,
        context=context,
    )
    ftp.login("alice", PASSWORD)  # AUTH TLS first (FTP_TLS does it)
    ftp.prot_p()
    out = io.BytesIO()
    ftp.retrbinary("RETR f.txt", out.write)
    assert out.getvalue() == b"secret"
    ftp.quit()
    assert recorder.wait("ftp_login")[0]["remote_ip"] == "127.0.0.5"
