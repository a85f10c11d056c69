"""The ftp_pre_* signals: receivers refuse or allow, through real sessions and clients."""

from __future__ import annotations

import ftplib
import io
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import override_settings

from django_ftpserver import signals as ftp_signals

from .conftest import PASSWORD, try_login

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def connect() -> Iterator[Callable[..., Callable[..., Any]]]:
    """``connect(signal, receiver)``: connected for the test only."""
    connected: list[tuple[Any, Any]] = []

    def connect_(signal: Any, receiver: Callable[..., Any]) -> Callable[..., Any]:
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return receiver

    yield connect_
    for signal, receiver in connected:
        signal.disconnect(receiver)


def refuse(reason: str = "Not today.") -> Callable[..., Any]:
    def receiver(sender: Any, **kwargs: Any) -> None:
        raise PermissionDenied(reason)

    return receiver


def record_into(calls: list[dict[str, Any]]) -> Callable[..., Any]:
    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    return receiver


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)


# --- uploads


def test_pre_upload_refuses_stor(ftp, home, recorder, connect):
    connect(ftp_signals.ftp_pre_upload, refuse("Only .csv files, please."))
    with pytest.raises(ftplib.error_perm) as info:
        ftp.storbinary("STOR report.pdf", io.BytesIO(b"data"))
    assert str(info.value) == "550 Only .csv files, please."
    assert not (home / "report.pdf").exists()
    ftp.voidcmd("NOOP")  # the session goes on
    recorder.settle()
    assert not recorder.of("ftp_file_received")
    assert not recorder.of("ftp_file_received_incomplete")


def test_pre_upload_refusal_leaves_an_existing_file_alone(ftp, home, connect):
    (home / "keep.txt").write_bytes(b"original")
    connect(ftp_signals.ftp_pre_upload, refuse())
    for command in ("STOR keep.txt", "APPE keep.txt"):
        with pytest.raises(ftplib.error_perm, match="^550 Not today.$"):
            ftp.storbinary(command, io.BytesIO(b"replacement"))
    with pytest.raises(ftplib.error_perm, match="^550 "):
        ftp.storbinary("STOR keep.txt", io.BytesIO(b"xx"), rest=3)
    assert (home / "keep.txt").read_bytes() == b"original"
    # The refused REST does not linger into the next transfer.
    ftp.voidcmd("TYPE I")
    assert ftp.sendcmd("SIZE keep.txt") == "213 8"


def test_pre_upload_arguments_and_allowing(ftp, home, recorder, connect):
    calls: list[dict[str, Any]] = []
    connect(ftp_signals.ftp_pre_upload, record_into(calls))
    ftp.storbinary("STOR a.csv", io.BytesIO(b"1,2\n"))
    ftp.storbinary("APPE a.csv", io.BytesIO(b"3,4\n"))
    ftp.storbinary("STOR a.csv", io.BytesIO(b"5,6\n"), rest=8)
    assert (home / "a.csv").read_bytes() == b"1,2\n3,4\n5,6\n"
    assert [(c["mode"], c["offset"]) for c in calls] == [("STOR", 0), ("APPE", 0), ("STOR", 8)]
    first = calls[0]
    assert first["path"] == str(home / "a.csv")
    assert first["ftp_path"] == "/a.csv"
    assert first["username"] == "alice"
    assert first["remote_ip"] == "127.0.0.1"
    assert first["handler"] is not None
    assert len(recorder.wait("ftp_file_received", 3)) == 3


def test_pre_upload_refuses_stou_and_removes_the_unique_file(ftp, home, connect):
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        raise PermissionDenied("No unique names here.")

    connect(ftp_signals.ftp_pre_upload, receiver)
    ftp.voidcmd("TYPE I")
    with pytest.raises(ftplib.error_perm, match="^550 No unique names here.$"):
        ftp.storbinary("STOU", io.BytesIO(b"data"))
    assert calls[0]["mode"] == "STOU"
    assert calls[0]["path"].startswith(str(home))
    assert list(home.iterdir()) == []


def test_pre_upload_allows_stou(ftp, home, connect):
    calls: list[dict[str, Any]] = []
    connect(ftp_signals.ftp_pre_upload, record_into(calls))
    ftp.voidcmd("TYPE I")
    ftp.storbinary("STOU", io.BytesIO(b"data"))
    (stored,) = home.iterdir()
    assert stored.read_bytes() == b"data"
    assert calls[0]["path"] == str(stored)


@needs_curl
def test_curl_sees_a_refused_upload(ftp_server, home, connect, tmp_path):
    connect(ftp_signals.ftp_pre_upload, refuse("Only .csv files, please."))
    source = tmp_path / "up.pdf"
    source.write_bytes(b"pdf")
    result = _curl("-T", str(source), f"ftp://alice:{PASSWORD}@127.0.0.1:{ftp_server.port}/")
    assert result.returncode == 25, result.stderr  # "upload failed"
    assert b"550" in result.stderr or b"STOR" in result.stderr
    assert not (home / "up.pdf").exists()


