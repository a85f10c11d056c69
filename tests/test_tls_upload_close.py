"""FTPS uploads end with a TLS shutdown the server answers.

ftplib's ``storbinary`` ends an upload with ``unwrap()``: it sends its
``close_notify`` and waits for the server's before it closes the socket.
When the client's last records (its handshake ``Finished``, the file data,
its ``close_notify``) reach the server in one read, the server's TLS
transport (``tlsdata.DataConnection``, which reads the socket in large
chunks into OpenSSL's memory buffer) used to finish the handshake and leave
the rest in that buffer. Nothing was left in the socket to wake the poller,
so the server never read the data nor the ``close_notify``, the client
waited for the server's, and the STOR was never answered. It happened
about once in a few hundred small uploads, more often on a busy machine.

``test_upload_in_one_segment`` makes that race certain: its client holds
its ``Finished``, the data and its ``close_notify`` back and sends them in
one ``sendall``; without the fix it hangs (times out) every time.
``test_ftplib_uploads_end_cleanly`` is the symptom as ftplib meets it: 150
``storbinary`` uploads, small ones and a few of 1 MB, each bounded by a
timeout. Without the fix about one in 200 of them hung (3 of 600 in a
stress run), so this loop fails on some runs only; with the fix none hung
in 1,200.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PASSWORD, RunningServer
from .test_tls_policy import Certificate, make_certificate

pytestmark = [pytest.mark.timeout(600)]

#: Uploads in the loop; FTPSERVER_TEST_TLS_UPLOADS raises it for a stress run.
UPLOADS = int(os.environ.get("FTPSERVER_TEST_TLS_UPLOADS", "150"))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("close-tls"))


def _client(server: RunningServer, certificate: Certificate) -> ftplib.FTP_TLS:
    # The timeout bounds each upload: a hang shows as a timeout, not a stuck run.
    ftp = ftplib.FTP_TLS(context=certificate.client_context(), timeout=10)
    ftp.connect(server.host, server.port)
    ftp.login("alice", PASSWORD)
    ftp.prot_p()
    return ftp


def test_ftplib_uploads_end_cleanly(
    server_factory: Callable[..., RunningServer],
    certificate: Certificate,
    home: Path,
) -> None:
    server = server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))
    small = b"x" * 1000
    big = os.urandom(1024 * 1024)
    hangs: list[int] = []
    ftp = _client(server, certificate)
    try:
        for n in range(UPLOADS):
            data = big if n % 25 == 24 else small
            try:
                ftp.storbinary(f"STOR f{n}.bin", io.BytesIO(data))
            except (ftplib.Error, OSError) as exc:  # a timeout, mostly
                hangs.append(n)
                print(f"upload {n} ({len(data)} bytes) failed: {exc!r}")
                ftp.close()
                ftp = _client(server, certificate)
                continue
            assert (home / f"f{n}.bin").read_bytes() == data
    finally:
        ftp.close()
    print(f"{len(hangs)} of {UPLOADS} uploads hung")
    assert hangs == []


def test_upload_in_one_segment(
    server_factory: Callable[..., RunningServer],
    certificate: Certificate,
    home: Path,
) -> None:
    server = server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))
    ftp = _client(server, certificate)
    data = b"one segment\n" * 100
    try:
        ftp.voidcmd("TYPE I")
        host, port = ftp.makepasv()
        with socket.create_connection((host, port), timeout=10) as sock:
            ftp.putcmd("STOR one.bin")
            assert ftp.getresp()[:3] in ("125", "150")
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = certificate.client_context().wrap_bio(
                incoming, outgoing, server_hostname=server.host
            )
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    chunk = sock.recv(65536)
                    assert chunk, "server closed during the handshake"
                    incoming.write(chunk)
            # The client's Finished, the data and the close_notify: one segment.
            tls.write(data)
            with pytest.raises(ssl.SSLWantReadError):
                tls.unwrap()
            sock.sendall(outgoing.read())
            while True:  # the server's close_notify (a timeout here is the bug)
                chunk = sock.recv(65536)
                assert chunk, "server closed without its close_notify"
                incoming.write(chunk)
                try:
                    tls.unwrap()
                    break
                except ssl.SSLWantReadError:
                    continue
        assert ftp.voidresp().startswith("226")
        assert (home / "one.bin").read_bytes() == data
    finally:
        ftp.close()
