"""FTPSERVER_UPLOAD_MODE = "atomic", on local disk and through StorageFS, with real clients."""

from __future__ import annotations

import ftplib
import io
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_ftpserver import signals as ftp_signals
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.policy.uploads import is_temporary

from .conftest import PASSWORD, RunningServer, wait_until
from .test_filesystems import GenericStorageFS, use_storage

BACKENDS = ["local", "storage", "generic-storage"]


@dataclass
class Site:
    server: RunningServer
    home: Path
    account: FTPUserAccount
    backend: str

    def connect(self) -> ftplib.FTP:
        ftp = self.server.connect("alice")
        ftp.voidcmd("TYPE I")
        return ftp

    @property
    def spooled(self) -> bool:
        """Whether uploads are held in a spool until complete (nothing on disk meanwhile)."""
        return self.backend == "generic-storage"

    def wait_writing(self) -> None:
        """Wait until an upload's data reached its temporary file (not for a spool)."""
        if not self.spooled:
            wait_until(
                lambda: [p for p in self.home.iterdir() if is_temporary(p.name) and _size(p)],
                what="data in the temporary file",
            )

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.home.iterdir() if p.is_file()}


def make_site(
    backend: str, settings: Any, tmp_path: Path, server_factory: Callable[..., RunningServer]
) -> Site:
    user = get_user_model().objects.create_user("alice", password=PASSWORD)
    group, _ = FTPUserGroup.objects.get_or_create(name="uploaders")
    if backend == "local":
        home = tmp_path / "home"
        account = FTPUserAccount.objects.create(user=user, group=group, home_dir=str(home))
    else:
        root = tmp_path / "storage"
        filesystem = GenericStorageFS if backend == "generic-storage" else None
        options = {"filesystem": filesystem} if filesystem else {}
        use_storage(
            settings, "django.core.files.storage.FileSystemStorage", location=str(root), **options
        )
        if filesystem is None:
            settings.FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"
        home = root / "alice"
        account = FTPUserAccount.objects.create(user=user, group=group, home_dir="alice")
    home.mkdir(parents=True)
    return Site(server_factory(), home, account, backend)


@pytest.fixture(params=BACKENDS)
def any_site(request, settings, tmp_path, server_factory) -> Site:
    settings.FTPSERVER_UPLOAD_MODE = "atomic"
    return make_site(request.param, settings, tmp_path, server_factory)


# A reset must reach the server after it accepted the data connection (a
# client resetting before that is left without a reply by pyftpdlib): the
# tests wait for data in the temporary file, which a spooling storage
# never writes.
@pytest.fixture(params=["local", "storage"])
def site(request, settings, tmp_path, server_factory) -> Site:
    settings.FTPSERVER_UPLOAD_MODE = "atomic"
    return make_site(request.param, settings, tmp_path, server_factory)