# --- downloads


def test_pre_download_refuses_retr(ftp, home, recorder, connect):
    (home / "busy.dat").write_bytes(b"processing")
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        if kwargs["ftp_path"] == "/busy.dat":
            raise PermissionDenied("File is being processed.")

    connect(ftp_signals.ftp_pre_download, receiver)
    (home / "ready.dat").write_bytes(b"ready")
    chunks: list[bytes] = []
    with pytest.raises(ftplib.error_perm, match="^550 File is being processed.$"):
        ftp.retrbinary("RETR busy.dat", chunks.append)
    assert chunks == []
    ftp.retrbinary("RETR ready.dat", chunks.append, rest=2)
    assert b"".join(chunks) == b"ady"
    assert calls[1]["offset"] == 2
    recorder.wait("ftp_file_sent")
    recorder.settle()
    assert [e["ftp_path"] for e in recorder.of("ftp_file_sent")] == ["/ready.dat"]


@needs_curl
def test_curl_sees_a_refused_download(ftp_server, home, connect, tmp_path):
    (home / "busy.dat").write_bytes(b"processing")
    connect(ftp_signals.ftp_pre_download, refuse("File is being processed."))
    target = tmp_path / "got"
    result = _curl(
        "-o", str(target), f"ftp://alice:{PASSWORD}@127.0.0.1:{ftp_server.port}/busy.dat"
    )
    assert result.returncode == 78, result.stderr  # RETR refused
    assert not target.exists() or target.read_bytes() == b""


# --- file operations


def test_pre_delete_refuses(ftp, home, recorder, connect):
    (home / "keep.txt").write_bytes(b"k")
    (home / "drop.txt").write_bytes(b"d")

    def receiver(sender: Any, path: str, **kwargs: Any) -> None:
        if path.endswith("keep.txt"):
            raise PermissionDenied("Kept by policy.")

    connect(ftp_signals.ftp_pre_delete, receiver)
    with pytest.raises(ftplib.error_perm, match="^550 Kept by policy.$"):
        ftp.delete("keep.txt")
    ftp.delete("drop.txt")
    assert (home / "keep.txt").exists()
    assert not (home / "drop.txt").exists()
    recorder.wait("ftp_file_deleted")
    recorder.settle()
    assert [e["ftp_path"] for e in recorder.of("ftp_file_deleted")] == ["/drop.txt"]
    assert [e["ftp_path"] for e in recorder.of("ftp_pre_delete")] == ["/keep.txt", "/drop.txt"]


def test_pre_rename_refuses(ftp, home, recorder, connect):
    (home / "a.txt").write_bytes(b"a")
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        if kwargs["ftp_path_to"].endswith(".exe"):
            raise PermissionDenied("No executables.")

    connect(ftp_signals.ftp_pre_rename, receiver)
    with pytest.raises(ftplib.error_perm, match="^550 No executables.$"):
        ftp.rename("a.txt", "a.exe")
    assert (home / "a.txt").exists() and not (home / "a.exe").exists()
    # The refused RNFR does not stay pending.
    with pytest.raises(ftplib.error_perm, match="^503"):
        ftp.sendcmd("RNTO b.txt")
    ftp.rename("a.txt", "b.txt")
    assert (home / "b.txt").read_bytes() == b"a"
    assert calls[0]["path_from"] == str(home / "a.txt")
    assert calls[0]["path_to"] == str(home / "a.exe")
    assert calls[0]["ftp_path_from"] == "/a.txt"
    recorder.wait("ftp_file_renamed")
    recorder.settle()
    assert [e["ftp_path_to"] for e in recorder.of("ftp_file_renamed")] == ["/b.txt"]


def test_pre_mkdir_and_rmdir_refuse(ftp, home, recorder, connect):
    (home / "old").mkdir()
    connect(ftp_signals.ftp_pre_mkdir, refuse("No new folders."))
    connect(ftp_signals.ftp_pre_rmdir, refuse("Folders stay."))
    with pytest.raises(ftplib.error_perm, match="^550 No new folders.$"):
        ftp.mkd("new")
    with pytest.raises(ftplib.error_perm, match="^550 Folders stay.$"):
        ftp.rmd("old")
    assert not (home / "new").exists()
    assert (home / "old").is_dir()
    recorder.settle()
    assert not recorder.of("ftp_directory_created")
    assert not recorder.of("ftp_directory_deleted")
    assert len(recorder.of("ftp_pre_mkdir")) == 1
    assert recorder.of("ftp_pre_rmdir")[0]["ftp_path"] == "/old"


def test_pre_mkdir_and_rmdir_allow(ftp, home, connect):
    calls: list[dict[str, Any]] = []
    connect(ftp_signals.ftp_pre_mkdir, record_into(calls))
    connect(ftp_signals.ftp_pre_rmdir, record_into(calls))
    ftp.mkd("new")
    assert (home / "new").is_dir()
    ftp.rmd("new")
    assert not (home / "new").exists()
    assert [c["ftp_path"] for c in calls] == ["/new", "/new"]


