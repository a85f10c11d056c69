"""TLS policy: with a certificate, TLS is required on control and data connections.

Real clients only: ftplib's FTP and FTP_TLS, curl and lftp.
"""

from __future__ import annotations

import ftplib
import io
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from .conftest import PASSWORD, RunningServer


@dataclass
class Certificate:
    ca: trustme.CA
    certfile: Path
    keyfile: Path
    cafile: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def make_certificate(directory: Path) -> Certificate:
    """A CA and a server certificate for 127.0.0.1, written to PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    server.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return Certificate(ca, certfile, keyfile, cafile)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ftps_server(server_factory: Callable[..., RunningServer], certificate: Certificate):
    return server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))


def tls_client(server: RunningServer, certificate: Certificate) -> ftplib.FTP_TLS:
    client = ftplib.FTP_TLS(context=certificate.client_context())
    client.connect(server.host, server.port, timeout=10)
    return client


def test_plain_login_is_refused(ftps_server, account):
    client = ftps_server.connect()
    with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the control channel"):
        client.login(account.user.username, PASSWORD)
    client.close()


def test_tls_login_and_private_transfer(ftps_server, certificate, account, home):
    client = tls_client(ftps_server, certificate)
    client.login(account.user.username, PASSWORD)  # AUTH TLS first
    client.prot_p()
    client.storbinary("STOR secret.txt", io.BytesIO(b"over tls"))
    assert (home / "secret.txt").read_bytes() == b"over tls"
    out = io.BytesIO()
    client.retrbinary("RETR secret.txt", out.write)
    assert out.getvalue() == b"over tls"
    client.quit()


def test_clear_data_channel_is_refused(ftps_server, certificate, account, home):
    client = tls_client(ftps_server, certificate)
    client.login(account.user.username, PASSWORD)
    client.voidcmd("PBSZ 0")  # ftplib's prot_c() does not send it
    with pytest.raises(ftplib.error_perm, match="534 PROT C refused"):
        client.prot_c()
    # A client that skips PROT entirely gets no data connection either.
    with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the data channel"):
        client.storbinary("STOR clear.txt", io.BytesIO(b"clear"))
    assert not (home / "clear.txt").exists()
    assert client.voidcmd("NOOP").startswith("200")
    client.quit()


def test_relaxed_settings_allow_plain_ftp(settings, server_factory, certificate, account, home):
    settings.FTPSERVER_TLS_CONTROL_REQUIRED = False
    settings.FTPSERVER_TLS_DATA_REQUIRED = False
    server = server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))
    plain = server.connect(account.user.username)
    plain.storbinary("STOR plain.txt", io.BytesIO(b"plain"))
    plain.quit()
    assert (home / "plain.txt").read_bytes() == b"plain"
    client = tls_client(server, certificate)
    client.login(account.user.username, PASSWORD)
    client.voidcmd("PBSZ 0")
    client.prot_c()
    out = io.BytesIO()
    client.retrbinary("RETR plain.txt", out.write)
    assert out.getvalue() == b"plain"
    client.quit()


def test_only_data_relaxed_still_needs_tls_login(settings, server_factory, certificate, account):
    settings.FTPSERVER_TLS_DATA_REQUIRED = False
    server = server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))
    plain = server.connect()
    with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the control channel"):
        plain.login(account.user.username, PASSWORD)
    plain.close()
    client = tls_client(server, certificate)
    client.login(account.user.username, PASSWORD)
    client.voidcmd("PBSZ 0")
    client.prot_c()
    assert client.nlst() == []
    client.quit()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_over_ftps(ftps_server, certificate, account, home, tmp_path, recorder):
    source = tmp_path / "up.bin"
    source.write_bytes(b"curl payload " * 1000)
    base = f"ftp://{ftps_server.host}:{ftps_server.port}"
    auth = f"{account.user.username}:{PASSWORD}"
    upload = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k", "-u", auth, "-T", str(source), f"{base}/up.bin"],
        capture_output=True,
        timeout=30,
    )
    assert upload.returncode == 0, upload.stderr
    assert (home / "up.bin").read_bytes() == source.read_bytes()
    assert recorder.wait("ftp_file_received")[0]["ftp_path"] == "/up.bin"
    download = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "--cacert", str(certificate.cafile), "-u", auth,
         f"{base}/up.bin"],
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr
    assert download.stdout == source.read_bytes()
    # Without TLS, curl gets no further than the login.
    plain = subprocess.run(
        ["curl", "-sS", "-u", auth, f"{base}/up.bin"], capture_output=True, timeout=30
    )
    assert plain.returncode != 0
    assert plain.stdout == b""


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp is not installed")
def test_lftp_over_ftps(ftps_server, account, home, tmp_path, recorder):
    (home / "report.txt").write_bytes(b"lftp payload")
    target = tmp_path / "got.txt"
    script = (
        "set ssl:verify-certificate no; set ftp:ssl-force true; set ftp:ssl-protect-data true; "
        "set net:max-retries 1; set net:timeout 10; "
        f"open -u {account.user.username},{PASSWORD} -p {ftps_server.port} {ftps_server.host}; "
        f"get report.txt -o {target}; put {target} -o copy.txt; bye"
    )
    result = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"lftp payload"
    assert (home / "copy.txt").read_bytes() == b"lftp payload"
    # lftp closes with close_notify and then a reset: still a complete upload.
    assert recorder.wait("ftp_file_received")[0]["ftp_path"] == "/copy.txt"
    recorder.settle()
    assert recorder.of("ftp_file_received_incomplete") == []
