"""StorageFS on S3 (django-storages' ``S3Storage``) against a real ``moto_server``.

Every test here talks to S3 over HTTP on loopback, counts the requests the
server sends (a botocore hook, ``tests.s3.CountingS3Storage``) where the
count is the point, and checks the bucket's contents with a plain client.
"""

from __future__ import annotations

import datetime
import ftplib
import hashlib
import io
import socket
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_ftpserver.filesystems import LISTING_CACHE_SECONDS
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.storage import s3

from .conftest import PASSWORD, RunningServer, wait_until
from .s3 import RequestLog, S3Bucket

pytestmark = pytest.mark.s3


def make_storage_account(username: str = "alice", home: str = "alice") -> FTPUserAccount:
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    group, _ = FTPUserGroup.objects.get_or_create(
        name="g-all", defaults={"permission": "elradfmwMT"}
    )
    return FTPUserAccount.objects.create(user=user, group=group, home_dir=home)


@pytest.fixture
def s3_server(s3_settings: Any, server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


@pytest.fixture
def client(s3_server: RunningServer, transactional_db: None) -> Iterator[ftplib.FTP]:
    make_storage_account()
    ftp = s3_server.connect("alice")
    ftp.voidcmd("NOOP")
    yield ftp
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def test_moto_server_is_a_real_endpoint(s3_bucket: S3Bucket) -> None:
    s3_bucket.put("a/b.txt", b"hello")
    assert s3_bucket.keys() == ["a/b.txt"]
    assert s3_bucket.get("a/b.txt") == b"hello"
    assert s3_bucket.endpoint.startswith("http://127.0.0.1:")


def test_upload_list_download(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    client.storbinary("STOR hello.txt", io.BytesIO(b"hello world"))
    assert s3_bucket.get("alice/hello.txt") == b"hello world"
    assert client.nlst() == ["hello.txt"]
    out = io.BytesIO()
    client.retrbinary("RETR hello.txt", out.write)
    assert out.getvalue() == b"hello world"
    assert s3_requests.count() > 0


def test_requests_are_counted_by_operation(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    s3_bucket.put("alice/one.txt", b"1")
    s3_requests.clear()
    client.voidcmd("TYPE I")
    assert client.size("one.txt") == 1
    operations = s3_requests.operations()
    assert operations and set(operations) <= {"HeadObject", "ListObjectsV2", "ListObjects"}


# --- helpers

MiB = 1024 * 1024


def fill(bucket: S3Bucket, prefix: str, count: int, dirs: int = 0) -> None:
    """``count`` small objects (and ``dirs`` sub-folders) under ``prefix``, put in parallel."""
    client = bucket.client()
    keys = [f"{prefix}f{i:05d}.txt" for i in range(count)]
    keys += [f"{prefix}d{i:03d}/inner.txt" for i in range(dirs)]

    def put(key: str) -> None:
        client.put_object(Bucket=bucket.name, Key=key, Body=key.encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))


def payload(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def start_upload(ftp: ftplib.FTP, name: str, data: bytes) -> socket.socket:
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    conn.sendall(data)
    return conn


# --- 1. listing from the listing


@pytest.mark.slow
def test_listing_a_folder_costs_one_request_per_thousand_entries(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    fill(s3_bucket, "alice/big/", 2495, dirs=5)
    client.voidcmd("TYPE I")

    s3_requests.clear()
    lines: list[str] = []
    client.retrlines("LIST big", lines.append)
    assert len(lines) == 2500
    # One lookup of "big" (its own common prefix), then 3 pages of 1,000.
    assert s3_requests.operations() == ["ListObjectsV2"] * 4
    first = lines[0].split()
    assert first[0].startswith("d") and first[-1] == "d000"
    assert lines[-1].split()[4] == str(len(b"alice/big/f02494.txt"))

    for command in ("MLSD", "NLST"):
        time.sleep(LISTING_CACHE_SECONDS)  # nothing cached from before
        s3_requests.clear()
        if command == "MLSD":
            entries = list(client.mlsd("big", facts=["type", "size", "modify"]))
            assert len(entries) == 2500
        else:
            assert len(client.nlst("big")) == 2500
        assert s3_requests.operations() == ["ListObjectsV2"] * 4, command


def test_list_mlsd_nlst_stat_of_a_folder_take_two_requests(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    fill(s3_bucket, "alice/docs/", 40, dirs=3)
    client.voidcmd("TYPE I")
    for number, run in enumerate(
        [
            lambda: client.retrlines("LIST docs", lambda line: None),
            lambda: list(client.mlsd("docs")),
            lambda: client.nlst("docs"),
            lambda: client.sendcmd("STAT docs"),
        ]
    ):
        if number:
            time.sleep(LISTING_CACHE_SECONDS)
        s3_requests.clear()
        run()
        assert s3_requests.operations() == ["ListObjectsV2", "ListObjectsV2"]


def test_mlsd_facts_come_from_the_listing_in_utc(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    s3_bucket.put("alice/docs/a.txt", b"12345")
    s3_bucket.put("alice/docs/sub/b.txt", b"1")
    s3_bucket.put("alice/docs/empty/")  # a folder marker
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="alice/docs/a.txt")
    expected = head["LastModified"].astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    entries = dict(client.mlsd("docs", facts=["type", "size", "modify"]))
    assert set(entries) == {"a.txt", "sub", "empty"}
    assert entries["a.txt"]["type"] == "file" and entries["a.txt"]["size"] == "5"
    assert entries["a.txt"]["modify"] == expected
    now = datetime.datetime.now(datetime.timezone.utc)
    for folder in ("sub", "empty"):
        assert entries[folder]["type"] == "dir"
        modify = datetime.datetime.strptime(entries[folder]["modify"], "%Y%m%d%H%M%S")
        # Never 1970: folders show the time they are listed (UTC).
        assert abs(modify.replace(tzinfo=datetime.timezone.utc) - now).total_seconds() < 300


def test_size_mdtm_mlst_of_one_object_cost_one_request(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    for name in ("s.txt", "m.txt", "l.txt"):
        s3_bucket.put(f"alice/{name}", b"123")
    client.voidcmd("TYPE I")
    s3_requests.clear()
    assert client.size("s.txt") == 3
    assert s3_requests.count() == 1
    s3_requests.clear()
    assert client.voidcmd("MDTM m.txt").startswith("213 20")
    assert s3_requests.count() == 1
    s3_requests.clear()
    assert "size=3;" in client.sendcmd("MLST l.txt")
    assert s3_requests.count() == 1
    assert set(s3_requests.operations()) == {"ListObjectsV2"}


def test_names_that_share_a_prefix_with_a_folder(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    # "x-1" and "x.txt" sort between "x" and "x/": the lookup still finds both.
    for key in ("alice/x", "alice/x-1", "alice/x.txt", "alice/y.txt", "alice/y/z"):
        s3_bucket.put(key, b"k")
    client.voidcmd("TYPE I")
    assert client.size("x") == 1
    assert client.sendcmd("CWD y").startswith("250")
    assert client.nlst() == ["z"]
    with pytest.raises(ftplib.error_perm, match="550"):
        client.size("/x-")


# --- 2. uploads stream into multipart uploads


@pytest.fixture
def small_parts(settings: Any) -> int:
    settings.FTPSERVER_S3_PART_SIZE = 5 * MiB
    settings.FTPSERVER_S3_UPLOAD_THREADS = 2
    return 5 * MiB


def test_small_upload_is_one_put(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    client.voidcmd("TYPE I")
    s3_requests.clear()
    client.storbinary("STOR small.bin", io.BytesIO(b"abc"))
    assert s3_bucket.get("alice/small.bin") == b"abc"
    assert s3_requests.count("PutObject") == 1
    assert s3_requests.count("CreateMultipartUpload") == 0


def test_large_upload_is_a_multipart_upload(
    small_parts: int,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    s3_requests: RequestLog,
    recorder: Any,
) -> None:
    data = payload(17 * MiB + 123)
    s3_requests.clear()
    client.storbinary("STOR big.bin", io.BytesIO(data), blocksize=256 * 1024)
    assert hashlib.sha256(s3_bucket.get("alice/big.bin")).digest() == hashlib.sha256(data).digest()
    assert s3_requests.count("CreateMultipartUpload") == 1
    assert s3_requests.count("UploadPart") == 4
    assert s3_requests.count("CompleteMultipartUpload") == 1
    assert s3_requests.count("PutObject") == 0
    assert s3_bucket.multipart_uploads() == []
    assert recorder.wait("ftp_file_received")[0]["ftp_path"] == "/big.bin"


@pytest.mark.parametrize("how", ["abor", "reset"])
def test_cut_off_upload_leaves_no_object_and_no_parts(
    how: str,
    small_parts: int,
    s3_server: RunningServer,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    recorder: Any,
) -> None:
    s3_bucket.put("alice/cut.bin", b"old")
    conn = start_upload(client, "cut.bin", payload(12 * MiB))
    wait_until(lambda: s3_bucket.multipart_uploads(), what="parts being uploaded")
    if how == "abor":
        client.putcmd("ABOR")
        replies = [client.getline() for _ in range(2)]
        conn.close()
        assert any(reply.startswith("426") for reply in replies), replies
    elif how == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        assert client.getline().startswith("426")
    else:
        s3_server.stop()
        conn.close()
    assert recorder.wait("ftp_file_received_incomplete")[0]["ftp_path"] == "/cut.bin"
    wait_until(lambda: s3_bucket.multipart_uploads() == [], what="the upload aborted")
    assert s3_bucket.get("alice/cut.bin") == b"old"
    assert recorder.of("ftp_file_received") == []


def assert_nothing_stored(bucket: S3Bucket, recorder: Any, ftp_path: str) -> None:
    """A cut upload: ``ftp_file_received_incomplete``, no object, no multipart upload left."""
    [event] = recorder.wait("ftp_file_received_incomplete", timeout=60)
    assert event["ftp_path"] == ftp_path
    wait_until(lambda: bucket.multipart_uploads() == [], timeout=60, what="the upload aborted")
    assert bucket.keys() == []
    assert recorder.of("ftp_file_received") == []


def test_upload_stalled_until_the_data_timeout_is_aborted(
    small_parts: int,
    s3_settings: Any,
    server_factory: Callable[..., RunningServer],
    transactional_db: None,
    s3_bucket: S3Bucket,
    recorder: Any,
) -> None:
    server = server_factory()
    handler = server.runner.server.handler  # make_server's own subclass
    # pyftpdlib closes a data channel that made no progress for ``timeout``
    # seconds (300 by default); 1 s here, on this server only.
    handler.dtp_handler = type("QuickDTP", (handler.dtp_handler,), {"timeout": 1})
    make_storage_account()
    ftp = server.connect("alice", timeout=60)
    # More than a part, so a multipart upload is in flight; then silence.
    conn = start_upload(ftp, "stalled.bin", payload(6 * MiB))
    try:
        assert_nothing_stored(s3_bucket, recorder, "/stalled.bin")
        assert ftp.getline().startswith("421 Data connection timed out")
    finally:
        conn.close()
        ftp.close()


def test_upload_in_flight_when_the_server_stops_is_aborted(
    small_parts: int,
    s3_server: RunningServer,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    recorder: Any,
) -> None:
    conn = start_upload(client, "stopped.bin", payload(12 * MiB))
    try:
        wait_until(lambda: s3_bucket.multipart_uploads(), what="parts being uploaded")
        s3_server.stop()
        assert_nothing_stored(s3_bucket, recorder, "/stopped.bin")
    finally:
        conn.close()


def test_readers_see_the_old_object_until_the_upload_completes(
    small_parts: int, client: ftplib.FTP, s3_bucket: S3Bucket
) -> None:
    s3_bucket.put("alice/doc.bin", b"old")
    new = payload(11 * MiB, seed=2)
    conn = start_upload(client, "doc.bin", new[: 10 * MiB])
    wait_until(lambda: s3_bucket.multipart_uploads(), what="parts being uploaded")
    assert s3_bucket.get("alice/doc.bin") == b"old"
    conn.sendall(new[10 * MiB :])
    conn.close()
    assert client.voidresp().startswith("226")
    assert s3_bucket.get("alice/doc.bin") == new


@pytest.fixture
def atomic_mode(settings: Any) -> None:
    settings.FTPSERVER_UPLOAD_MODE = "atomic"


def test_atomic_mode_writes_straight_to_the_final_key(
    atomic_mode: None,
    small_parts: int,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    s3_requests: RequestLog,
    recorder: Any,
) -> None:
    """S3's complete is atomic already: no temporary key, no copy, the old object until the end."""
    s3_bucket.put("alice/doc.bin", b"old")
    new = payload(11 * MiB, seed=12)
    s3_requests.clear()
    conn = start_upload(client, "doc.bin", new[: 10 * MiB])
    assert wait_until(lambda: s3_bucket.multipart_uploads(), what="parts being uploaded") == [
        "alice/doc.bin"
    ]
    assert s3_bucket.get("alice/doc.bin") == b"old"
    conn.sendall(new[10 * MiB :])
    conn.close()
    assert client.voidresp().startswith("226")
    assert s3_bucket.get("alice/doc.bin") == new
    assert s3_bucket.keys() == ["alice/doc.bin"]
    operations = s3_requests.operations()
    assert operations.count("CreateMultipartUpload") == 1
    assert operations.count("CompleteMultipartUpload") == 1
    for never in ("CopyObject", "UploadPartCopy", "DeleteObject", "PutObject"):
        assert never not in operations, operations
    assert recorder.wait("ftp_file_received")[0]["ftp_path"] == "/doc.bin"
    # A small file: one PutObject to the final key, nothing else written.
    s3_requests.clear()
    client.storbinary("STOR small.txt", io.BytesIO(b"small"))
    assert s3_bucket.keys() == ["alice/doc.bin", "alice/small.txt"]
    writes = [op for op in s3_requests.operations() if op not in ("ListObjectsV2", "HeadObject")]
    assert writes == ["PutObject"]


def test_atomic_mode_cut_upload_leaves_the_old_object(
    atomic_mode: None,
    small_parts: int,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    s3_requests: RequestLog,
    recorder: Any,
) -> None:
    s3_bucket.put("alice/keep.bin", b"old")
    s3_requests.clear()
    conn = start_upload(client, "keep.bin", payload(12 * MiB))
    wait_until(lambda: s3_bucket.multipart_uploads(), what="parts being uploaded")
    client.putcmd("ABOR")
    replies = [client.getline() for _ in range(2)]
    conn.close()
    assert any(reply.startswith("426") for reply in replies), replies
    assert recorder.wait("ftp_file_received_incomplete")[0]["ftp_path"] == "/keep.bin"
    wait_until(lambda: s3_bucket.multipart_uploads() == [], what="the upload aborted")
    assert s3_bucket.keys() == ["alice/keep.bin"]
    assert s3_bucket.get("alice/keep.bin") == b"old"
    operations = s3_requests.operations()
    assert "DeleteObject" not in operations and "CopyObject" not in operations, operations


@pytest.mark.parametrize("mode", ["standard", "atomic"])
def test_upload_cut_over_quota_keeps_the_old_object(
    mode: str,
    settings: Any,
    s3_server: RunningServer,
    transactional_db: None,
    s3_bucket: S3Bucket,
    recorder: Any,
) -> None:
    """On disk a STOR over the quota truncated the file; on S3 the old object is intact."""
    from django.utils import timezone

    settings.FTPSERVER_UPLOAD_MODE = mode
    account = make_storage_account()
    FTPUserAccount.objects.filter(pk=account.pk).update(
        quota_bytes=1000, used_bytes=3, used_files=1, usage_counted_at=timezone.now()
    )
    s3_bucket.put("alice/q.bin", b"old")
    ftp = s3_server.connect("alice")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR q.bin")
    try:
        conn.sendall(b"n" * 5000)
    except OSError:
        pass  # the server cut the data connection: the reply says why
    finally:
        conn.close()
    with pytest.raises(ftplib.error_perm, match="^552"):
        ftp.voidresp()
    assert recorder.wait("ftp_quota_exceeded")[0]["ftp_path"] == "/q.bin"
    assert s3_bucket.keys() == ["alice/q.bin"]
    assert s3_bucket.get("alice/q.bin") == b"old"
    assert s3_bucket.multipart_uploads() == []
    account.refresh_from_db()
    assert (account.used_bytes, account.used_files) == (3, 1)
    ftp.quit()


@pytest.mark.parametrize("mode", ["standard", "atomic"])
@pytest.mark.parametrize("existing_size", [100, 6 * MiB])
def test_append(
    mode: str,
    settings: Any,
    existing_size: int,
    small_parts: int,
    client: ftplib.FTP,
    s3_bucket: S3Bucket,
    s3_requests: RequestLog,
) -> None:
    settings.FTPSERVER_UPLOAD_MODE = mode
    existing = payload(existing_size, seed=3)
    s3_bucket.put("alice/log.bin", existing)
    more = payload(MiB, seed=4)
    s3_requests.clear()
    client.storbinary("APPE log.bin", io.BytesIO(more))
    assert s3_bucket.get("alice/log.bin") == existing + more
    # Enough existing bytes for a part are copied inside S3, not read back.
    assert s3_requests.count("UploadPartCopy") == (1 if existing_size >= 5 * MiB else 0)
    assert s3_bucket.multipart_uploads() == []


@pytest.mark.parametrize("mode", ["standard", "atomic"])
def test_rest_stor_resumes_an_upload(
    mode: str, settings: Any, client: ftplib.FTP, s3_bucket: S3Bucket
) -> None:
    settings.FTPSERVER_UPLOAD_MODE = mode
    data = payload(3 * MiB, seed=5)
    s3_bucket.put("alice/part.bin", data[: MiB + 7])
    client.voidcmd("TYPE I")
    client.storbinary("STOR part.bin", io.BytesIO(data[MiB + 7 :]), rest=MiB + 7)
    assert s3_bucket.get("alice/part.bin") == data
    assert s3_bucket.keys() == ["alice/part.bin"]


def test_stou(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    client.voidcmd("TYPE I")
    conn, _ = client.ntransfercmd("STOU")
    conn.sendall(b"unique")
    conn.close()
    assert client.voidresp().startswith("226")
    [key] = s3_bucket.keys("alice/")
    assert key.startswith("alice/ftpd.") and s3_bucket.get(key) == b"unique"


@pytest.mark.slow
def test_upload_memory_is_bounded_by_parts(
    small_parts: int, client: ftplib.FTP, s3_bucket: S3Bucket
) -> None:
    size = 48 * MiB
    block = payload(MiB, seed=6)
    # The session's boto3 client is made (and S3's service model parsed) once.
    client.storbinary("STOR warm-up.bin", io.BytesIO(b"x"))
    tracemalloc.start()
    try:
        conn = start_upload(client, "mem.bin", b"")
        for _ in range(size // MiB):
            conn.sendall(block)
        conn.close()
        assert client.voidresp().startswith("226")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="alice/mem.bin")
    assert head["ContentLength"] == size
    # (threads + 1) parts of 5 MiB, plus a part's copy while it is cut off.
    assert peak < 5 * small_parts, f"peak {peak / MiB:.1f} MiB for a {size // MiB} MiB upload"


# --- 3. downloads stream with ranged GETs


def test_download_is_one_ranged_get(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    data = payload(3 * MiB + 5, seed=7)
    s3_bucket.put("alice/get.bin", data)
    client.voidcmd("TYPE I")
    s3_requests.clear()
    out = io.BytesIO()
    client.retrbinary("RETR get.bin", out.write)
    assert out.getvalue() == data
    assert s3_requests.operations() == ["ListObjectsV2", "GetObject"]


def test_large_download_is_read_in_ranges_ahead(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    data = payload(17 * MiB + 5, seed=9)
    s3_bucket.put("alice/large.bin", data)
    client.voidcmd("TYPE I")
    s3_requests.clear()
    out = io.BytesIO()
    client.retrbinary("RETR large.bin", out.write)
    assert out.getvalue() == data
    assert s3_requests.count("GetObject") == 3  # 8 + 8 + 1 MiB
    out = io.BytesIO()
    client.retrbinary("RETR large.bin", out.write, rest=9 * MiB + 1)
    assert out.getvalue() == data[9 * MiB + 1 :]


def test_rest_retr_resumes_from_the_offset(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    data = payload(2 * MiB + 11, seed=8)
    s3_bucket.put("alice/resume.bin", data)
    client.voidcmd("TYPE I")
    out = io.BytesIO()
    client.retrbinary("RETR resume.bin", out.write, rest=MiB + 3)
    assert out.getvalue() == data[MiB + 3 :]
    with pytest.raises(ftplib.error_perm, match="554"):
        client.retrbinary("RETR resume.bin", out.write, rest=len(data) + 1)


def test_empty_file_round_trip(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    client.storbinary("STOR empty.bin", io.BytesIO(b""))
    assert s3_bucket.get("alice/empty.bin") == b""
    out = io.BytesIO()
    client.retrbinary("RETR empty.bin", out.write)
    assert out.getvalue() == b""


# --- 4. folders


def test_mkd_rmd(client: ftplib.FTP, s3_bucket: S3Bucket, recorder: Any) -> None:
    client.mkd("new")
    assert s3_bucket.keys("alice/") == ["alice/new/"]
    assert "new" in client.nlst()
    with pytest.raises(ftplib.error_perm, match="550"):
        client.mkd("new")
    client.storbinary("STOR new/file.txt", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match="550"):
        client.rmd("new")
    client.delete("new/file.txt")
    client.rmd("new")
    assert s3_bucket.keys("alice/") == []
    assert "new" not in client.nlst()
    assert [e["ftp_path"] for e in recorder.wait("ftp_directory_deleted")] == ["/new"]


def test_upload_to_a_missing_folder_is_refused(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    with pytest.raises(ftplib.error_perm, match="550"):
        client.storbinary("STOR nowhere/file.txt", io.BytesIO(b"x"))
    assert s3_bucket.keys() == []


def test_rename_a_file_is_a_server_side_copy(
    client: ftplib.FTP, s3_bucket: S3Bucket, s3_requests: RequestLog
) -> None:
    s3_bucket.put("alice/a.txt", b"content")
    s3_bucket.put("alice/sub/")
    s3_requests.clear()
    client.rename("a.txt", "sub/b.txt")
    assert s3_bucket.keys("alice/") == ["alice/sub/", "alice/sub/b.txt"]
    assert s3_bucket.get("alice/sub/b.txt") == b"content"
    operations = s3_requests.operations()
    assert operations.count("CopyObject") == 1 and operations.count("DeleteObject") == 1
    assert "GetObject" not in operations and "PutObject" not in operations


def test_upload_to_a_temporary_name_then_rename(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    """What WinSCP does: upload ``name.filepart``, rename it over ``name``."""
    s3_bucket.put("alice/report.pdf", b"old")
    client.storbinary("STOR report.pdf.filepart", io.BytesIO(b"new version"))
    assert s3_bucket.get("alice/report.pdf") == b"old"
    client.rename("report.pdf.filepart", "report.pdf")
    assert s3_bucket.keys("alice/") == ["alice/report.pdf"]
    assert s3_bucket.get("alice/report.pdf") == b"new version"


def test_rename_a_folder_moves_every_object(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    for key in ("alice/old/", "alice/old/a.txt", "alice/old/deep/b.txt"):
        s3_bucket.put(key, key.encode())
    client.rename("old", "new")
    assert s3_bucket.keys("alice/") == ["alice/new/", "alice/new/a.txt", "alice/new/deep/b.txt"]
    assert s3_bucket.get("alice/new/deep/b.txt") == b"alice/old/deep/b.txt"
    with pytest.raises(ftplib.error_perm, match="550"):
        client.rename("new", "new/inside")


def test_rename_of_a_too_large_folder_is_refused(
    client: ftplib.FTP, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "FOLDER_RENAME_LIMIT", 2)
    for key in ("alice/big/a", "alice/big/b", "alice/big/c"):
        s3_bucket.put(key, b"x")
    client.sendcmd("RNFR big")
    with pytest.raises(ftplib.error_perm, match="550 Folder has more than 2 objects"):
        client.sendcmd("RNTO other")
    assert s3_bucket.keys("alice/") == ["alice/big/a", "alice/big/b", "alice/big/c"]


def test_homes_are_prefixes_and_nothing_reaches_outside(
    s3_server: RunningServer, transactional_db: None, s3_bucket: S3Bucket
) -> None:
    make_storage_account("alice", "alice")
    make_storage_account("bob", "homes/bob")
    s3_bucket.put("alice/secret.txt", b"alice's")
    s3_bucket.put("top.txt", b"root")
    bob = s3_server.connect("bob")
    bob.voidcmd("TYPE I")
    bob.storbinary("STOR mine.txt", io.BytesIO(b"bob's"))
    assert s3_bucket.keys("homes/") == ["homes/bob/mine.txt"]
    for name in (
        "../../alice/secret.txt",
        "/../alice/secret.txt",
        "/../../top.txt",
        "..\\..\\top.txt",
        "%2e%2e/%2e%2e/top.txt",
        "..%2F..%2Ftop.txt",
    ):
        with pytest.raises(ftplib.error_perm, match="550"):
            bob.retrbinary(f"RETR {name}", lambda data: None)
    with pytest.raises(ftplib.error_perm, match="550 Path goes above the home"):
        bob.cwd("/../../..")
    assert bob.pwd() == "/"
    assert bob.nlst() == ["mine.txt"]
    # Odd names are names inside the home, never paths out of it.
    bob.storbinary("STOR ..%2F..%2Ftop.txt", io.BytesIO(b"x"))
    bob.storbinary("STOR ..\\evil.txt", io.BytesIO(b"x"))
    assert all(key.startswith("homes/bob/") for key in s3_bucket.keys("homes/"))
    assert s3_bucket.get("top.txt") == b"root"
    assert s3_bucket.keys("alice/") == ["alice/secret.txt"]
    bob.quit()


def test_mfmt_is_not_advertised(client: ftplib.FTP, s3_bucket: S3Bucket) -> None:
    """S3 sets objects' times itself; clients that see MFMT would fail every upload."""
    features = client.sendcmd("FEAT").split()
    assert "MFMT" not in features and "MDTM" in features
    s3_bucket.put("alice/t.txt", b"x")
    with pytest.raises(ftplib.error_perm, match="550 Changing times is not supported"):
        client.sendcmd("MFMT 20200913122640 t.txt")
