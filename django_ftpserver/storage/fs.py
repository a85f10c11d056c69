"""``StorageFS``: serve a Django storage over FTP.

Enable it with ``FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"``
(the 1.0 path, which stays; the class lives here).
It serves ``storages["default"]``; a subclass picks another storage with
``storage_alias`` or with ``storage_class`` (any callable returning a
storage, as in django-ftpserver 1.0).

Paths. pyftpdlib works with two kinds of paths: the client's ("ftp paths")
and the filesystem's ("fs paths"), and it checks every fs path with
``validpath()`` before using it. Here fs paths are POSIX absolute paths
rooted at the storage root, so the storage name of fs path ``/alice/a.txt``
is ``alice/a.txt``. The account's home directory is a prefix inside the
storage: home ``alice`` or ``/alice`` means the fs root ``/alice``, home
``""`` or ``/`` the whole storage. pyftpdlib's own normalisation keeps
``..`` and absolute client paths inside that root, and ``validpath()``
rejects what resolves outside it (on ``FileSystemStorage`` this includes
symlinks pointing out of the home).

Storages. The generic code needs only the ``Storage`` API (``open``,
``save``, ``delete``, ``exists``, ``listdir``, ``size``,
``get_modified_time``). Storages that can do better get a ``StoragePatch``
(picked by class name along the storage's MRO, so subclasses are served
too): ``FileSystemStorage`` has real directories, real files (``sendfile``
for downloads, writes straight into the file, renames with ``os.rename``);
django-storages' ``S3Storage`` is served through its boto3 client, listings
from ``ListObjectsV2`` pages and uploads as multipart uploads
(``storage.s3``); the Google Cloud storages treat any prefix with
something under it as a directory. A patch may be named by its dotted path
in ``StorageFS.patches``, imported on first use.

Listings. A storage whose listing carries sizes and times (S3) gives them
with the names; pyftpdlib's ``format_list``/``format_mlsx`` then ``stat()``
each name, and those calls are answered from the listing, kept while the
listing is being sent (``LISTING_CACHE_SECONDS`` after its last use).

Errors. Anything the storage cannot do, or fails at, reaches the client as a
one-line 5xx reply: every operation turns foreign exceptions into
``FilesystemError`` (pyftpdlib would otherwise drop the connection), and the
predicates (``isdir``, ``isfile``...) never raise, because pyftpdlib calls
some of them outside its ``try`` blocks.
"""

from __future__ import annotations

import errno
import io
import logging
import posixpath
import shutil
import stat as stat_module
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string
from pyftpdlib.filesystems import AbstractedFS, FilesystemError

from .base import (
    DIR,
    FILE,
    PseudoStat,
    StorageFile,
    StoragePatch,
    _error,
    _operation,
    _predicate,
    home_root,
    storage_name,
)
from .gcs import DjangoGCloudStoragePatch, GoogleCloudStoragePatch
from .local import FileSystemStoragePatch

# Named as in 1.0, when all of it was ``filesystems.py``: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.filesystems")


#: How long a directory listing answers "what is this name?" questions for
#: storages that need a listing to tell files from directories. Short: it
#: only spares the per-entry lookups of one LIST, not other sessions' changes.
LISTING_CACHE_SECONDS = 2.0


#: Uploads to storages without writable files are spooled here: in memory up
#: to this size, then in a temporary file, never whole in memory.
SPOOL_MAX_MEMORY = 1024 * 1024


#: ``_cached_stat()``'s answer for a name a fresh listing does not hold.
ABSENT = False


class Listing:
    """One folder's listing as a session saw it: names, and stats if the storage gave them.

    ``used`` is when it was fetched or last read while formatting a LIST or
    MLSD, so a listing being sent does not expire half-way.
    """

    __slots__ = ("used", "dirs", "files", "stats")

    def __init__(
        self, dirs: frozenset[str], files: frozenset[str], stats: dict[str, Any] | None
    ) -> None:
        self.used = time.monotonic()
        self.dirs = dirs
        self.files = files
        self.stats = stats

    def fresh(self) -> bool:
        return time.monotonic() - self.used < LISTING_CACHE_SECONDS


