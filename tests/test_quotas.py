"""Quotas per account and group, through real sessions, on local disk and StorageFS."""

from __future__ import annotations

import ftplib
import io
import shutil
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.policy import quotas

from .conftest import PASSWORD, wait_until
from .test_uploads import Site, make_site

FULL = "552 Exceeded storage allocation."


def _quit(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def set_quota(account: FTPUserAccount, **fields: Any) -> None:
    """Set quota fields; the usage counts as counted (0) unless said otherwise."""
    from django.utils import timezone

    fields.setdefault("usage_counted_at", timezone.now())
    FTPUserAccount.objects.filter(pk=account.pk).update(**fields)


def usage(account: FTPUserAccount) -> tuple[int, int]:
    account.refresh_from_db()
    return account.used_bytes, account.used_files


def send_upload(ftp: ftplib.FTP, command: str, payload: bytes) -> str:
    """Upload ``payload``; the final reply, also when the server cuts the transfer."""
    conn = ftp.transfercmd(command)
    try:
        conn.sendall(payload)
    except OSError:
        pass  # the server closed the data connection: the reply says why
    finally:
        conn.close()
    try:
        return ftp.voidresp()
    except ftplib.Error as exc:
        return str(exc)


@pytest.fixture(params=["local", "storage", "generic-storage"])
def site(request, settings, tmp_path, server_factory) -> Site:
    return make_site(request.param, settings, tmp_path, server_factory)


def test_exact_limit_then_full(site, recorder):
    set_quota(site.account, quota_bytes=1000)
    ftp = site.connect()
    assert ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 1000)).startswith("226")
    assert usage(site.account) == (1000, 1)
    with pytest.raises(ftplib.error_perm) as info:
        ftp.storbinary("STOR b.bin", io.BytesIO(b"b"))
    assert str(info.value) == FULL
    assert site.files() == {"a.bin": b"a" * 1000}
    # Refused before any transfer: no signal of a cut upload.
    recorder.settle()
    assert not recorder.of("ftp_quota_exceeded")
    _quit(ftp)


def test_one_byte_over_is_cut_and_removed(site, recorder):
    set_quota(site.account, quota_bytes=1000)
    ftp = site.connect()
    assert send_upload(ftp, "STOR over.bin", b"o" * 1001) == FULL
    assert site.files() == {}
    event = recorder.wait("ftp_quota_exceeded")[0]
    assert event["ftp_path"] == "/over.bin"
    assert event["username"] == "alice"
    assert recorder.wait("ftp_file_received_incomplete")[0]["ftp_path"] == "/over.bin"
    assert usage(site.account) == (0, 0)
    # The session goes on, and a file that fits is taken.
    assert ftp.storbinary("STOR fits.bin", io.BytesIO(b"f" * 1000)).startswith("226")
    _quit(ftp)


def test_a_large_upload_is_cut_early(site):
    set_quota(site.account, quota_bytes=100_000)
    ftp = site.connect()
    assert send_upload(ftp, "STOR big.bin", b"x" * 5_000_000) == FULL
    assert site.files() == {}
    assert ftp.voidcmd("NOOP").startswith("200")
    _quit(ftp)


def test_delete_frees_space(site):
    set_quota(site.account, quota_bytes=1000, quota_files=1)
    ftp = site.connect()
    ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 600))
    with pytest.raises(ftplib.error_perm, match="^552"):
        ftp.storbinary("STOR b.bin", io.BytesIO(b"b" * 10))  # files: 1 of 1
    ftp.delete("a.bin")
    # Counted right behind the 250 reply.
    wait_until(lambda: usage(site.account) == (0, 0), what="the usage after DELE")
    assert ftp.storbinary("STOR b.bin", io.BytesIO(b"b" * 1000)).startswith("226")
    assert usage(site.account) == (1000, 1)
    _quit(ftp)


def test_a_failed_usage_write_is_logged_and_the_operation_stands(
    settings, tmp_path, server_factory, monkeypatch, caplog
):
    """The file operation has happened when the usage is written: the client
    gets its success reply, the log says to recount."""
    site = make_site("local", settings, tmp_path, server_factory)
    set_quota(site.account, quota_bytes=1000)

    def database_down(*args: Any) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(quotas, "add_usage", database_down)
    ftp = site.connect()
    with caplog.at_level("ERROR"):
        assert ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 10)).startswith("226")
        assert ftp.delete("a.bin").startswith("250")
        wait_until(
            lambda: sum("run ftpquota recalc" in r.getMessage() for r in caplog.records) == 2,
            what="one log line for the upload and one for the delete",
        )
    assert site.files() == {}
    assert ftp.voidcmd("NOOP").startswith("200")
    _quit(ftp)


