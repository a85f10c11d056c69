"""StorageFS on S3 (django-storages' ``S3Storage``) against a real ``moto_server``.

Every test here talks to S3 over HTTP on loopback, counts the requests the
server sends (a botocore hook, ``tests.s3.CountingS3Storage``) where the
count is the point, and checks the bucket's contents with a plain client.
"""

from __future__ import annotations

import ftplib
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_ftpserver.models import FTPUserAccount, FTPUserGroup

from .conftest import PASSWORD, RunningServer
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
