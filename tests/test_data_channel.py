"""pyftpdlib's data-channel protections, under the app's plain and TLS handlers.

RFC 2577: no ``PORT``/``EPRT`` to another host (FTP bounce) or to a
privileged port, no passive data connection from another address, and a
client repeating ``PASV`` holds one passive port, not the whole range.
127.0.0.2 and 127.0.0.3 play the other hosts.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import random
import re
import socket
from pathlib import Path

import pytest

from .conftest import PASSWORD, wait_until
from .test_tls_policy import certificate  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def no_lockout(settings):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0


@pytest.fixture(params=["plain", "tls"])
def mode(request):
    return request.param


@pytest.fixture
def start(server_factory, mode, request):
    """Start a server in ``mode``; returns (server, client factory)."""

    def starter(**options):
        cert = None
        if mode == "tls":
            cert = request.getfixturevalue("certificate")
            options.update(certfile=str(cert.certfile), keyfile=str(cert.keyfile))
        server = server_factory(**options)

        def client(source="127.0.0.1"):
            if cert is None:
                ftp = ftplib.FTP(source_address=(source, 0))
            else:
                ftp = ftplib.FTP_TLS(context=cert.client_context(), source_address=(source, 0))
            ftp.connect(server.host, server.port, timeout=15)
            ftp.login("alice", PASSWORD)
            if cert is not None:
                ftp.prot_p()
            return ftp

        return server, client

    return starter


def port_args(host, port):
    return ",".join(host.split(".") + [str(port // 256), str(port % 256)])


def passive_port(reply):
    numbers = [int(n) for n in re.search(r"\((\d+(?:,\d+){5})\)", reply).group(1).split(",")]
    return ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]


def listening(host):
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(5)
    sock.settimeout(0.5)
    return sock


def nothing_connects(sock):
    with contextlib.suppress(TimeoutError):
        conn, addr = sock.accept()
        conn.close()
        return False
    return True


def listing(ftp):
    return ftp.nlst()


# --- active mode


def test_port_to_another_host_is_refused(start, account, home):
    server, client = start()
    ftp = client()
    target = listening("127.0.0.2")
    with contextlib.closing(ftp), target:
        port = target.getsockname()[1]
        with pytest.raises(ftplib.error_perm, match="^501 Rejected data connection to foreign"):
            ftp.sendcmd(f"PORT {port_args('127.0.0.2', port)}")
        with pytest.raises(ftplib.error_perm, match="^501 Rejected data connection to foreign"):
            ftp.sendcmd(f"EPRT |1|127.0.0.2|{port}|")
        assert nothing_connects(target)  # the server never bounced to it
        assert listing(ftp) == []  # the session goes on (passive)


def test_port_to_a_privileged_port_is_refused(start, account, home):
    server, client = start()
    ftp = client()
    with contextlib.closing(ftp):
        with pytest.raises(ftplib.error_perm, match='^501 PORT against the privileged port "21"'):
            ftp.sendcmd(f"PORT {port_args('127.0.0.1', 21)}")
        with pytest.raises(ftplib.error_perm, match='^501 PORT against the privileged port "80"'):
            ftp.sendcmd("EPRT |1|127.0.0.1|80|")


def test_port_to_the_clients_own_address_works(start, account, home):
    (home / "a.txt").write_text("a")
    server, client = start()
    ftp = client()
    with contextlib.closing(ftp):
        ftp.set_pasv(False)
        assert listing(ftp) == ["a.txt"]


# --- passive mode


def test_passive_connection_from_another_address_is_refused(start, account, home, caplog):
    (home / "a.txt").write_text("a")
    server, client = start()
    ftp = client()
    with contextlib.closing(ftp):
        host, port = passive_port(ftp.sendcmd("PASV"))
        intruder = socket.create_connection(
            (host, port), timeout=15, source_address=("127.0.0.2", 0)
        )
        with intruder, contextlib.suppress(ConnectionResetError):
            assert intruder.recv(1024) == b""  # closed at once, nothing sent
        wait_until(
            lambda: any("refused: the session's client" in r.getMessage() for r in caplog.records),
            what="the warning",
        )
        # The client's own connection is still awaited, and its replies are
        # in step: no unrequested 425 came in between.
        data = socket.create_connection((host, port), timeout=15)
        ftp.putcmd("NLST")
        assert ftp.getresp()[:3] in ("125", "150")
        if isinstance(ftp, ftplib.FTP_TLS):
            data = ftp.context.wrap_socket(data, server_hostname=ftp.host)
        received = b""
        with data:
            while chunk := data.recv(1024):
                received += chunk
            if isinstance(ftp, ftplib.FTP_TLS):
                data.unwrap()
        assert received == b"a.txt\r\n"
        assert ftp.voidresp().startswith("226")
        assert ftp.voidcmd("NOOP").startswith("200")
    warnings = [r.getMessage() for r in caplog.records if "data connection" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("FTP data connection from 127.0.0.2:")


def ephemeral_range():
    """The ports the kernel picks for outgoing connections and ``bind(port 0)``."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_ports(count):
    """``count`` free ports outside the ephemeral range.

    A port the kernel handed out (``bind`` to port 0) and that was closed
    again may be given to any connection made meanwhile, on this machine,
    as its source port, and the server then finds it in use; the ports below
    are only taken by those who ask for them by number.
    """
    low, high = ephemeral_range()
    candidates = [port for port in range(10000, 65536) if not low <= port <= high]
    ports = []
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return sorted(ports)
    pytest.skip(f"no {count} free ports outside the ephemeral range {low}-{high}")


def test_pasv_1000_times_does_not_exhaust_the_range(start, account, home, caplog):
    (home / "a.txt").write_text("a")
    ports = free_ports(3)
    server, client = start(**{"passive-ports": ",".join(map(str, ports))})
    hog = client()
    others = []
    with contextlib.closing(hog):
        for _ in range(1000):
            host, port = passive_port(hog.sendcmd("PASV"))
            assert port in ports
        # The hog holds one port; two clients from elsewhere get the other two.
        others = [client("127.0.0.2"), client("127.0.0.3")]
        for other in others:
            assert passive_port(other.sendcmd("PASV"))[1] in ports
        for other in others:
            assert listing(other) == ["a.txt"]
            other.close()
        assert listing(hog) == ["a.txt"]
    assert not [r for r in caplog.records if "valid passive port" in r.getMessage()]


def test_pasv_pipelined_1000_times(server_factory, account, home):
    """Sent in one go, as a hostile client would: every reply a port of the range."""
    ports = free_ports(3)
    server = server_factory(**{"passive-ports": ",".join(map(str, ports))})
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(f"USER alice\r\nPASS {PASSWORD}\r\n".encode())
        assert reader.readline().startswith(b"331")
        assert reader.readline().startswith(b"230")
        sock.sendall(b"PASV\r\n" * 1000)
        for _ in range(1000):
            line = reader.readline().decode()
            assert line.startswith("227 ") and passive_port(line)[1] in ports, line
    logging.getLogger(__name__).info("1000 PASV answered")
    ftp = ftplib.FTP(source_address=("127.0.0.2", 0))
    ftp.connect(server.host, server.port, timeout=15)
    ftp.login("alice", PASSWORD)
    assert passive_port(ftp.sendcmd("PASV"))[1] in ports
    ftp.close()