def test_overwrite_counts_the_difference(site):
    set_quota(site.account, quota_bytes=1000)
    ftp = site.connect()
    ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 900))
    # At 900 of 1000, replacing the file with 1000 bytes fits.
    assert ftp.storbinary("STOR a.bin", io.BytesIO(b"A" * 1000)).startswith("226")
    assert usage(site.account) == (1000, 1)
    # Full: replacing it is still allowed, and a smaller file frees space.
    assert ftp.storbinary("STOR a.bin", io.BytesIO(b"s" * 100)).startswith("226")
    assert usage(site.account) == (100, 1)
    ftp.storbinary("APPE a.bin", io.BytesIO(b"p" * 900))
    assert usage(site.account) == (1000, 1)
    with pytest.raises(ftplib.error_perm, match="^552"):
        ftp.storbinary("APPE a.bin", io.BytesIO(b"p"))  # only grows: refused at once
    _quit(ftp)


def test_rename_over_a_file_frees_its_space(site):
    set_quota(site.account, quota_bytes=1000)
    ftp = site.connect()
    ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 300))
    ftp.storbinary("STOR b.bin", io.BytesIO(b"b" * 200))
    ftp.rename("a.bin", "b.bin")
    wait_until(lambda: usage(site.account) == (300, 1), what="the usage after RNTO")
    _quit(ftp)


def test_file_count_limit(site):
    set_quota(site.account, quota_files=2)
    ftp = site.connect()
    ftp.storbinary("STOR 1.txt", io.BytesIO(b"1"))
    ftp.storbinary("STOR 2.txt", io.BytesIO(b"2"))
    with pytest.raises(ftplib.error_perm, match="^552"):
        ftp.storbinary("STOR 3.txt", io.BytesIO(b"3"))
    ftp.storbinary("STOR 2.txt", io.BytesIO(b"two"))  # replacing is not a new file
    assert sorted(site.files()) == ["1.txt", "2.txt"]
    assert usage(site.account) == (4, 2)
    _quit(ftp)


def test_concurrent_sessions_cannot_exceed_together(site):
    """Two sessions of one account: the second upload crossing the limit is cut."""
    if site.spooled:
        pytest.skip("a spooling storage writes nothing to wait for until the upload ends")
    set_quota(site.account, quota_bytes=1_000_000)
    first, second = site.connect(), site.connect()
    conn1 = first.transfercmd("STOR one.bin")
    conn1.sendall(b"1" * 600_000)
    wait_until(lambda: _size(site.home / "one.bin") >= 500_000, what="the first upload's data")
    # The first is still running (600 KB in flight): 600 KB more cannot fit.
    assert send_upload(second, "STOR two.bin", b"2" * 600_000) == FULL
    conn1.close()
    assert first.voidresp().startswith("226")
    assert site.files() == {"one.bin": b"1" * 600_000}
    assert usage(site.account) == (600_000, 1)
    # What is left is usable from either session.
    assert second.storbinary("STOR three.bin", io.BytesIO(b"3" * 400_000)).startswith("226")
    assert usage(site.account) == (1_000_000, 2)
    _quit(first)
    _quit(second)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_usage_is_counted_from_the_home_when_never_counted(site):
    (site.home / "old").mkdir()
    (site.home / "old" / "data.bin").write_bytes(b"d" * 700)
    FTPUserAccount.objects.filter(pk=site.account.pk).update(quota_bytes=1000)
    ftp = site.connect()
    assert send_upload(ftp, "STOR new.bin", b"n" * 400) == FULL
    assert usage(site.account) == (700, 1)
    assert ftp.storbinary("STOR new.bin", io.BytesIO(b"n" * 300)).startswith("226")
    assert usage(site.account) == (1000, 2)
    _quit(ftp)


def test_group_quota_and_account_override(site):
    FTPUserGroup.objects.filter(pk=site.account.group_id).update(quota_bytes=100)
    set_quota(site.account)
    ftp = site.connect()
    assert send_upload(ftp, "STOR a.bin", b"a" * 101) == FULL
    _quit(ftp)
    set_quota(site.account, quota_bytes=0)  # the account's own value: no limit
    ftp = site.connect()  # limits are read at login
    assert ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 5000)).startswith("226")
    _quit(ftp)


def test_atomic_upload_over_quota_leaves_the_old_file(settings, tmp_path, server_factory):
    settings.FTPSERVER_UPLOAD_MODE = "atomic"
    site = make_site("local", settings, tmp_path, server_factory)
    (site.home / "keep.bin").write_bytes(b"k" * 500)
    FTPUserAccount.objects.filter(pk=site.account.pk).update(quota_bytes=1000)
    ftp = site.connect()
    assert send_upload(ftp, "STOR keep.bin", b"x" * 2000) == FULL
    assert site.files() == {"keep.bin": b"k" * 500}
    assert usage(site.account) == (500, 1)
    _quit(ftp)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sees_the_quota(site, tmp_path):
    set_quota(site.account, quota_bytes=1000)
    source = tmp_path / "big.bin"
    source.write_bytes(b"c" * 300_000)
    url = f"ftp://alice:{PASSWORD}@127.0.0.1:{site.server.port}/"
    result = subprocess.run(
        ["curl", "-sS", "-T", str(source), url], capture_output=True, timeout=60
    )
    # 70: "disk full on the server", curl's reading of 552; 55 if curl was still
    # sending when the server closed the data connection.
    assert result.returncode in (70, 55), result.stderr
    if result.returncode == 70:
        assert b"Exceeded storage allocation" in result.stderr
    assert site.files() == {}