class SpooledUpload(StorageFile):
    """An upload to a storage whose files cannot be written in place.

    The data goes to a spool (memory up to ``SPOOL_MAX_MEMORY``, then a
    temporary file) and is handed to ``storage.save()`` when pyftpdlib closes
    the file at the end of a complete transfer. An aborted or failed
    transfer is discarded, so the previous version of the file survives. A
    storage that refuses the file turns the transfer's reply into a 451.

    Append (APPE) and resume (REST + STOR) work by copying the existing file
    into the spool first, at the cost of moving it twice.
    """

    def __init__(self, fs: StorageFS, path: str, spool: IO[bytes]) -> None:
        super().__init__(spool, path, fs=fs)
        self.fs: StorageFS = fs

    @property
    def mode(self) -> str:
        return "wb"

    def fileno(self) -> int:
        raise io.UnsupportedOperation("not a file on disk")

    def close(self) -> None:
        if self.file.closed:
            return
        try:
            finished = self.fs._upload_finished(self)
            if finished:
                self.file.seek(0)
                self.fs._save(self.name, self.file)
            else:
                logger.info("Upload of %s not complete; nothing stored.", self.name)
        except Exception as exc:
            logger.warning("Could not store %s: %s", self.name, exc, exc_info=True)
            message = str(exc) if isinstance(exc, FilesystemError) else "Storage error"
            self.fs._upload_failed(self, message)
        finally:
            self.file.close()


