"""Real FTP clients against a real server: curl, lftp, and ftplib over TLS."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from .conftest import PASSWORD


def _payload(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"tail"


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make system-deps)")
@pytest.mark.storages("disk", "s3")
def test_curl_session(ftp_server, home, recorder, tmp_path):
    data = _payload(300_000)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    base = f"ftp://alice:{PASSWORD}@127.0.0.1:{ftp_server.port}"

    upload = _run(["curl", "-sS", "-T", str(source), f"{base}/up.bin"])
    assert upload.returncode == 0, upload.stderr
    assert (home / "up.bin").read_bytes() == data
    assert recorder.wait("ftp_file_received")[0]["path"] == str(home / "up.bin")

    listing = _run(["curl", "-sS", "--list-only", f"{base}/"])
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["up.bin"]

    target = tmp_path / "down.bin"
    download = _run(["curl", "-sS", "-o", str(target), f"{base}/up.bin"])
    assert download.returncode == 0, download.stderr
    assert target.read_bytes() == data
    assert recorder.wait("ftp_file_sent")[0]["ftp_path"] == "/up.bin"

    rename = _run(["curl", "-sS", "-Q", "RNFR up.bin", "-Q", "RNTO renamed.bin", f"{base}/"])
    assert rename.returncode == 0, rename.stderr
    assert (home / "renamed.bin").exists()
    renamed = recorder.wait("ftp_file_renamed")[0]
    assert renamed["path_to"] == str(home / "renamed.bin")

    delete = _run(["curl", "-sS", "-Q", "DELE renamed.bin", f"{base}/"])
    assert delete.returncode == 0, delete.stderr
    assert not (home / "renamed.bin").exists()
    assert recorder.wait("ftp_file_deleted")[0]["path"] == str(home / "renamed.bin")

    wrong = _run(["curl", "-sS", f"ftp://alice:wrong@127.0.0.1:{ftp_server.port}/"])
    assert wrong.returncode == 67, wrong  # CURLE_LOGIN_DENIED
    assert recorder.wait("ftp_login_failed")[0]["username"] == "alice"


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp is not installed (make system-deps)")
@pytest.mark.storages("disk", "s3")
def test_lftp_session(ftp_server, home, recorder, tmp_path):
    data = _payload(1_000_000)
    (tmp_path / "local.bin").write_bytes(data)
    script = "; ".join(
        [
            "set net:max-retries 1",
            "set net:timeout 10",
            "set cmd:fail-exit yes",
            f"open -u alice,{PASSWORD} -p {ftp_server.port} 127.0.0.1",
            "mkdir inbox",
            "cd inbox",
            "put local.bin -o data.bin",
            "ls",
            "get data.bin -o fetched.bin",
            "mv data.bin kept.bin",
            "rm kept.bin",
            "cd /",
            "rmdir inbox",
            "bye",
        ]
    )
    result = _run(["lftp", "-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "data.bin" in result.stdout
    assert (tmp_path / "fetched.bin").read_bytes() == data
    assert not (home / "inbox").exists()

    assert recorder.wait("ftp_file_received")[0]["path"] == str(home / "inbox" / "data.bin")
    assert recorder.wait("ftp_file_sent")[0]["ftp_path"] == "/inbox/data.bin"
    assert recorder.wait("ftp_file_renamed")[0]["ftp_path_to"] == "/inbox/kept.bin"
    assert recorder.wait("ftp_file_deleted")[0]["path"] == str(home / "inbox" / "kept.bin")
    assert recorder.wait("ftp_directory_created")[0]["path"] == str(home / "inbox")
    assert recorder.wait("ftp_directory_deleted")[0]["path"] == str(home / "inbox")


# --- FTPS


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture
def ftps_server(server_factory, tls_files):
    return server_factory(certfile=str(tls_files["cert"]), keyfile=str(tls_files["key"]))


def _tls_client(server, tls_files) -> ftplib.FTP_TLS:
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    ftps = ftplib.FTP_TLS(context=context, timeout=10)
    ftps.connect(server.host, server.port)
    return ftps


def test_ftps_session_with_verified_certificate(ftps_server, tls_files, home, recorder):
    ftps = _tls_client(ftps_server, tls_files)
    ftps.login("alice", PASSWORD)
    ftps.prot_p()
    data = _payload(200_000)
    ftps.storbinary("STOR secure.bin", io.BytesIO(data))
    out = io.BytesIO()
    ftps.retrbinary("RETR secure.bin", out.write)
    assert out.getvalue() == data
    assert (home / "secure.bin").read_bytes() == data
    received = recorder.wait("ftp_file_received")[0]
    assert received["path"] == str(home / "secure.bin")
    assert received["sender"].__name__ == "DjangoTLS_FTPHandler"
    ftps.quit()
    assert recorder.wait("ftp_logout")[0]["username"] == "alice"


def test_ftps_requires_tls_by_default(ftps_server, tls_files, account, recorder):
    plain = ftplib.FTP()
    plain.connect(ftps_server.host, ftps_server.port, timeout=10)
    with pytest.raises(ftplib.error_perm, match="^550"):
        plain.login("alice", PASSWORD)
    plain.close()
    assert recorder.of("ftp_login") == []

    ftps = _tls_client(ftps_server, tls_files)
    ftps.login("alice", PASSWORD)
    with pytest.raises(ftplib.error_perm, match="^550 SSL/TLS required on the data"):
        ftps.retrlines("LIST")  # data channel still in clear text
    ftps.quit()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make system-deps)")
def test_curl_ftps_upload(ftps_server, tls_files, home, tmp_path):
    source = tmp_path / "c.bin"
    source.write_bytes(b"over tls" * 1000)
    result = _run(
        [
            "curl",
            "-sS",
            "--ssl-reqd",
            "--cacert",
            str(tls_files["ca"]),
            "-T",
            str(source),
            f"ftp://alice:{PASSWORD}@127.0.0.1:{ftps_server.port}/c.bin",
        ],
        env={**os.environ, "NO_PROXY": "*"},
    )
    assert result.returncode == 0, result.stderr
    assert (home / "c.bin").read_bytes() == source.read_bytes()


def test_ftps_listing_an_empty_directory(ftps_server, tls_files, home):
    """An empty protected listing closes its data connection cleanly, every time."""
    ftps = _tls_client(ftps_server, tls_files)
    ftps.login("alice", PASSWORD)
    ftps.prot_p()
    for _ in range(10):
        lines: list[str] = []
        assert ftps.retrlines("LIST", lines.append).startswith("226")
        assert lines == []
        assert ftps.nlst() == []
    ftps.quit()


@pytest.mark.storages("disk", "s3")
@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")
def test_rclone_sync_session(ftp_server, home, account, tmp_path):
    """rclone: make a folder, copy a tree into it, check, rename, purge."""
    local = tmp_path / "tree"
    (local / "deep").mkdir(parents=True)
    (local / "a.bin").write_bytes(_payload(2_000_000))
    (local / "deep" / "b.txt").write_bytes(b"bee")
    password = _run(["rclone", "obscure", PASSWORD]).stdout.strip()
    remote = f":ftp,host=127.0.0.1,port={ftp_server.port},user=alice,pass={password}:"
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf")}

    def rclone(*args: str) -> subprocess.CompletedProcess:
        done = _run(["rclone", "--retries", "1", "--low-level-retries", "1", *args], env=env)
        assert done.returncode == 0, (args, done.stderr)
        return done

    rclone("mkdir", remote + "backup")
    rclone("copy", str(local), remote + "backup")
    assert (home / "backup" / "a.bin").read_bytes() == (local / "a.bin").read_bytes()
    assert (home / "backup" / "deep" / "b.txt").read_bytes() == b"bee"
    rclone("check", "--size-only", str(local), remote + "backup")
    listing = rclone("lsf", "-R", remote + "backup").stdout.split()
    assert sorted(listing) == ["a.bin", "deep/", "deep/b.txt"]
    rclone("moveto", remote + "backup/deep/b.txt", remote + "backup/c.txt")
    assert (home / "backup" / "c.txt").read_bytes() == b"bee"
    rclone("purge", remote + "backup")
    assert not (home / "backup").exists()
