"""A real S3 endpoint for the tests: ``moto_server`` on a free loopback port.

``moto_server`` (pip ``moto[server]``) speaks S3 over HTTP, so boto3 and
django-storages talk to it exactly as they talk to AWS or MinIO: signed
requests, real sockets, real multipart uploads. It runs as a separate
process for the whole test session; each test gets a bucket of its own.

Fixtures (imported into ``tests/conftest.py``):

``moto_server``
    session-wide :class:`MotoServer` (``endpoint``, ``client()``,
    ``create_bucket()``, ``storage_options()``).
``s3_bucket``
    a fresh, empty bucket (:class:`S3Bucket`) for one test.
``s3_settings``
    ``STORAGES["default"]`` pointed at that bucket through
    :class:`CountingS3Storage` and ``FTPSERVER_FILESYSTEM`` at ``StorageFS``;
    use it before starting a server.
``s3_requests``
    the :class:`RequestLog` every ``CountingS3Storage`` writes to, emptied
    for the test.

Other processes (``manage.py ftpserver`` started by a test) reach the same
bucket with ``DJANGO_SETTINGS_MODULE=tests.settings_s3`` and the
environment of :meth:`S3Bucket.environ`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"

_bucket_numbers = itertools.count(1)


def moto_server_command() -> list[str] | None:
    """How to start ``moto_server`` from this interpreter's environment, or None."""
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("moto_server")
    return [found] if found else None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the caller retries if it is taken)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


@dataclass
class RequestLog:
    """S3 requests sent by :class:`CountingS3Storage` clients (all threads).

    Each entry is ``(operation, http_method)``, e.g. ``("ListObjectsV2", "GET")``;
    one entry per HTTP request sent, retries included.
    """

    entries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, method: str) -> None:
        with self.lock:
            self.entries.append((operation, method))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def operations(self) -> list[str]:
        with self.lock:
            return [operation for operation, _ in self.entries]

    def count(self, operation: str | None = None) -> int:
        return len([op for op in self.operations() if operation in (None, op)])

    def __len__(self) -> int:
        return self.count()


#: Shared by every CountingS3Storage of this process.
requests = RequestLog()


def _count_request(request: Any = None, **kwargs: Any) -> None:
    context = getattr(request, "context", None) or {}
    operation = context.get("operation_name") or kwargs.get("event_name", "?").split(".")[-1]
    requests.record(str(operation), getattr(request, "method", "?"))


def count_requests_of(client: Any) -> Any:
    """Register the request counter on a boto3 client (``before-send``: one per HTTP request)."""
    client.meta.events.register("before-send.s3", _count_request)
    return client


try:
    from storages.backends.s3 import S3Storage
except ImportError:  # pragma: no cover - the S3 tests skip without django-storages
    S3Storage = None  # type: ignore[assignment,misc]

if S3Storage is not None:

    class CountingS3Storage(S3Storage):
        """django-storages' ``S3Storage`` whose requests land in :data:`requests`.

        Only the counting differs: the class keeps ``S3Storage`` in its MRO,
        so ``StorageFS`` serves it with the S3 patch, as it serves the real
        thing. django-storages makes one boto3 connection per thread; the
        hook goes on each as it is made.
        """

        @property
        def connection(self) -> Any:  # type: ignore[override]
            connection = getattr(self._connections, "connection", None)
            if connection is None:
                connection = super().connection
                count_requests_of(connection.meta.client)
            return connection


@dataclass
class S3Bucket:
    """One bucket on the moto server: what a test needs to reach it."""

    server: MotoServer
    name: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self) -> Any:
        return self.server.client()

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``, sorted."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key: str, data: bytes = b"") -> None:
        self.client().put_object(Bucket=self.name, Key=key, Body=data)

    def multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        answer = self.client().list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in answer.get("Uploads", ())]

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        return self.server.storage_options(self.name, **extra)

    def environ(self) -> dict[str, str]:
        """Environment for another process using ``tests.settings_s3``."""
        return {
            "FTPSERVER_TEST_S3_ENDPOINT": self.endpoint,
            "FTPSERVER_TEST_S3_BUCKET": self.name,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }


@dataclass
class MotoServer:
    """A running ``moto_server`` process."""

    endpoint: str
    process: subprocess.Popen | None = None

    @classmethod
    def start(cls, host: str = "127.0.0.1", timeout: float = 60) -> MotoServer:
        """Start ``moto_server`` on a free port and wait until it answers."""
        command = moto_server_command()
        if command is None:
            raise RuntimeError("moto_server not found (pip install 'moto[server]')")
        last_error = "did not start"
        for _ in range(5):  # the free port may be taken before moto binds it
            port = free_port(host)
            endpoint = f"http://{host}:{port}"
            process = subprocess.Popen(
                [*command, "-H", host, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
            )
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                if _answers(endpoint):
                    return cls(endpoint, process)
                time.sleep(0.1)
            last_error = f"exited with {process.poll()}" if process.poll() is not None else "hung"
            process.kill()
            process.wait(10)
        raise RuntimeError(f"moto_server {last_error}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> Any:
        """A plain boto3 S3 client for this endpoint (not counted)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def create_bucket(self, name: str | None = None) -> S3Bucket:
        name = name or f"test-{os.getpid()}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return S3Bucket(self, name)

    def storage_options(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``STORAGES[...]["OPTIONS"]`` for ``S3Storage`` on ``bucket`` here."""
        return {
            "bucket_name": bucket,
            "endpoint_url": self.endpoint,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region_name": REGION,
            "addressing_style": "path",
            "signature_version": "s3v4",
            "use_ssl": False,
            "file_overwrite": True,
            "querystring_auth": False,
            **extra,
        }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """``moto_server`` on a free loopback port, for the whole test session."""
    if S3Storage is None or moto_server_command() is None:
        pytest.skip("needs django-storages[s3] and moto[server] (the 'test' extra)")
    server = MotoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> S3Bucket:
    """A new, empty bucket for this test."""
    return moto_server.create_bucket()


@pytest.fixture
def s3_requests() -> Iterator[RequestLog]:
    requests.clear()
    yield requests
    requests.clear()


@pytest.fixture
def s3_settings(settings: Any, s3_bucket: S3Bucket, s3_requests: RequestLog) -> Any:
    """Serve ``s3_bucket`` through ``StorageFS`` (set before starting a server)."""
    settings.STORAGES = {
        "default": {
            "BACKEND": "tests.s3.CountingS3Storage",
            "OPTIONS": s3_bucket.storage_options(),
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"
    return settings


@dataclass(frozen=True)
class S3Path:
    """A name under an account's home in the bucket, used as tests use ``home / name``.

    ``str()`` is the path ``StorageFS`` reports in signals (``/alice/x``); the
    methods read and write the bucket directly, as ``Path``'s would the disk.
    """

    bucket: S3Bucket
    key: str  # without a trailing slash; "" for the bucket's root

    def __truediv__(self, name: str) -> S3Path:
        return S3Path(self.bucket, f"{self.key}/{name}".strip("/"))

    def __str__(self) -> str:
        return "/" + self.key

    def __fspath__(self) -> str:
        return str(self)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Path:
        return S3Path(self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    def relative_to(self, other: S3Path) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    def rglob(self, pattern: str) -> Iterator[S3Path]:
        """Everything under this folder (``pattern`` must be ``*``): files and folders."""
        assert pattern == "*"
        found = set()
        for key in self.bucket.keys(self._prefix()):
            parts = key[len(self._prefix()) :].rstrip("/").split("/")
            for depth in range(1, len(parts) + 1):
                found.add("/".join(parts[:depth]))
        return iter([self / name for name in sorted(found) if name])

    def read_bytes(self) -> bytes:
        return self.bucket.get(self.key)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> int:
        self.bucket.put(self.key, data)
        return len(data)

    def write_text(self, text: str) -> int:
        return self.write_bytes(text.encode())

    def is_file(self) -> bool:
        return self.key in self.bucket.keys(self.key)

    def is_dir(self) -> bool:
        return any(key.startswith(self.key + "/") for key in self.bucket.keys(self.key + "/"))

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.bucket.put(self.key + "/")

    def _prefix(self) -> str:
        return self.key + "/" if self.key else ""

    def resolve(self) -> S3Path:
        return self

    def is_relative_to(self, other: S3Path) -> bool:
        return self.key == other.key or self.key.startswith(other._prefix())

    def iterdir(self) -> Iterator[S3Path]:
        names = set()
        for key in self.bucket.keys(self._prefix()):
            name = key[len(self._prefix()) :].split("/", 1)[0]
            if name:
                names.add(name)
        return iter([self / name for name in sorted(names)])

    def stat(self) -> Any:
        head = self.bucket.client().head_object(Bucket=self.bucket.name, Key=self.key)

        class _Stat:
            st_size = head["ContentLength"]
            st_mtime = head["LastModified"].timestamp()

        return _Stat()