class StorageFS(AbstractedFS):
    """pyftpdlib filesystem serving a Django storage.

    Use ``storage_alias`` (a key of ``settings.STORAGES``) or ``storage_class``
    (a callable returning a storage; wins when set) in a subclass to serve
    another storage than ``storages["default"]``.
    """

    storage_alias: str = "default"
    storage_class: Callable[[], Storage] | None = None
    patches: dict[str, type[StoragePatch] | str] = {
        "FileSystemStorage": FileSystemStoragePatch,
        "S3Boto3Storage": "django_ftpserver.storage.s3.S3Boto3StoragePatch",
        "S3Storage": "django_ftpserver.storage.s3.S3Boto3StoragePatch",  # django-storages 1.14+
        "DjangoGCloudStorage": DjangoGCloudStoragePatch,  # django-gcloud-storage
        "GoogleCloudStorage": GoogleCloudStoragePatch,  # django-storages
    }

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__("/", cmd_channel)
        self._patch: type[StoragePatch] | None = None
        self._listings: dict[str, Listing] = {}
        # Single names looked up (stat or ABSENT) and object versions (ETags).
        self._stats: dict[str, tuple[float, Any]] = {}
        self._etags: dict[str, str] = {}
        # Directories made by MKD on a storage without directories: they
        # exist for this session until a file is stored under them.
        self._session_dirs: set[str] = set()
        self.storage = self.get_storage()
        self.apply_patch()
        self.root = self._home_root(root)
        self._prepare_root()

    @property
    def can_set_times(self) -> bool:
        """Whether ``utime()`` (``MFMT``) works: only where a patch provides it."""
        return getattr(self.utime, "__func__", None) is not StorageFS.utime

    def get_storage(self) -> Storage:
        """The storage to serve: ``storage_class()`` when set, else ``storages[storage_alias]``."""
        factory = _static_attribute(self, "storage_class")
        if factory is None:
            return storages[self.storage_alias]
        return factory()

    def get_patch(self) -> type[StoragePatch] | None:
        """The patch for the storage's class or its nearest patched base class."""
        for klass in type(self.storage).__mro__:
            patch = self.patches.get(klass.__name__)
            if isinstance(patch, str):
                patch = import_string(patch)
            if patch is not None:
                return patch
        return None

    def apply_patch(self) -> None:
        """Apply the adjustment patch for the storage, if there is one."""
        patch = self.get_patch()
        if patch is not None:
            patch.apply(self)

    # --- hooks that patches replace

    def _home_root(self, home: str) -> str:
        return home_root(home)

    def _prepare_root(self) -> None:
        """Nothing to do: on a storage without directories the root always exists."""

    def _storage_listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.storage.listdir(storage_name(path))

    def _storage_listing(self, path: str) -> tuple[list[str], list[str], dict[str, Any] | None]:
        """``(dirs, files, stats)``: ``stats`` by name where the listing has them, else None."""
        dirs, files = self._storage_listdir(path)
        return dirs, files, None

    def _listing(self, path: str) -> tuple[frozenset[str], frozenset[str]] | None:
        """``(dirs, files)`` of directory ``path``, briefly cached; ``None`` if unlistable."""
        cached = self._listings.get(path)
        if cached is not None and cached.fresh():
            return cached.dirs, cached.files
        try:
            dirs, files, stats = self._storage_listing(path)
        except Exception as exc:
            logger.debug("listdir(%r) failed: %s", path, exc)
            return None
        listing = self._remember_listing(path, dirs, files, stats)
        return listing.dirs, listing.files

    def _remember_listing(
        self, path: str, dirs: list[str], files: list[str], stats: dict[str, Any] | None = None
    ) -> Listing:
        if len(self._listings) >= 64:  # a client walking a big tree
            self._listings.clear()
        listing = Listing(frozenset(dirs), frozenset(files), stats)
        self._listings[path] = listing
        return listing

    def _cached_stat(self, path: str) -> Any:
        """A stat known from a fresh listing or lookup, ``ABSENT``, or None (unknown)."""
        parent, base = posixpath.split(path)
        listing = self._listings.get(parent)
        if listing is not None and listing.stats is not None and listing.fresh():
            return listing.stats.get(base, ABSENT)
        known = self._stats.get(path)
        if known is not None and time.monotonic() - known[0] < LISTING_CACHE_SECONDS:
            return known[1] if known[1] is not None else ABSENT
        return None

    def _remember_stat(self, path: str, stat: Any) -> None:
        """Remember a single lookup (a stat, or None for "absent") briefly."""
        if len(self._stats) >= 1024:
            self._stats.clear()
        self._stats[path] = (time.monotonic(), stat)

    def _remember_etag(self, path: str, etag: str | None) -> None:
        if etag:
            if len(self._etags) >= 100_000:
                self._etags.clear()
            self._etags[path] = etag

    def _etag(self, path: str) -> str | None:
        """The version of the object last seen at ``path`` (S3's ETag), if known."""
        return self._etags.get(path)

    def _changed(self) -> None:
        """Forget cached listings and lookups after this session changed the storage."""
        self._listings.clear()
        self._stats.clear()
        self._etags.clear()

    def _keep_listing_while(self, basedir: str, lines: Iterator[bytes]) -> Iterator[bytes]:
        """Yield ``lines``, keeping the listing of ``basedir`` fresh as each is made."""
        for line in lines:
            listing = self._listings.get(basedir)
            if listing is not None:
                listing.used = time.monotonic()
            yield line

    def format_list(self, basedir: str, listing: list[str], ignore_err: bool = True) -> Any:
        return self._keep_listing_while(basedir, super().format_list(basedir, listing, ignore_err))

    def format_mlsx(
        self, basedir: str, listing: list[str], perms: str, facts: str, ignore_err: bool = True
    ) -> Any:
        return self._keep_listing_while(
            basedir, super().format_mlsx(basedir, listing, perms, facts, ignore_err)
        )

    def _is_known_dir(self, path: str) -> bool:
        return path in ("/", self.root) or path in self._session_dirs

    def _kind(self, path: str) -> str | None:
        """``FILE``, ``DIR`` or ``None`` (absent) for fs path ``path``.

        Generic storages have no "is this a directory" call; the parent's
        listing tells, and ``exists()`` alone cannot (some storages say True
        for directories, some False).
        """
        if self._is_known_dir(path):
            return DIR
        parent, base = posixpath.split(path)
        listing = self._listing(parent)
        if listing is not None:
            dirs, files = listing
            if base in dirs:
                return DIR
            if base in files:
                return FILE
        return None

    def _open_read(self, path: str) -> StorageFile:
        if self._kind(path) != FILE:
            raise _error(errno.EISDIR if self._kind(path) == DIR else errno.ENOENT)
        return StorageFile(self.storage.open(storage_name(path), "rb"), path)

    def _open_write(self, path: str, mode: str) -> StorageFile:
        kind = self._kind(path)
        if kind == DIR:
            raise _error(errno.EISDIR)
        if self._kind(posixpath.dirname(path)) != DIR:
            raise _error(errno.ENOENT)
        if "r" in mode and kind != FILE:
            raise _error(errno.ENOENT)
        # Closed by SpooledUpload.close(), when pyftpdlib is done with it.
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY, mode="w+b")  # noqa: SIM115
        try:
            if kind == FILE and ("a" in mode or "r" in mode):
                with self.storage.open(storage_name(path), "rb") as existing:
                    shutil.copyfileobj(existing, spool, 1024 * 1024)
                if "r" in mode:
                    spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return SpooledUpload(self, path, spool)

    def _save(self, path: str, content: IO[bytes]) -> None:
        """Store ``content`` as ``path``, replacing an existing file.

        ``Storage.save()`` overwrites only where the storage is configured
        to (S3's ``file_overwrite``, ``allow_overwrite``), else it picks
        another name; STOR must overwrite, so the old file is deleted first
        in that case. A name other than the one asked is reported as a
        failure rather than left as a surprise.
        """
        name = storage_name(path)
        if self._kind(path) == FILE and self.storage.get_available_name(name) != name:
            self.storage.delete(name)
        saved = self.storage.save(name, File(content, name=posixpath.basename(name)))
        self._changed()
        self._session_dirs.difference_update(_parents(path))
        if saved != name:
            raise FilesystemError(f"Stored as {saved!r} instead")

    def _upload_finished(self, file: StorageFile) -> bool:
        """Whether the data channel that wrote ``file`` completed its transfer."""
        channel = getattr(self.cmd_channel, "data_channel", None)
        return (
            channel is not None
            and getattr(channel, "file_obj", None) is file
            and bool(getattr(channel, "transfer_finished", False))
        )

    def _upload_failed(self, file: StorageFile, message: str) -> None:
        """Make the transfer of ``file`` end with ``451 <message>``.

        The data channel closes the file before it replies, and an exception
        raised there would leave the client without any reply; setting the
        channel's pending reply is the only way to report the failure.
        """
        channel = getattr(self.cmd_channel, "data_channel", None)
        if channel is None or getattr(channel, "file_obj", None) is not file:
            return
        channel.transfer_finished = False
        channel._resp = (f"451 {message}; transfer aborted.", logger.warning)

    # --- path conversion: POSIX fs paths on every platform

    def ftpnorm(self, ftppath: str) -> str:
        path = ftppath if ftppath.startswith("/") else posixpath.join(self.cwd, ftppath)
        path = posixpath.normpath(path)
        while path.startswith("//"):
            path = path[1:]
        return path if path.startswith("/") else "/"

    def ftp2fs(self, ftppath: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, self.ftpnorm(ftppath).lstrip("/")))

    def fs2ftp(self, fspath: str) -> str:
        path = posixpath.normpath(posixpath.join(self.root, fspath))
        if not self.validpath(path):
            return "/"
        if self.root == "/":
            return path
        return path[len(self.root) :] or "/"

    def validpath(self, path: str) -> bool:
        """Whether ``path`` (after ``realpath()``) lies inside the home."""
        root = self.realpath(self.root)
        real = self.realpath(path)
        if not (root.startswith("/") and real.startswith("/")):
            return False
        root = root.rstrip("/") + "/"
        if "\\" in path and not (self._patch and self._patch.literal_backslashes):
            # Storages such as django-storages' treat "\\" as a separator
            # after checking the name: "a/..\\..\\b" would leave the home.
            return False
        return (real.rstrip("/") + "/").startswith(root)

    def realpath(self, path: str) -> str:
        # Not normpath("/" + path): POSIX keeps a leading "//", and the same
        # path must have one spelling (lookups are cached by path).
        return posixpath.normpath("/" + path.lstrip("/"))

    # --- files

    @_operation
    def open(self, filename: str, mode: str) -> StorageFile:
        """Open fs path ``filename``; pyftpdlib asks for ``rb``, ``wb``, ``ab`` or ``r+b``."""
        if "b" not in mode:
            raise FilesystemError("Only binary files are supported")
        if mode.startswith("r") and "+" not in mode:
            return self._open_read(filename)
        self._changed()
        return self._open_write(filename, mode)

    @_operation
    def mkstemp(
        self, suffix: str = "", prefix: str = "", dir: str | None = None, mode: str = "wb"
    ) -> StorageFile:
        """A new file with a unique name, for STOU."""
        directory = dir or self.ftp2fs(self.cwd)
        for _ in range(50):
            path = posixpath.join(directory, f"{prefix}{get_random_string(8)}{suffix}")
            if self._kind(path) is None:
                return self.open(path, mode if "b" in mode else mode + "b")
        raise _error(errno.EEXIST)

    # --- directories

    @_operation
    def chdir(self, path: str) -> None:
        kind = self._kind(path)
        if kind != DIR:
            raise _error(errno.ENOTDIR if kind == FILE else errno.ENOENT)
        self.cwd = self.fs2ftp(path)

    @_operation
    def mkdir(self, path: str) -> None:
        """Make a directory for this session; it persists once a file is stored in it."""
        if self._kind(path) is not None:
            raise _error(errno.EEXIST)
        if self._kind(posixpath.dirname(path)) != DIR:
            raise _error(errno.ENOENT)
        self._session_dirs.add(path)

    @_operation
    def listdir(self, path: str) -> list[str]:
        try:
            dirs, files, stats = self._storage_listing(path)
        except (FileNotFoundError, NotADirectoryError):
            if not self._is_known_dir(path):
                raise
            dirs, files, stats = [], [], None  # the home or a session directory, still empty
        names = {name for name in (*dirs, *files) if name}
        session_dirs = {
            posixpath.basename(d) for d in self._session_dirs if posixpath.dirname(d) == path
        }
        names.update(session_dirs)
        if session_dirs and stats is not None:
            stats = None  # their stats are not in the storage's listing
        self._remember_listing(path, dirs, files, stats)
        return sorted(names)

    def listdirinfo(self, path: str) -> list[str]:
        return self.listdir(path)

    @_operation
    def rmdir(self, path: str) -> None:
        kind = self._kind(path)
        if kind != DIR:
            raise _error(errno.ENOTDIR if kind == FILE else errno.ENOENT)
        if self.listdir(path):
            raise _error(errno.ENOTEMPTY)
        self._changed()
        if path in self._session_dirs:
            self._session_dirs.discard(path)
            return
        # An empty directory the storage knows of: a node (InMemoryStorage)
        # or a "prefix/" marker object (S3); deleting a missing key is a no-op.
        name = storage_name(path)
        self.storage.delete(name)
        self.storage.delete(name + "/")

    # --- files and directories

    @_operation
    def remove(self, path: str) -> None:
        kind = self._kind(path)
        if kind != FILE:
            # Storage.delete() would remove a directory, or report success
            # for a missing file.
            raise _error(errno.EISDIR if kind == DIR else errno.ENOENT)
        self._changed()
        self.storage.delete(storage_name(path))

    @_operation
    def rename(self, src: str, dst: str) -> None:
        """Copy then delete: storages have no rename. Directories only if made this session."""
        kind = self._kind(src)
        if kind is None:
            raise _error(errno.ENOENT)
        if src == dst:
            return
        dst_kind = self._kind(dst)
        if dst_kind == DIR:
            raise _error(errno.EISDIR)
        if self._kind(posixpath.dirname(dst)) != DIR:
            raise _error(errno.ENOENT)
        self._changed()
        if kind == DIR:
            if src in self._session_dirs and not self.listdir(src):
                self._session_dirs.discard(src)
                self._session_dirs.add(dst)
                return
            raise FilesystemError("Renaming directories is not supported by this storage")
        with self.storage.open(storage_name(src), "rb") as source:
            self._save(dst, source)
        self.storage.delete(storage_name(src))
        self._changed()

    @_operation
    def chmod(self, path: str, mode: int) -> None:
        raise FilesystemError("Changing modes is not supported by this storage")

    @_operation
    def utime(self, path: str, timeval: float) -> None:
        raise FilesystemError("Changing times is not supported by this storage")

    @_operation
    def stat(self, path: str) -> PseudoStat:
        cached = self._cached_stat(path)
        if cached:
            return cached
        kind = self._kind(path)
        if kind is None:
            raise _error(errno.ENOENT)
        if kind == DIR:
            size, mtime, mode = 0, 0.0, stat_module.S_IFDIR | 0o755
        else:
            size = self.storage.size(storage_name(path))
            mtime = self._mtime(path, default=0.0)
            mode = stat_module.S_IFREG | 0o644
        return PseudoStat(
            st_size=size,
            st_mtime=mtime,
            st_nlink=1,
            st_mode=mode,
            st_uid=0,
            st_gid=0,
            st_dev=0,
            st_ino=zlib.crc32(path.encode("utf-8", "surrogateescape")),
            st_atime=mtime,
            st_ctime=mtime,
        )

    @_operation
    def lstat(self, path: str) -> Any:
        # Not ``lstat = stat``: a patch replaces ``stat`` on the instance.
        return self.stat(path)

    @_operation
    def getsize(self, path: str) -> int:
        if self._kind(path) == DIR:
            return 0
        return self.storage.size(storage_name(path))

    @_operation
    def getmtime(self, path: str) -> float:
        return self._mtime(path)

    def _mtime(self, path: str, default: float | None = None) -> float:
        try:
            return self.storage.get_modified_time(storage_name(path)).timestamp()
        except NotImplementedError:
            if default is None:
                raise
            return default

    # --- predicates

    @_predicate
    def _exists(self, path: str) -> bool:
        return self._kind(path) is not None

    @_predicate
    def isfile(self, path: str) -> bool:
        return self._kind(path) == FILE

    @_predicate
    def isdir(self, path: str) -> bool:
        return self._kind(path) == DIR

    @_predicate
    def islink(self, path: str) -> bool:
        return False

    @_predicate
    def lexists(self, path: str) -> bool:
        return self._kind(path) is not None

    def get_user_by_uid(self, uid: int) -> str:
        return "owner"

    def get_group_by_gid(self, gid: int) -> str:
        return "group"


def _parents(path: str) -> set[str]:
    """``/a/b/c`` -> ``{"/a/b", "/a", "/"}``."""
    parents = set()
    while path not in ("/", ""):
        path = posixpath.dirname(path)
        parents.add(path)
    return parents


def _static_attribute(obj: object, name: str) -> Any:
    """``obj.name`` without binding a plain function stored on the class.

    ``storage_class = make_storage`` in a class body must be called as
    ``make_storage()``, not as a method.
    """
    for klass in type(obj).__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            if isinstance(value, staticmethod):
                return value.__func__
            if isinstance(value, classmethod):
                return value.__get__(None, type(obj))
            return value
    return getattr(obj, name, None)
