"""Missing, misplaced and unwritable home directories at login."""

from __future__ import annotations

import ftplib
import io
import logging
import os
import shutil
import subprocess

import pytest

from django_ftpserver.auth import lockout

from .conftest import try_login

UNAVAILABLE = "530 Your home directory is not available; contact the administrator."


@pytest.fixture(autouse=True)
def log_errors(caplog):
    caplog.set_level(logging.INFO, logger="django_ftpserver")
    return caplog


def login_reply(server, user="alice"):
    return try_login(server.host, server.port, user)


def test_missing_home_refuses_login_clearly_and_logs(ftp_server, make_account, tmp_path, caplog):
    missing = tmp_path / "nowhere" / "alice"
    account = make_account("alice", home=missing)
    shutil.rmtree(missing.parent)
    assert login_reply(ftp_server) == UNAVAILABLE
    assert str(missing) not in UNAVAILABLE  # the path is for the log, not the client
    assert f"FTP login of 'alice' refused: home directory {missing} does not exist" in caplog.text
    assert not missing.exists()
    # The right password is no failed login: nothing counts toward a lockout.
    assert lockout.failure_count("127.0.0.1") == 0
    # The server goes on serving: the same account works once the home is back.
    missing.mkdir(parents=True)
    assert login_reply(ftp_server).startswith("230")
    assert account.home_dir == str(missing)


def test_missing_home_sends_no_login_signal(ftp_server, make_account, tmp_path, recorder):
    home = tmp_path / "gone"
    make_account("alice", home=home)
    home.rmdir()
    assert login_reply(ftp_server) == UNAVAILABLE
    recorder.wait("ftp_client_disconnected")
    assert recorder.of("ftp_login") == []


def test_create_home_dirs_creates_the_home_at_login(ftp_server, make_account, tmp_path, settings):
    settings.FTPSERVER_CREATE_HOME_DIRS = True
    home = tmp_path / "homes" / "new" / "alice"
    make_account("alice", home=home)
    shutil.rmtree(tmp_path / "homes" / "new")
    ftp = ftp_server.connect("alice")
    ftp.storbinary("STOR hello.txt", io.BytesIO(b"hi"))
    ftp.quit()
    assert (home / "hello.txt").read_bytes() == b"hi"


def test_home_that_cannot_be_created_is_refused(ftp_server, make_account, tmp_path, settings):
    settings.FTPSERVER_CREATE_HOME_DIRS = True
    blocker = tmp_path / "file"
    make_account("alice", home=tmp_path / "placeholder")
    from django_ftpserver.models import FTPUserAccount

    blocker.write_text("not a directory")
    FTPUserAccount.objects.update(home_dir=str(blocker / "alice"))
    assert login_reply(ftp_server) == UNAVAILABLE


def test_home_that_is_a_file_is_refused(ftp_server, make_account, tmp_path, caplog):
    home = tmp_path / "alice"
    make_account("alice", home=home)
    home.rmdir()
    home.write_text("oops")
    assert login_reply(ftp_server) == UNAVAILABLE
    assert f"home directory {home} is not a directory" in caplog.text


@pytest.fixture
def read_only_home(make_account, tmp_path):
    """A home nobody can write to, root included (chattr +i as root)."""
    home = tmp_path / "ro"
    make_account("alice", home=home)
    (home / "existing.txt").write_bytes(b"old")
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            pytest.skip("running as root without chattr: cannot make a read-only directory")
        result = subprocess.run(["chattr", "+i", str(home)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"chattr +i failed here: {result.stderr.strip()}")
        yield home
        subprocess.run(["chattr", "-i", str(home)], check=True)
    else:
        home.chmod(0o555)
        yield home
        home.chmod(0o755)


def test_unwritable_home_reads_work_and_writes_get_550(ftp_server, read_only_home, caplog):
    ftp = ftp_server.connect("alice")
    assert f"FTP home directory {read_only_home} of 'alice' is not writable" in caplog.text
    assert ftp.nlst() == ["existing.txt"]
    out = io.BytesIO()
    ftp.retrbinary("RETR existing.txt", out.write)
    assert out.getvalue() == b"old"
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.storbinary("STOR new.txt", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp.mkd("sub")
    assert ftp.voidcmd("NOOP").startswith("200")  # the session goes on
    ftp.quit()


def test_read_only_account_with_read_only_home_logs_no_warning(
    ftp_server, make_account, tmp_path, caplog
):
    home = tmp_path / "ro-account"
    make_account("alice", permission="elr", home=home)
    home.chmod(0o555)
    try:
        assert login_reply(ftp_server).startswith("230")
    finally:
        home.chmod(0o755)
    assert "not writable" not in caplog.text
