"""Each signal guarantee, through real FTP sessions on a real server."""

from __future__ import annotations

import ftplib
import io
import logging
import socket
import struct
import time

import pytest

from django_ftpserver import signals as ftp_signals
from django_ftpserver.handlers import DjangoFTPHandler

from .conftest import PASSWORD, SIGNAL_NAMES

# The same session on the local disk and on S3 (StorageFS on a moto_server).
pytestmark = pytest.mark.storages("disk", "s3")


def _quit(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


# --- 1. a signal fires only when its operation succeeded


def test_dele_signals_only_on_success(ftp, home, recorder):
    (home / "a.txt").write_bytes(b"a")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.delete("missing.txt")
    ftp.delete("a.txt")
    deleted = recorder.wait("ftp_file_deleted")
    recorder.settle()
    assert len(recorder.of("ftp_file_deleted")) == 1
    assert deleted[0]["path"] == str(home / "a.txt")
    assert deleted[0]["ftp_path"] == "/a.txt"
    assert not (home / "a.txt").exists()


def test_mkd_signals_only_on_success(ftp, home, recorder):
    (home / "exists").mkdir()
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.mkd("exists")
    ftp.mkd("new")
    created = recorder.wait("ftp_directory_created")
    recorder.settle()
    assert [e["path"] for e in recorder.of("ftp_directory_created")] == [str(home / "new")]
    assert created[0]["ftp_path"] == "/new"


def test_rmd_signals_only_on_success(ftp, home, recorder):
    (home / "full").mkdir()
    (home / "full" / "f").write_bytes(b"x")
    (home / "empty").mkdir()
    for bad in ("missing", "full"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.rmd(bad)
    ftp.rmd("empty")
    removed = recorder.wait("ftp_directory_deleted")
    recorder.settle()
    assert [e["path"] for e in recorder.of("ftp_directory_deleted")] == [str(home / "empty")]
    assert removed[0]["ftp_path"] == "/empty"
    assert (home / "full" / "f").exists()


def test_rnto_signals_only_on_success(ftp, home, recorder):
    (home / "src.txt").write_bytes(b"s")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.rename("src.txt", "no-such-dir/dst.txt")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.rename("missing.txt", "dst.txt")
    ftp.rename("src.txt", "dst.txt")
    renamed = recorder.wait("ftp_file_renamed")
    recorder.settle()
    assert len(recorder.of("ftp_file_renamed")) == 1
    event = renamed[0]
    assert event["path_from"] == str(home / "src.txt")
    assert event["path_to"] == str(home / "dst.txt")
    assert event["ftp_path_from"] == "/src.txt"
    assert event["ftp_path_to"] == "/dst.txt"


def test_failed_upload_and_download_send_no_transfer_signal(ftp, home, recorder):
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.retrbinary("RETR missing.bin", lambda data: None)
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.storbinary("STOR no-dir/x.bin", io.BytesIO(b"x"))
    recorder.settle()
    transfer = {n for n in recorder.names() if n.startswith("ftp_file_")}
    assert transfer == set()


# --- 2. paths are real filesystem paths, converted once


def test_paths_in_subdirectory_are_not_doubled(ftp, home, recorder):
    (home / "sub").mkdir()
    ftp.cwd("sub")
    ftp.storbinary("STOR up.bin", io.BytesIO(b"data"))
    out = io.BytesIO()
    ftp.retrbinary("RETR up.bin", out.write)
    ftp.mkd("deeper")
    ftp.rename("up.bin", "deeper/moved.bin")
    ftp.delete("deeper/moved.bin")
    ftp.rmd("/sub/deeper")

    received = recorder.wait("ftp_file_received")[0]
    sent = recorder.wait("ftp_file_sent")[0]
    created = recorder.wait("ftp_directory_created")[0]
    renamed = recorder.wait("ftp_file_renamed")[0]
    deleted = recorder.wait("ftp_file_deleted")[0]
    removed = recorder.wait("ftp_directory_deleted")[0]
    assert received["path"] == sent["path"] == str(home / "sub" / "up.bin")
    assert received["ftp_path"] == sent["ftp_path"] == "/sub/up.bin"
    assert created["path"] == str(home / "sub" / "deeper")
    assert renamed["path_to"] == deleted["path"] == str(home / "sub" / "deeper" / "moved.bin")
    assert renamed["ftp_path_to"] == deleted["ftp_path"] == "/sub/deeper/moved.bin"
    assert removed["path"] == str(home / "sub" / "deeper")
    for event in (received, sent, created, renamed, deleted, removed):
        assert str(home) not in (event.get("ftp_path") or event.get("ftp_path_to"))
        assert event["username"] == "alice"
        assert event["remote_ip"] == "127.0.0.1"
        assert event["sender"] is DjangoFTPHandler


# --- 3. a receiver that raises never breaks the session or the server


@pytest.fixture
def raising_receivers():
    def boom(sender, **kwargs):
        raise RuntimeError("receiver failure")

    # The ftp_pre_* signals refuse when a receiver raises (test_presignals.py).
    names = [name for name in SIGNAL_NAMES if not name.startswith("ftp_pre_")]
    connected = [getattr(ftp_signals, name) for name in names]
    for signal in connected:
        signal.connect(boom, weak=False, dispatch_uid="test-boom")
    yield
    for signal in connected:
        signal.disconnect(dispatch_uid="test-boom")


def test_raising_receivers_change_nothing(
    raising_receivers, recorder, server_factory, account, caplog
):
    caplog.set_level(logging.ERROR, logger="django.dispatch")
    server = server_factory()
    ftp = server.connect("alice")
    assert ftp.storbinary("STOR f.txt", io.BytesIO(b"content")).startswith("226")
    out = io.BytesIO()
    assert ftp.retrbinary("RETR f.txt", out.write).startswith("226")
    assert out.getvalue() == b"content"
    assert ftp.mkd("d") == "/d"
    assert ftp.rename("f.txt", "d/g.txt").startswith("250")
    assert ftp.delete("d/g.txt").startswith("250")
    assert ftp.rmd("d").startswith("250")
    assert ftp.quit().startswith("221")
    bad = server.connect()
    with pytest.raises(ftplib.error_perm, match="^530"):
        bad.login("alice", "wrong")
    bad.close()

    # The other receivers still ran, for every signal of the session.
    recorder.wait("ftp_client_disconnected", count=2)
    expected = {
        "ftp_client_connected",
        "ftp_login",
        "ftp_file_received",
        "ftp_file_sent",
        "ftp_directory_created",
        "ftp_file_renamed",
        "ftp_file_deleted",
        "ftp_directory_deleted",
        "ftp_logout",
        "ftp_login_failed",
        "ftp_client_disconnected",
    }
    assert expected <= set(recorder.names())
    # Each failure was logged with its traceback.
    failures = [r for r in caplog.records if r.name == "django.dispatch"]
    assert len(failures) >= len(expected)
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)
    # And the server still serves.
    again = server.connect("alice")
    assert again.voidcmd("NOOP").startswith("200")
    _quit(again)


# --- 4. ftp_login_failed never carries the password


def test_login_failed_never_carries_the_password(ftp_server, account, recorder):
    secret = "Very-Secret-Guess-42"
    client = ftp_server.connect()
    with pytest.raises(ftplib.error_perm, match="^530"):
        client.login("alice", secret)
    event = recorder.wait("ftp_login_failed")[0]
    client.close()
    assert event["username"] == "alice"
    assert event["remote_ip"] == "127.0.0.1"
    assert "password" not in event
    assert all(secret not in repr(value) for key, value in event.items() if key != "handler")
    assert getattr(event["handler"], "password", "") != secret


def test_unknown_user_login_failed(ftp_server, account, recorder):
    client = ftp_server.connect()
    with pytest.raises(ftplib.error_perm, match="^530"):
        client.login("nobody-here", "x")
    client.close()
    assert recorder.wait("ftp_login_failed")[0]["username"] == "nobody-here"
    assert recorder.of("ftp_login") == []


# --- 5. cut-off uploads are incomplete, never received


def _start_upload(ftp: ftplib.FTP, name: str) -> socket.socket:
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    conn.sendall(b"x" * 256 * 1024)
    return conn


def test_abor_during_upload_is_incomplete(ftp, home, recorder):
    conn = _start_upload(ftp, "aborted.bin")
    time.sleep(0.2)
    ftp.putcmd("ABOR")
    replies = [ftp.getline() for _ in range(2)]
    conn.close()
    assert any(r.startswith("426") for r in replies), replies
    assert recorder.wait("ftp_file_received_incomplete")[0]["path"] == str(home / "aborted.bin")
    recorder.settle()
    assert recorder.of("ftp_file_received") == []
    assert ftp.voidcmd("NOOP").startswith("200")


def test_reset_data_connection_is_incomplete(ftp, home, recorder):
    conn = _start_upload(ftp, "crashed.bin")
    time.sleep(0.2)
    # What a crashed client's kernel does: reset instead of a clean close.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    reply = ftp.getline()
    assert reply.startswith("426"), reply
    assert recorder.wait("ftp_file_received_incomplete")[0]["ftp_path"] == "/crashed.bin"
    recorder.settle()
    assert recorder.of("ftp_file_received") == []
    assert ftp.voidcmd("NOOP").startswith("200")


def test_clean_upload_is_received(ftp, home, recorder):
    conn = _start_upload(ftp, "whole.bin")
    conn.close()
    assert ftp.voidresp().startswith("226")
    assert recorder.wait("ftp_file_received")[0]["path"] == str(home / "whole.bin")
    assert (home / "whole.bin").stat().st_size == 256 * 1024
    assert recorder.of("ftp_file_received_incomplete") == []


def test_client_vanishing_mid_download_is_incomplete(ftp, home, recorder):
    (home / "big.bin").write_bytes(b"y" * (8 * 1024 * 1024))
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(1024)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ftp.close()
    assert recorder.wait("ftp_file_sent_incomplete")[0]["path"] == str(home / "big.bin")
    recorder.wait("ftp_client_disconnected")
    assert recorder.of("ftp_file_sent") == []


# --- 7. disconnected carries the username only for logged-in clients; logout once


def test_disconnect_username(ftp_server, account, recorder):
    anonymous = ftp_server.connect()
    anonymous.quit()
    failed = ftp_server.connect()
    with pytest.raises(ftplib.error_perm):
        failed.login("alice", "wrong")
    failed.close()
    only_user = ftp_server.connect()
    only_user.sendcmd("USER alice")
    only_user.close()
    logged = ftp_server.connect("alice")
    logged.quit()

    events = recorder.wait("ftp_client_disconnected", count=4)
    assert sorted(e["username"] or "" for e in events) == ["", "", "", "alice"]
    assert all(e["remote_ip"] == "127.0.0.1" for e in events)
    assert len(recorder.of("ftp_logout")) == 1


def test_logout_once_per_logout(ftp_server, account, recorder):
    ftp = ftp_server.connect("alice")
    assert ftp.sendcmd("REIN").startswith("230")
    ftp.login("alice", PASSWORD)
    ftp.sendcmd("USER alice")  # a new USER flushes the logged-in account
    ftp.sendcmd(f"PASS {PASSWORD}")
    ftp.quit()
    recorder.wait("ftp_client_disconnected")
    logouts = recorder.of("ftp_logout")
    assert len(logouts) == 3
    assert {e["username"] for e in logouts} == {"alice"}
    assert len(recorder.of("ftp_login")) == 3


def test_dropped_connection_sends_disconnect_not_logout(ftp_server, account, recorder):
    ftp = ftp_server.connect("alice")
    ftp.close()
    assert recorder.wait("ftp_client_disconnected")[0]["username"] == "alice"
    assert recorder.of("ftp_logout") == []


# --- connect / login arguments


def test_connected_and_login_arguments(ftp_server, account, recorder):
    ftp = ftp_server.connect("alice")
    local_port = ftp.sock.getsockname()[1]
    connected = recorder.wait("ftp_client_connected")[0]
    login = recorder.wait("ftp_login")[0]
    _quit(ftp)
    assert connected["remote_ip"] == "127.0.0.1"
    assert connected["remote_port"] == local_port
    assert connected["handler"].remote_port == local_port
    assert login["username"] == "alice"
    assert login["sender"] is DjangoFTPHandler


# --- 8. every event is logged at DEBUG


def test_every_event_is_logged_at_debug(ftp_server, account, recorder, caplog):
    caplog.set_level(logging.DEBUG, logger="django_ftpserver.handlers")
    ftp = ftp_server.connect("alice")
    ftp.storbinary("STOR l.txt", io.BytesIO(b"l"))
    ftp.retrbinary("RETR l.txt", lambda data: None)
    ftp.rename("l.txt", "m.txt")
    ftp.delete("m.txt")
    ftp.mkd("x")
    ftp.rmd("x")
    ftp.quit()
    recorder.wait("ftp_client_disconnected")
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "django_ftpserver.handlers" and r.levelno == logging.DEBUG
    ]
    for event in (
        "client connected",
        "login:",
        "file received",
        "file sent",
        "file renamed",
        "file deleted",
        "directory created",
        "directory deleted",
        "logout",
        "client disconnected",
    ):
        assert any(m.startswith(f"FTP {event}") for m in messages), (event, messages)