# --- commands


def test_ftpquota_show_and_recalc(site):
    set_quota(site.account, quota_bytes=10 * 1024 * 1024, quota_files=5)
    (site.home / "sub").mkdir()
    (site.home / "sub" / "a.bin").write_bytes(b"a" * 1234)
    (site.home / "b.bin").write_bytes(b"b" * 10)
    out = StringIO()
    call_command("ftpquota", "recalc", "alice", stdout=out)
    assert out.getvalue().strip() == "alice: 1244 bytes in 2 files"
    assert usage(site.account) == (1244, 2)
    out = StringIO()
    call_command("ftpquota", "show", stdout=out)
    line = out.getvalue().splitlines()[1].split()
    assert line == ["alice", "1244", "10M", "2", "5"]
    with pytest.raises(CommandError, match='"bob" does not exist'):
        call_command("ftpquota", "show", "bob", stdout=StringIO())


def test_create_commands_take_quotas(transactional_db):
    from django.contrib.auth import get_user_model

    call_command("createftpusergroup", "partners", "--quota-bytes", "10G", stdout=StringIO())
    group = FTPUserGroup.objects.get(name="partners")
    assert group.quota_bytes == 10 * 1024**3 and group.quota_files is None
    get_user_model().objects.create_user("carol", password=PASSWORD)
    call_command(
        "createftpuseraccount",
        "carol",
        "partners",
        "--quota-files",
        "100",
        "--quota-bytes",
        "0",
        stdout=StringIO(),
    )
    account = FTPUserAccount.objects.get(user__username="carol")
    assert (account.quota_bytes, account.quota_files) == (0, 100)
    assert account.get_limits() == quotas.Limits(None, 100)
    for bad in (["--quota-bytes", "lots"], ["--quota-files", "-1"], ["--quota-files", "9" * 12]):
        with pytest.raises(CommandError, match="invalid --quota"):
            call_command("createftpusergroup", "other", *bad, stdout=StringIO())


@pytest.mark.parametrize(
    "text, size",
    [("1048576", 1048576), ("500M", 500 * 1024**2), ("10G", 10 * 1024**3), ("2KiB", 2048)],
)
def test_parse_size(text, size):
    assert quotas.parse_size(text) == size


def test_limits_resolve():
    assert quotas.Limits.resolve(None, None, None, None) is None
    assert quotas.Limits.resolve(None, None, 100, 0) == quotas.Limits(100, None)
    assert quotas.Limits.resolve(0, None, 100, 5) == quotas.Limits(None, 5)
    assert quotas.Limits.resolve(50, 1, 100, 5) == quotas.Limits(50, 1)


# --- on S3 (a real moto_server), through StorageFS


@pytest.fixture
def s3_site(s3_settings, server_factory, transactional_db) -> tuple[Any, FTPUserAccount]:
    from .test_s3 import make_storage_account

    account = make_storage_account()
    return server_factory(), account


@pytest.mark.s3
def test_quota_on_s3(s3_site, s3_bucket, recorder):
    server, account = s3_site
    set_quota(account, quota_bytes=1000)
    ftp = server.connect("alice")
    ftp.voidcmd("TYPE I")
    assert ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * 1000)).startswith("226")
    with pytest.raises(ftplib.error_perm, match="^552"):
        ftp.storbinary("STOR b.bin", io.BytesIO(b"b"))
    ftp.delete("a.bin")
    wait_until(lambda: usage(account) == (0, 0), what="the usage after DELE")
    assert send_upload(ftp, "STOR c.bin", b"c" * 5000) == FULL
    recorder.wait("ftp_quota_exceeded")
    assert s3_bucket.keys("alice/") == []
    assert ftp.storbinary("STOR d.bin", io.BytesIO(b"d" * 700)).startswith("226")
    assert s3_bucket.keys("alice/") == ["alice/d.bin"]
    assert usage(account) == (700, 1)
    _quit(ftp)


@pytest.mark.s3
def test_atomic_upload_on_s3(s3_site, s3_bucket, settings):
    settings.FTPSERVER_UPLOAD_MODE = "atomic"
    server, _ = s3_site
    s3_bucket.put("alice/keep.csv", b"old")
    ftp = server.connect("alice")
    ftp.voidcmd("TYPE I")
    assert ftp.storbinary("STOR keep.csv", io.BytesIO(b"new" * 1000)).startswith("226")
    assert s3_bucket.keys("alice/") == ["alice/keep.csv"]
    assert s3_bucket.get("alice/keep.csv") == b"new" * 1000
    assert ftp.nlst() == ["keep.csv"]
    _quit(ftp)