# --- login


def test_pre_login_refuses(ftp_server, account, recorder, connect):
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        raise PermissionDenied("Logins only on weekdays.")

    connect(ftp_signals.ftp_pre_login, receiver)
    reply = try_login(ftp_server.host, ftp_server.port)
    assert reply == "530 Logins only on weekdays."
    assert calls[0]["username"] == "alice"
    assert calls[0]["remote_ip"] == "127.0.0.1"
    # A wrong password is refused before any receiver runs.
    assert try_login(ftp_server.host, ftp_server.port, password="wrong").startswith("530")
    assert len(calls) == 1
    recorder.settle()
    assert not recorder.of("ftp_login")
    account.refresh_from_db()
    assert account.last_login is None


@override_settings(FTPSERVER_LOCKOUT_FAILURES=2)
def test_refused_logins_do_not_lock_the_address_out(ftp_server, account, connect):
    receiver = connect(ftp_signals.ftp_pre_login, refuse("Not now."))
    for _ in range(4):
        assert try_login(ftp_server.host, ftp_server.port) == "530 Not now."
    ftp_signals.ftp_pre_login.disconnect(receiver)
    assert try_login(ftp_server.host, ftp_server.port).startswith("230")


def test_pre_login_allows(ftp_server, account, recorder, connect):
    calls: list[dict[str, Any]] = []
    connect(ftp_signals.ftp_pre_login, record_into(calls))
    assert try_login(ftp_server.host, ftp_server.port).startswith("230")
    assert len(calls) == 1
    recorder.wait("ftp_login")


@needs_curl
def test_curl_sees_a_refused_login(ftp_server, account, connect):
    connect(ftp_signals.ftp_pre_login, refuse("Not now."))
    result = _curl(f"ftp://alice:{PASSWORD}@127.0.0.1:{ftp_server.port}/")
    assert result.returncode == 67, result.stderr  # login denied


# --- fail closed, one-line reasons


@pytest.mark.parametrize(
    "signal, command",
    [
        ("ftp_pre_upload", lambda ftp: ftp.storbinary("STOR x.txt", io.BytesIO(b"x"))),
        ("ftp_pre_download", lambda ftp: ftp.retrbinary("RETR there.txt", lambda _: None)),
        ("ftp_pre_delete", lambda ftp: ftp.delete("there.txt")),
        ("ftp_pre_rename", lambda ftp: ftp.rename("there.txt", "moved.txt")),
        ("ftp_pre_mkdir", lambda ftp: ftp.mkd("d")),
        ("ftp_pre_rmdir", lambda ftp: ftp.rmd("dir")),
    ],
)
def test_a_failing_receiver_refuses(ftp, home, connect, caplog, signal, command):
    (home / "there.txt").write_bytes(b"t")
    (home / "dir").mkdir()
    before = sorted(p.name for p in home.iterdir())

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("database password is hunter2")

    connect(getattr(ftp_signals, signal), broken)
    with (
        caplog.at_level(logging.ERROR, logger="django_ftpserver.policy"),
        pytest.raises(ftplib.error_perm) as info,
    ):
        command(ftp)
    assert str(info.value) == "550 Operation refused by the server's policy."
    assert sorted(p.name for p in home.iterdir()) == before
    (record,) = [r for r in caplog.records if r.name == "django_ftpserver.policy"]
    assert signal in record.getMessage()
    assert record.exc_info and "hunter2" in str(record.exc_info[1])
    ftp.voidcmd("NOOP")


def test_a_failing_login_receiver_refuses(ftp_server, account, connect, caplog):
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret detail")

    connect(ftp_signals.ftp_pre_login, broken)
    with caplog.at_level(logging.ERROR, logger="django_ftpserver.policy"):
        reply = try_login(ftp_server.host, ftp_server.port)
    assert reply == "530 Operation refused by the server's policy."
    assert any(r.exc_info for r in caplog.records if r.name == "django_ftpserver.policy")


def test_a_reason_cannot_inject_replies(ftp, home, connect):
    connect(ftp_signals.ftp_pre_mkdir, refuse("bad name\r\n230 Logged in\nreally"))
    with pytest.raises(ftplib.error_perm) as info:
        ftp.mkd("x")
    assert str(info.value) == "550 bad name 230 Logged in really"
    assert ftp.voidcmd("NOOP").startswith("200")
    connect(ftp_signals.ftp_pre_delete, refuse(""))
    (home / "f").write_bytes(b"f")
    with pytest.raises(ftplib.error_perm, match="^550 Permission denied.$"):
        ftp.delete("f")


def test_the_first_refusal_wins(ftp, home, connect):
    later: list[Any] = []
    connect(ftp_signals.ftp_pre_mkdir, refuse("First."))
    connect(ftp_signals.ftp_pre_mkdir, record_into(later))
    with pytest.raises(ftplib.error_perm, match="^550 First.$"):
        ftp.mkd("x")
    assert later == []
