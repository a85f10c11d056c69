"""``StorageFS`` on S3: django-storages' ``S3Storage`` served as the bucket allows.

The generic ``StorageFS`` code asks a storage one question per name
(``exists``, ``size``, ``get_modified_time``): on S3 each is an HTTP
request, and a ``LIST`` of 1,000 objects cost about 3,000 of them. This
patch talks to the bucket through the storage's own boto3 client instead:

Listing
    ``LIST``/``MLSD``/``NLST``/``STAT`` of a folder read names, sizes and
    modification times from ``ListObjectsV2`` pages (delimiter ``/``): one
    request per 1,000 entries; sub-folders are the common prefixes. The
    entries answer the per-name ``stat()`` calls pyftpdlib makes while it
    formats the listing.
One name
    "what is this name?" is one ``ListObjectsV2`` with the name as prefix:
    the object itself (size, time) or the ``name/`` common prefix (a
    folder). ``SIZE``, ``MDTM`` and ``MLST`` cost that one request.
Uploads
    ``STOR``/``APPE``/``STOU`` stream into a multipart upload, one part
    (``FTPSERVER_S3_PART_SIZE``) at a time, a few parts in flight
    (``FTPSERVER_S3_UPLOAD_THREADS``); a file smaller than one part is one
    ``PutObject``. Completing is atomic: readers see the old object or the
    new one. An upload cut off is aborted, leaving no object and no parts.
    ``APPE`` and ``REST`` + ``STOR`` keep the existing bytes server-side
    (``UploadPartCopy``) when there are at least 5 MiB of them, else read
    them back into the first part.
Downloads
    ranged ``GetObject`` requests of 8 MiB, two ahead of the client (one
    request for a smaller file); ``REST`` + ``RETR`` starts at the offset.
Folders
    a folder is a prefix with something under it; ``MKD`` writes an empty
    ``name/`` marker object so an empty folder shows, ``RMD`` deletes the
    marker of an empty folder and refuses any other, ``RNFR``/``RNTO`` of a
    file is a server-side ``CopyObject`` then ``DeleteObject``, of a folder
    the same for each object (at most ``FOLDER_RENAME_LIMIT`` of them).

Keys are the storage's names (``S3Storage``'s ``location`` prefix applied
by the storage's own ``_normalize_name``), so homes are key prefixes and a
name the storage refuses is refused here too. Names longer than 255 bytes
and keys of 1,024 bytes or more are refused (``File name too long``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import posixpath
import stat as stat_module
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pyftpdlib.filesystems import FilesystemError

from ..conf import conf
from .base import (
    DIR,
    FILE,
    PseudoStat,
    StorageFile,
    StoragePatch,
    _error,
    storage_name,
)

if TYPE_CHECKING:
    from .fs import StorageFS

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.s3")

__all__ = ["S3Boto3StoragePatch", "S3Download", "S3Upload", "MIN_PART_SIZE"]

MiB = 1024 * 1024
#: S3's smallest part (every part but the last) and largest copied range.
MIN_PART_SIZE = 5 * MiB
MAX_COPY_PART = 5 * 1024 * MiB
#: S3's limit on the number of parts of one upload.
MAX_PARTS = 10_000
#: Longest name (one path segment) served, as on the usual filesystems a
#: bucket is synced with, and S3's longest key, in UTF-8 bytes.
MAX_NAME = 255
MAX_KEY = 1024
#: A folder rename copies each object; above this many it answers 550.
FOLDER_RENAME_LIMIT = 1000


def _client_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: BaseException) -> bool:
    return _client_error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _file_stat(path: str, size: int, mtime: float) -> PseudoStat:
    return PseudoStat(
        st_size=size,
        st_mtime=mtime,
        st_nlink=1,
        st_mode=stat_module.S_IFREG | 0o644,
        st_uid=0,
        st_gid=0,
        st_dev=0,
        st_ino=zlib.crc32(path.encode("utf-8", "surrogateescape")),
        st_atime=mtime,
        st_ctime=mtime,
    )


def _dir_stat(path: str, mtime: float | None = None) -> PseudoStat:
    """A folder's stat. S3 keeps no time for a prefix: the time asked is shown."""
    when = time.time() if mtime is None else mtime
    return PseudoStat(
        st_size=0,
        st_mtime=when,
        st_nlink=1,
        st_mode=stat_module.S_IFDIR | 0o755,
        st_uid=0,
        st_gid=0,
        st_dev=0,
        st_ino=zlib.crc32(path.encode("utf-8", "surrogateescape")),
        st_atime=when,
        st_ctime=when,
    )