@pytest.fixture
def received() -> Iterator[list[tuple[str, bytes | None]]]:
    """(ftp_path, the file's content as the receiver found it) of each ftp_file_received."""
    events: list[tuple[str, bytes | None]] = []

    def receiver(sender: Any, handler: Any, path: str, ftp_path: str, **kwargs: Any) -> None:
        try:
            with handler.fs.open(path, "rb") as file:  # through the session's filesystem
                events.append((ftp_path, file.read()))
        except Exception:
            events.append((ftp_path, None))

    ftp_signals.ftp_file_received.connect(receiver, weak=False)
    yield events
    ftp_signals.ftp_file_received.disconnect(receiver)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _quit(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def _reset(conn: socket.socket) -> None:
    """Close as a crashed client's kernel does: a reset, not a clean end."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_complete_upload_lands_at_its_name(any_site, received, recorder):
    site = any_site
    ftp = site.connect()
    payload = b"a" * 300_000
    assert ftp.storbinary("STOR report.csv", io.BytesIO(payload)).startswith("226")
    assert site.files() == {"report.csv": payload}
    # The receivers see the final, complete file at the name the client used.
    assert wait_until(lambda: received) == [("/report.csv", payload)]
    event = recorder.wait("ftp_file_received")[0]
    assert event["path"].endswith(("/alice/report.csv", "/home/report.csv"))
    _quit(ftp)


def test_nothing_at_the_name_while_uploading_nor_in_listings(site):
    (site.home / "old.csv").write_bytes(b"previous version")
    ftp = site.connect()
    conn = ftp.transfercmd("STOR old.csv")
    conn.sendall(b"n" * 200_000)
    other = site.connect()  # a second session looks meanwhile
    try:
        # The data is somewhere on disk, but not at the name, and no listing shows it.
        site.wait_writing()
        assert (site.home / "old.csv").read_bytes() == b"previous version"
        assert other.nlst() == ["old.csv"]
        lines: list[str] = []
        other.retrlines("LIST", lines.append)
        assert len(lines) == 1 and lines[0].endswith("old.csv")
        other.retrlines("MLSD", lines.append)
        assert not any(".ftp-upload-" in line for line in lines)
    finally:
        _quit(other)
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert site.files() == {"old.csv": b"n" * 200_000}
    _quit(ftp)


def test_reset_upload_leaves_nothing(site, received, recorder):
    (site.home / "kept.csv").write_bytes(b"the original")
    ftp = site.connect()
    for name in ("new.csv", "kept.csv"):
        conn = ftp.transfercmd(f"STOR {name}")
        conn.sendall(b"x" * 300_000)
        site.wait_writing()
        _reset(conn)
        try:
            reply = ftp.voidresp()
        except ftplib.Error as exc:
            reply = str(exc)
        assert reply.startswith("426"), reply
    assert site.files() == {"kept.csv": b"the original"}
    assert not any(is_temporary(p.name) for p in site.home.iterdir())
    incomplete = recorder.wait("ftp_file_received_incomplete", 2)
    assert [e["ftp_path"] for e in incomplete] == ["/new.csv", "/kept.csv"]
    recorder.settle()
    assert received == []
    assert ftp.voidcmd("NOOP").startswith("200")
    _quit(ftp)


def test_client_leaving_mid_upload_leaves_nothing(site):
    ftp = site.connect()
    conn = ftp.transfercmd("STOR gone.csv")
    conn.sendall(b"x" * 100_000)
    site.wait_writing()
    _reset(conn)
    ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ftp.close()
    wait_until(lambda: not list(site.home.iterdir()), what="temporary file removed")


def test_resume_and_append_in_atomic_mode(any_site):
    site = any_site
    (site.home / "log.txt").write_bytes(b"0123456789")
    ftp = site.connect()
    ftp.storbinary("APPE log.txt", io.BytesIO(b"abc"))
    assert (site.home / "log.txt").read_bytes() == b"0123456789abc"
    ftp.storbinary("STOR log.txt", io.BytesIO(b"XY"), rest=4)
    assert (site.home / "log.txt").read_bytes() == b"0123XY6789abc"
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.storbinary("STOR missing.txt", io.BytesIO(b"x"), rest=4)
    with pytest.raises(ftplib.error_perm, match="^554"):
        ftp.storbinary("STOR log.txt", io.BytesIO(b"x"), rest=400)
    assert site.files() == {"log.txt": b"0123XY6789abc"}
    _quit(ftp)


def test_stou_in_atomic_mode(site):
    ftp = site.connect()
    ftp.storbinary("STOU", io.BytesIO(b"unique"))
    (stored,) = site.home.iterdir()
    assert stored.read_bytes() == b"unique"
    conn, _ = ftp.ntransfercmd("STOU")
    conn.sendall(b"p" * 100_000)
    wait_until(lambda: [p for p in site.home.iterdir() if p != stored and _size(p)])
    _reset(conn)
    with pytest.raises(ftplib.Error):
        ftp.voidresp()
    assert [p.name for p in site.home.iterdir()] == [stored.name]
    _quit(ftp)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_upload_in_atomic_mode(any_site, tmp_path):
    site = any_site
    source = tmp_path / "up.bin"
    source.write_bytes(b"c" * 70_000)
    result = subprocess.run(
        ["curl", "-sS", "-T", str(source), f"ftp://alice:{PASSWORD}@127.0.0.1:{site.server.port}/"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert site.files() == {"up.bin": b"c" * 70_000}


def test_standard_mode_writes_in_place(settings, tmp_path, server_factory):
    site = make_site("local", settings, tmp_path, server_factory)
    ftp = site.connect()
    conn = ftp.transfercmd("STOR direct.csv")
    conn.sendall(b"d" * 100_000)
    wait_until(
        lambda: (site.home / "direct.csv").exists() and (site.home / "direct.csv").stat().st_size
    )
    _reset(conn)
    with pytest.raises(ftplib.Error):
        ftp.voidresp()
    # 1.0's behaviour: the partial file stays.
    assert list(site.files()) == ["direct.csv"]
    _quit(ftp)
