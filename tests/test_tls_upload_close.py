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

The loop below uploads many small files (the case where everything fits in
one read) and a few of 1 MB, each with a short timeout: without the fix it
hangs within a hundred or so uploads on most runs; with it, never.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
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
            except (TimeoutError, socket.timeout, ftplib.Error, OSError) as exc:
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