_client_lock = threading.Lock()


def shared_client(storage: Any) -> Any:
    """One boto3 client per storage, shared by every session and upload thread.

    django-storages makes a boto3 session and client per thread, and the
    server runs each FTP session on a thread of its own: every session
    would parse S3's service model again (a few tenths of a second of CPU
    and several MiB). boto3 clients are thread-safe; its connection pool
    (``max_pool_connections`` in ``client_config``, 10 by default) is then
    shared too.
    """
    client = getattr(storage, "_ftpserver_s3_client", None)
    if client is None:
        with _client_lock:
            client = getattr(storage, "_ftpserver_s3_client", None)
            if client is None:
                client = storage.connection.meta.client
                storage._ftpserver_s3_client = client
    return client


class Bucket:
    """The storage's bucket, client and key naming, for one session."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.name: str = storage.bucket_name
        self.client = shared_client(storage)

    def key(self, path: str) -> str:
        """The object key of fs path ``path`` (the storage's ``location`` applied).

        Not through django-storages' ``clean_name()``: it turns backslashes
        into slashes *after* normalising, so ``a/..\\..\\b`` would become
        ``b``, outside the home. Here a backslash is a character of the key.
        """
        name = storage_name(path)
        if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME for part in name.split("/")):
            raise _error(errno.ENAMETOOLONG)
        key = self.storage._normalize_name(name) if name else self.root_key()
        if len(key.encode("utf-8", "surrogateescape")) >= MAX_KEY:  # room for a folder's "/"
            raise _error(errno.ENAMETOOLONG)
        return key

    def root_key(self) -> str:
        return (getattr(self.storage, "location", "") or "").strip("/")

    def prefix(self, path: str) -> str:
        """The prefix of the objects inside folder ``path`` (``""`` for the bucket root)."""
        key = self.key(path).rstrip("/")
        return key + "/" if key else ""


# --------------------------------------------------------------------------
# Files


class S3Download(StorageFile):
    """An object read with ranged ``GetObject`` requests, a few ahead of the client.

    The object is read in ranges of ``chunk_size`` bytes, ``ahead`` of them
    in flight while the client receives the current one (boto3's own
    downloads do the same), so memory is bounded by ``(ahead + 1)`` ranges.
    A file of one range is one request. ``seek()`` (``REST`` + ``RETR``)
    only moves where the first range starts: nothing is asked before the
    first ``read()``. Every range asks for the version (ETag) looked up
    when the file was opened, so a file replaced meanwhile fails the
    transfer instead of mixing two versions.
    """

    def __init__(
        self,
        bucket: Bucket,
        path: str,
        key: str,
        size: int,
        etag: str | None,
        *,
        chunk_size: int = 8 * MiB,
        ahead: int = 2,
    ) -> None:
        super().__init__(None, path)
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.chunk_size = max(MiB, chunk_size)
        self.ahead = max(1, ahead)
        self.position = 0
        self._next = 0  # where the next range to ask for starts
        self._ranges: deque[Future] = deque()
        self._current = memoryview(b"")
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def mode(self) -> str:
        return "rb"

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        raise io.UnsupportedOperation("not a file on disk")

    def _get(self, start: int, end: int) -> bytes:
        params: dict[str, Any] = {
            "Bucket": self.bucket.name,
            "Key": self.key,
            "Range": f"bytes={start}-{end}",
        }
        if self.etag:
            params["IfMatch"] = self.etag
        return self.bucket.client.get_object(**params)["Body"].read()

    def _fill(self) -> None:
        """Keep ``ahead`` ranges asked for past the one being read."""
        while self._next < self.size and len(self._ranges) < self.ahead:
            start, end = self._next, min(self.size, self._next + self.chunk_size) - 1
            self._next = end + 1
            if self._pool is None:
                if self._next >= self.size and not self._ranges:
                    # The whole rest in one range: no thread needed.
                    done: Future = Future()
                    done.set_result(self._get(start, end))
                    self._ranges.append(done)
                    continue
                self._pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="s3-download")
            self._ranges.append(self._pool.submit(self._get, start, end))

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.size:
            return b""
        if not self._current:
            self._fill()
            if not self._ranges:
                return b""
            self._current = memoryview(self._ranges.popleft().result())
            self._fill()
        count = len(self._current) if size is None or size < 0 else size
        data = bytes(self._current[:count])
        self._current = self._current[len(data) :]
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.position
        elif whence == io.SEEK_END:
            offset += self.size
        offset = max(0, offset)
        if offset != self.position:
            self._drop()
            self.position = self._next = offset
        return self.position

    def tell(self) -> int:
        return self.position

    def _drop(self) -> None:
        for future in self._ranges:
            future.cancel()
        self._ranges.clear()
        self._current = memoryview(b"")

    def close(self) -> None:
        self._drop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._closed = True


class S3Upload(StorageFile):
    """An upload streamed into S3 as the bytes arrive.

    Up to one part is buffered in memory; full parts go to a multipart
    upload, at most ``threads`` of them in flight, so the memory an upload
    holds is bounded by ``(threads + 1) * part_size`` whatever the size of
    the file. Nothing is written to local disk. A file that ends before the
    first part is full is stored with one ``PutObject``.

    ``keep`` bytes of the existing object come first (``APPE``: all of it;
    ``REST`` + ``STOR``: up to the offset, set through ``seek()``); they are
    copied server-side when there are enough of them to make parts.

    Closing completes the upload if the data channel finished the transfer,
    else aborts it: no object, no orphaned parts.
    """

    def __init__(
        self,
        fs: StorageFS,
        bucket: Bucket,
        path: str,
        key: str,
        *,
        part_size: int,
        threads: int,
        existing: PseudoStat | None = None,
        existing_etag: str | None = None,
        keep: int = 0,
    ) -> None:
        super().__init__(None, path, fs=fs)
        self.fs: StorageFS = fs
        self.bucket = bucket
        self.key = key
        self.part_size = max(MIN_PART_SIZE, part_size)
        self.threads = max(1, threads)
        self.existing_size = existing.st_size if existing is not None else 0
        self.existing_etag = existing_etag
        self.keep = keep
        self._started = False  # the existing bytes to keep are in place
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: deque[Future] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def mode(self) -> str:
        return "wb"

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        raise io.UnsupportedOperation("not a file on disk")

    def tell(self) -> int:
        return self.keep + self._written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only before writing: where the new bytes start (``REST``)."""
        if self._started or self._written:
            raise io.UnsupportedOperation("cannot seek in an upload once started")
        if whence != io.SEEK_SET or not 0 <= offset <= self.existing_size:
            raise OSError(errno.EINVAL, "invalid offset")
        self.keep = offset
        return offset

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise OSError(errno.EIO, "Storage error")
        if not self._started:
            self._start()
        if data:
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            self._written += len(data)
            while self._buffered >= self.part_size:
                self._send_part(self._take(self.part_size))
        return len(data)

    # --- parts

    def _take(self, size: int) -> bytes:
        """The first ``size`` buffered bytes (all if fewer), copied once."""
        if size >= self._buffered:
            chunks, self._chunks, self._buffered = self._chunks, [], 0
            return b"".join(chunks)
        # Cut inside the chunk where the part ends; only that chunk is sliced.
        total = 0
        for index, chunk in enumerate(self._chunks):
            if total + len(chunk) >= size:
                cut = size - total
                head = self._chunks[:index] + [chunk[:cut]]
                self._chunks = [chunk[cut:]] + self._chunks[index + 1 :]
                if not self._chunks[0]:
                    del self._chunks[0]
                self._buffered -= size
                return b"".join(head)
            total += len(chunk)
        raise AssertionError("unreachable: fewer bytes buffered than counted")

    def _start(self) -> None:
        """Put the existing bytes to keep in place: copied server-side, or buffered."""
        self._started = True
        if not self.keep:
            return
        if self.keep < MIN_PART_SIZE:
            answer = self.bucket.client.get_object(
                Bucket=self.bucket.name,
                Key=self.key,
                Range=f"bytes=0-{self.keep - 1}",
                **({"IfMatch": self.existing_etag} if self.existing_etag else {}),
            )
            head = answer["Body"].read()
            if len(head) != self.keep:
                raise OSError(errno.EIO, "existing file changed")
            self._chunks.insert(0, head)
            self._buffered += len(head)
            return
        self._begin()
        count = -(-self.keep // MAX_COPY_PART)  # equal ranges, each >= 5 MiB
        step = -(-self.keep // count)
        for start in range(0, self.keep, step):
            end = min(self.keep, start + step) - 1
            number = len(self._parts) + 1
            source: dict[str, Any] = {"Bucket": self.bucket.name, "Key": self.key}
            params: dict[str, Any] = {}
            if self.existing_etag:
                params["CopySourceIfMatch"] = self.existing_etag
            answer = self.bucket.client.upload_part_copy(
                Bucket=self.bucket.name,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceRange=f"bytes={start}-{end}",
                **params,
            )
            self._parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})

    def _begin(self) -> None:
        if self._upload_id is None:
            params = self.bucket.storage._get_write_parameters(self.key)
            answer = self.bucket.client.create_multipart_upload(
                Bucket=self.bucket.name, Key=self.key, **params
            )
            self._upload_id = answer["UploadId"]

    def _send_part(self, data: bytes) -> None:
        self._begin()
        number = len(self._parts) + len(self._pending) + 1
        if number > MAX_PARTS:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="s3-upload")
        while len(self._pending) >= self.threads:
            self._collect(self._pending.popleft())
        self._pending.append(self._pool.submit(self._upload_part, number, data))

    def _upload_part(self, number: int, data: bytes) -> dict[str, Any]:
        answer = self.bucket.client.upload_part(
            Bucket=self.bucket.name,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _collect(self, future: Future) -> None:
        try:
            self._parts.append(future.result())
        except BaseException as exc:
            self._error = exc
            logger.warning("Upload of a part of %s failed: %s", self.key, exc)
            raise OSError(errno.EIO, "Storage error") from exc

    def _drain(self) -> None:
        """Wait for every part in flight; the first failure is raised."""
        failure: BaseException | None = None
        while self._pending:
            try:
                self._collect(self._pending.popleft())
            except OSError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    # --- the end

    def _complete(self) -> None:
        if not self._started:
            self._start()
        if self._upload_id is None:
            data = self._take(self._buffered)
            params = self.bucket.storage._get_write_parameters(self.key)
            self.bucket.client.put_object(
                Bucket=self.bucket.name, Key=self.key, Body=data, **params
            )
            return
        if self._buffered or not self._parts and not self._pending:
            self._send_part(self._take(self._buffered))
        self._drain()
        parts = sorted(self._parts, key=lambda part: part["PartNumber"])
        self.bucket.client.complete_multipart_upload(
            Bucket=self.bucket.name,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._upload_id = None

    def abort(self) -> None:
        """Drop the upload: wait for the parts in flight, then abort it."""
        self._chunks, self._buffered = [], 0
        with contextlib.suppress(OSError):
            self._drain()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self.bucket.client.abort_multipart_upload(
                    Bucket=self.bucket.name, Key=self.key, UploadId=upload_id
                )
            except Exception as exc:  # logged; a bucket lifecycle rule is the safety net
                logger.error("Could not abort the upload of %s: %s", self.key, exc)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._error is None and self.fs._upload_finished(self):
                self._complete()
            else:
                logger.info("Upload of %s not complete; nothing stored.", self.key)
                self.abort()
        except Exception as exc:
            logger.warning("Could not store %s: %s", self.key, exc)
            self.abort()
            self.fs._upload_failed(self, "Storage error")
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._chunks = []
            self.fs._changed()


# --------------------------------------------------------------------------
# The patch


class S3Boto3StoragePatch(StoragePatch):
    """django-storages' ``S3Storage`` (and ``S3Boto3Storage``): see the module's docstring."""

    literal_backslashes = True
    patch_methods = (
        "_kind",
        "_storage_listing",
        "stat",
        "getsize",
        "getmtime",
        "_open_read",
        "_open_write",
        "mkdir",
        "rmdir",
        "rename",
        "remove",
    )

    @classmethod
    def apply(cls, fs: StorageFS) -> None:
        """Patch ``fs``; it writes atomically, and its storage's client gets made now.

        ``writes_atomically`` lets ``FTPSERVER_UPLOAD_MODE = "atomic"`` write
        straight to the final key (see ``policy/uploads.py``). Making the boto3
        client parses S3's service model, about 0.2 s of CPU once per
        process: begun on a thread of its own at the first login, it is
        ready by the time the session's first command needs the bucket
        instead of adding to that command's time.
        """
        super().apply(fs)
        fs.writes_atomically = True
        storage = fs.storage
        if getattr(storage, "_ftpserver_s3_client", None) is None:
            threading.Thread(
                target=_make_client, args=(storage,), name="s3-client", daemon=True
            ).start()

    @staticmethod
    def _bucket(fs: StorageFS) -> Bucket:
        bucket = getattr(fs, "_s3_bucket", None)
        if bucket is None or bucket.storage is not fs.storage:
            bucket = fs._s3_bucket = Bucket(fs.storage)
        return bucket

    # --- what is at a path

    def _probe(self: StorageFS, path: str) -> PseudoStat | None:  # type: ignore[misc]
        """The stat of ``path`` (a file or a folder) or None, with one request.

        ``ListObjectsV2`` with the key as prefix and delimiter ``/`` shows
        the object itself first and the folder as the common prefix
        ``key/``; names between the two (``key.txt``, ``key-1``) come in
        between, so only when more than a page of them stand in the way is a
        second look needed.
        """
        cached = self._cached_stat(path)
        if cached is not None:
            return cached or None
        if self._is_known_dir(path):
            return _dir_stat(path)
        bucket = S3Boto3StoragePatch._bucket(self)
        key = bucket.key(path)
        answer = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=key, Delimiter="/")
        found: PseudoStat | None = None
        for item in answer.get("Contents", ()):
            if item["Key"] == key:
                found = _file_stat(path, item["Size"], item["LastModified"].timestamp())
                self._remember_etag(path, item.get("ETag"))
                break
        if found is None:
            prefixes = {entry["Prefix"] for entry in answer.get("CommonPrefixes", ())}
            if key + "/" in prefixes:
                found = _dir_stat(path)
            elif answer.get("IsTruncated"):
                found = S3Boto3StoragePatch._probe_slowly(self, bucket, path, key)
        self._remember_stat(path, found)
        return found

    def _probe_slowly(  # type: ignore[misc]
        self: StorageFS, bucket: Bucket, path: str, key: str
    ) -> PseudoStat | None:
        try:
            head = bucket.client.head_object(Bucket=bucket.name, Key=key)
            self._remember_etag(path, head.get("ETag"))
            return _file_stat(path, head["ContentLength"], head["LastModified"].timestamp())
        except Exception as exc:
            if not _is_not_found(exc):
                raise
        answer = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=key + "/", MaxKeys=1)
        return _dir_stat(path) if answer.get("KeyCount") else None

    def _kind(self: StorageFS, path: str) -> str | None:  # type: ignore[misc]
        found = S3Boto3StoragePatch._probe(self, path)
        if found is None:
            return None
        return DIR if stat_module.S_ISDIR(found.st_mode) else FILE

    def stat(self: StorageFS, path: str) -> PseudoStat:  # type: ignore[misc]
        found = S3Boto3StoragePatch._probe(self, path)
        if found is None:
            raise _error(errno.ENOENT)
        return found

    def getsize(self: StorageFS, path: str) -> int:  # type: ignore[misc]
        return self.stat(path).st_size

    def getmtime(self: StorageFS, path: str) -> float:  # type: ignore[misc]
        return self.stat(path).st_mtime

    # --- listing

    def _storage_listing(  # type: ignore[misc]
        self: StorageFS, path: str
    ) -> tuple[list[str], list[str], dict[str, PseudoStat]]:
        """Names and stats of folder ``path`` from ``ListObjectsV2`` pages."""
        bucket = S3Boto3StoragePatch._bucket(self)
        prefix = bucket.prefix(path)
        dirs: list[str] = []
        files: list[str] = []
        stats: dict[str, PseudoStat] = {}
        etags: dict[str, str] = {}
        now = time.time()
        pages = bucket.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for entry in page.get("CommonPrefixes", ()):
                name = entry["Prefix"][len(prefix) :].rstrip("/")
                if _servable(name) and name not in stats:
                    dirs.append(name)
                    stats[name] = _dir_stat(posixpath.join(path, name), now)
            for item in page.get("Contents", ()):
                name = item["Key"][len(prefix) :]
                if not _servable(name):
                    continue  # the folder's own marker, or a name no path can reach
                child = posixpath.join(path, name)
                files.append(name)
                stats[name] = _file_stat(child, item["Size"], item["LastModified"].timestamp())
                if item.get("ETag"):
                    etags[child] = item["ETag"]
        for child, etag in etags.items():
            self._remember_etag(child, etag)
        return dirs, files, stats

    # --- files

    def _open_read(self: StorageFS, path: str) -> StorageFile:  # type: ignore[misc]
        found = S3Boto3StoragePatch._probe(self, path)
        if found is None or stat_module.S_ISDIR(found.st_mode):
            raise _error(errno.EISDIR if found is not None else errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        return S3Download(bucket, path, bucket.key(path), found.st_size, self._etag(path))

    def _open_write(self: StorageFS, path: str, mode: str) -> StorageFile:  # type: ignore[misc]
        found = S3Boto3StoragePatch._probe(self, path)
        if found is not None and stat_module.S_ISDIR(found.st_mode):
            raise _error(errno.EISDIR)
        if self._kind(posixpath.dirname(path)) != DIR:
            raise _error(errno.ENOENT)
        if "r" in mode and found is None:
            raise _error(errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        keep = found.st_size if (found is not None and "a" in mode) else 0
        return S3Upload(
            self,
            bucket,
            path,
            bucket.key(path),
            part_size=conf.S3_PART_SIZE,
            threads=conf.S3_UPLOAD_THREADS,
            existing=found,
            existing_etag=self._etag(path),
            keep=keep,
        )

    # --- folders

    def mkdir(self: StorageFS, path: str) -> None:  # type: ignore[misc]
        """An empty ``name/`` marker object, so the empty folder shows."""
        if self._kind(path) is not None:
            raise _error(errno.EEXIST)
        if self._kind(posixpath.dirname(path)) != DIR:
            raise _error(errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        self._changed()
        bucket.client.put_object(Bucket=bucket.name, Key=bucket.prefix(path), Body=b"")

    def rmdir(self: StorageFS, path: str) -> None:  # type: ignore[misc]
        kind = self._kind(path)
        if kind != DIR:
            raise _error(errno.ENOTDIR if kind == FILE else errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        prefix = bucket.prefix(path)
        answer = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=prefix, MaxKeys=2)
        if any(item["Key"] != prefix for item in answer.get("Contents", ())):
            raise _error(errno.ENOTEMPTY)
        self._changed()
        self._session_dirs.discard(path)
        bucket.client.delete_object(Bucket=bucket.name, Key=prefix)

    # --- files and folders

    def remove(self: StorageFS, path: str) -> None:  # type: ignore[misc]
        kind = self._kind(path)
        if kind != FILE:
            raise _error(errno.EISDIR if kind == DIR else errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        self._changed()
        bucket.client.delete_object(Bucket=bucket.name, Key=bucket.key(path))

    def rename(self: StorageFS, src: str, dst: str) -> None:  # type: ignore[misc]
        """Server-side copy, then delete the source; a folder object by object."""
        found = S3Boto3StoragePatch._probe(self, src)
        if found is None:
            raise _error(errno.ENOENT)
        if src == dst:
            return
        if self._kind(dst) == DIR:
            raise _error(errno.EISDIR)
        if self._kind(posixpath.dirname(dst)) != DIR:
            raise _error(errno.ENOENT)
        bucket = S3Boto3StoragePatch._bucket(self)
        self._changed()
        if not stat_module.S_ISDIR(found.st_mode):
            _copy(bucket, bucket.key(src), bucket.key(dst), found.st_size)
            bucket.client.delete_object(Bucket=bucket.name, Key=bucket.key(src))
            return
        if (dst.rstrip("/") + "/").startswith(src.rstrip("/") + "/"):
            raise FilesystemError("Cannot move a folder into itself")
        source, target = bucket.prefix(src), bucket.prefix(dst)
        items: list[dict[str, Any]] = []
        pages = bucket.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=source
        )
        for page in pages:
            items.extend(page.get("Contents", ()))
            if len(items) > FOLDER_RENAME_LIMIT:
                raise FilesystemError(
                    f"Folder has more than {FOLDER_RENAME_LIMIT} objects; "
                    "object storage renames folders object by object"
                )
        for item in items:
            _copy(bucket, item["Key"], target + item["Key"][len(source) :], item["Size"])
        for start in range(0, len(items), 1000):
            batch = [{"Key": item["Key"]} for item in items[start : start + 1000]]
            bucket.client.delete_objects(
                Bucket=bucket.name, Delete={"Objects": batch, "Quiet": True}
            )
        self._changed()


def _make_client(storage: Any) -> None:
    try:
        shared_client(storage)
    except Exception as exc:  # the session's own request reports it
        logger.debug("Could not make the S3 client yet: %s", exc)


def _servable(name: str) -> bool:
    """Whether a listed name can be reached as a path (not ``""``, ``.``, ``..``)."""
    return name not in ("", ".", "..") and "\x00" not in name


def _copy(bucket: Bucket, source: str, target: str, size: int) -> None:
    """Server-side copy: one ``CopyObject``, or a multipart copy above 5 GiB."""
    origin = {"Bucket": bucket.name, "Key": source}
    if size <= MAX_COPY_PART:
        bucket.client.copy_object(
            Bucket=bucket.name, Key=target, CopySource=origin, MetadataDirective="COPY"
        )
        return
    upload_id = bucket.client.create_multipart_upload(Bucket=bucket.name, Key=target)["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, size, MAX_COPY_PART), 1):
            end = min(size, start + MAX_COPY_PART) - 1
            answer = bucket.client.upload_part_copy(
                Bucket=bucket.name,
                Key=target,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=origin,
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
        bucket.client.complete_multipart_upload(
            Bucket=bucket.name, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=target, UploadId=upload_id)
        raise
