"""Uploads arrive whole, and a cut upload is always reported as cut.

* FTPS uploads from clients that close the data connection without ever
  reading it (Go's ``crypto/tls``: rclone) arrive whole with TLS 1.3, whose
  session tickets come after the handshake (see ``tlsdata``).
* An upload whose data connection is reset is answered ``426`` at once and
  sends ``ftp_file_received_incomplete``, wherever the reset falls: before
  any byte, in the middle, after the last. It is a race, so each case runs
  many times, plain and over TLS.
"""

from __future__ import annotations

import ftplib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PASSWORD, RunningServer, SignalRecorder
from .test_tls_policy import Certificate, make_certificate

#: Bytes sent before the reset, one run each: nothing, a few bytes, around
#: the TLS record and read sizes, up to a few MB.
RESET_AFTER = [0, 1, 100, 16383, 16384, 65536, 262144, 1 << 20, 3 << 20, 5 << 20] * 4

#: Seconds a reset upload may wait for its 426: generous for a busy machine;
#: the defect this guards against left the session without a reply for good.
REPLY_DEADLINE = 10


@pytest.mark.skipif(
    shutil.which("rclone") is None, reason="rclone is not installed (make system-deps)"
)
@pytest.mark.parametrize("tls13", [True, False], ids=["tls1.3", "tls1.2"])
def test_rclone_ftps_uploads_arrive_whole(
    tls13,
    server_factory,
    tls_certificate,
    account,
    home,
    tmp_path,
    recorder,
):
    """rclone never reads an upload's data connection: 25 files of 3 MB, all whole."""
    server = server_factory(
        certfile=str(tls_certificate.certfile), keyfile=str(tls_certificate.keyfile)
    )
    source = tmp_path / "source"
    source.mkdir()
    files = {f"file-{n:02d}.bin": os.urandom(3 * 1024 * 1024) for n in range(25)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    (home / "mirror").mkdir()
    obscured = subprocess.run(
        ["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True
    ).stdout.strip()
    remote = (
        f":ftp,host={server.host},port={server.port},user=alice,pass={obscured},"
        f"explicit_tls=true,no_check_certificate=true,disable_tls13={str(not tls13).lower()}:mirror"
    )
    result = subprocess.run(
        ["rclone", "copy", str(source), remote, "--retries", "1", "--low-level-retries", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RCLONE_CONFIG": os.devnull},
    )
    truncated = [
        name for name, data in files.items() if (home / "mirror" / name).read_bytes() != data
    ]
    assert truncated == [], result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(recorder.wait("ftp_file_received", count=len(files))) == len(files)
    recorder.settle()
    assert recorder.of("ftp_file_received_incomplete") == []


def _reset(conn: socket.socket) -> None:
    """What a crashed client's kernel does: reset instead of a clean close."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _cut_upload(ftp: ftplib.FTP, name: str, size: int) -> tuple[str, float]:
    """Send ``size`` bytes of ``name``, reset; return the reply and its delay."""
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    if size:
        conn.sendall(os.urandom(size))
    started = time.monotonic()
    _reset(conn)
    ftp.sock.settimeout(REPLY_DEADLINE)
    reply = ftp.getline()
    return reply, time.monotonic() - started


def _check_cut_uploads(ftp: ftplib.FTP, recorder: SignalRecorder, home: Path) -> list[float]:
    delays = []
    for run, size in enumerate(RESET_AFTER):
        name = f"cut-{run}.bin"
        reply, delay = _cut_upload(ftp, name, size)
        assert reply.startswith("426"), f"{size} bytes then reset: {reply!r}"
        delays.append(delay)
        events = recorder.wait("ftp_file_received_incomplete", count=run + 1)
        assert events[-1]["path"] == str(home / name)
        assert ftp.voidcmd("NOOP").startswith("200")  # the session goes on
    recorder.settle()
    assert recorder.of("ftp_file_received") == []
    return delays


def test_reset_plain_uploads_are_answered_426(ftp, home, recorder):
    _check_cut_uploads(ftp, recorder, home)


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ftps_server(
    server_factory: Callable[..., RunningServer],
    tls_certificate: Certificate,
) -> RunningServer:
    return server_factory(
        certfile=str(tls_certificate.certfile), keyfile=str(tls_certificate.keyfile)
    )


def _tls_login(server: RunningServer, tls_certificate: Certificate) -> ftplib.FTP_TLS:
    ftps = ftplib.FTP_TLS(context=tls_certificate.client_context(), timeout=REPLY_DEADLINE)
    ftps.connect(server.host, server.port)
    ftps.login("alice", PASSWORD)
    ftps.prot_p()
    return ftps


def test_reset_tls_uploads_are_answered_426(ftps_server, tls_certificate, account, home, recorder):
    ftps = _tls_login(ftps_server, tls_certificate)
    _check_cut_uploads(ftps, recorder, home)
    ftps.quit()


def _reset_with_the_command(ftp: ftplib.FTP) -> list[str]:
    """Connect the data port, send STOR and reset at once, before any reply.

    The reset races pyftpdlib's accept of the data connection and its
    handling of STOR; every order must end in a reply.
    """
    host, port = ftp.makepasv()
    conn = socket.create_connection((host, port), timeout=REPLY_DEADLINE)
    ftp.putcmd("STOR early.bin")
    _reset(conn)
    ftp.sock.settimeout(REPLY_DEADLINE)
    replies = [ftp.getline()]
    if replies[0][:3] in ("125", "150"):
        replies.append(ftp.getline())
    return replies


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_reset_racing_the_command_is_answered(
    tls,
    server_factory,
    tls_certificate,
    account,
    home,
    recorder,
):
    if tls:
        server = server_factory(
            certfile=str(tls_certificate.certfile), keyfile=str(tls_certificate.keyfile)
        )
        ftp = _tls_login(server, tls_certificate)
    else:
        server = server_factory()
        ftp = server.connect("alice")
    ftp.voidcmd("TYPE I")
    aborted = 0
    for _ in range(40):
        replies = _reset_with_the_command(ftp)
        # 425: the reset was seen before STOR, which then had no data
        # connection to wait for; 426: STOR was waiting for it.
        assert replies[-1][:3] in ("425", "426"), replies
        aborted += len(replies) == 2  # STOR had opened its file
        assert ftp.voidcmd("NOOP").startswith("200")
    assert len(recorder.wait("ftp_file_received_incomplete", count=aborted)) == aborted
    recorder.settle()
    assert recorder.of("ftp_file_received") == []
    ftp.quit()


def test_early_resets_of_atomic_uploads_leave_nothing(
    settings, ftp_server, account, home, recorder
):
    settings.FTPSERVER_UPLOAD_MODE = "atomic"
    ftp = ftp_server.connect("alice")
    ftp.voidcmd("TYPE I")
    started = 0
    for _ in range(20):
        replies = _reset_with_the_command(ftp)
        assert replies[-1][:3] in ("425", "426"), replies
        started += len(replies) == 2
    recorder.wait("ftp_file_received_incomplete", count=started)
    assert sorted(os.listdir(home)) == []  # no temporary file, no target
    ftp.quit()
