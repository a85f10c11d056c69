"""``FTPSERVER_TLS_REQUIRE_SESSION_REUSE``: a data connection must resume its control's TLS session.

A client that resumes (an ``FTP_TLS`` passing the control connection's
session, as FileZilla, curl and lftp do) works, with TLS 1.2 and 1.3. One
that does not (Python's own ``FTP_TLS``) gets ``522``. A second client that
connects to the first one's passive port with a TLS session of its own, as
someone taking a transfer over would, gets nothing resumed and the transfer
is refused.
"""

from __future__ import annotations

import ftplib
import io
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import PASSWORD, RunningServer
from .test_tls_policy import Certificate, make_certificate


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """``FTP_TLS`` whose data connections resume the control connection's session."""

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def reuse_server(
    server_factory: Callable[..., RunningServer], tls_certificate: Certificate, settings: Any
) -> RunningServer:
    settings.FTPSERVER_TLS_REQUIRE_SESSION_REUSE = True
    return server_factory(
        certfile=str(tls_certificate.certfile), keyfile=str(tls_certificate.keyfile)
    )


def _login(
    server: RunningServer,
    certificate: Certificate,
    cls: type[ftplib.FTP_TLS] = ReusingFTP_TLS,
    tls12: bool = False,
) -> ftplib.FTP_TLS:
    context = certificate.client_context()
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    ftps = cls(context=context, timeout=10)
    ftps.connect(server.host, server.port)
    ftps.login("alice", PASSWORD)
    ftps.prot_p()
    return ftps


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
def test_a_client_resuming_its_session_transfers(
    tls12, reuse_server, tls_certificate, account, home, recorder
):
    ftps = _login(reuse_server, tls_certificate, tls12=tls12)
    data = b"resumed" * 50_000
    for _ in range(3):  # later sessions resume tickets from data connections too
        ftps.storbinary("STOR kept.bin", io.BytesIO(data))
        out = io.BytesIO()
        ftps.retrbinary("RETR kept.bin", out.write)
        assert out.getvalue() == data
        assert ftps.nlst() == ["kept.bin"]
    assert (home / "kept.bin").read_bytes() == data
    assert len(recorder.wait("ftp_file_received", count=3)) == 3
    ftps.quit()


def test_a_client_not_resuming_gets_522(reuse_server, tls_certificate, account, home, recorder):
    ftps = _login(reuse_server, tls_certificate, cls=ftplib.FTP_TLS)
    conn = ftps.transfercmd("STOR fresh.bin")  # 150, then a full handshake
    with pytest.raises(ftplib.error_perm, match="^522 Data connection refused: it must resume"):
        ftps.getresp()
    conn.close()
    recorder.wait("ftp_file_received_incomplete")
    assert recorder.of("ftp_file_received") == []
    conn = ftps.transfercmd("LIST")
    with pytest.raises(ftplib.error_perm, match="^522"):
        ftps.getresp()
    conn.close()
    assert ftps.voidcmd("NOOP").startswith("200")  # the session goes on
    ftps.quit()


def test_another_clients_session_cannot_take_a_transfer_over(
    reuse_server, tls_certificate, account, home, recorder
):
    victim = _login(reuse_server, tls_certificate)
    intruder = _login(reuse_server, tls_certificate)  # a session of its own on this server
    host, port = victim.makepasv()
    stolen = intruder.context.wrap_socket(
        socket.create_connection((host, port), timeout=10),
        server_hostname="127.0.0.1",
        session=intruder.sock.session,
    )
    assert not stolen.session_reused
    victim.putcmd("STOR target.bin")
    replies = [victim.getline()]
    if replies[0][:3] in ("125", "150"):
        replies.append(victim.getline())
    assert replies[-1].startswith("522"), replies
    stolen.close()
    assert not (home / "target.bin").exists() or (home / "target.bin").read_bytes() == b""
    assert recorder.of("ftp_file_received") == []
    # The victim's own next transfer, resuming its session, works.
    victim.storbinary("STOR target.bin", io.BytesIO(b"mine"))
    assert (home / "target.bin").read_bytes() == b"mine"
    victim.quit()
    intruder.quit()


def test_off_by_default(server_factory, tls_certificate, account, home):
    server = server_factory(
        certfile=str(tls_certificate.certfile), keyfile=str(tls_certificate.keyfile)
    )
    ftps = _login(server, tls_certificate, cls=ftplib.FTP_TLS)  # never resumes
    ftps.storbinary("STOR plain.bin", io.BytesIO(b"fine"))
    assert (home / "plain.bin").read_bytes() == b"fine"
    ftps.quit()
