"""What every storage backend builds on: names, stats, errors, files, patches.

The generic filesystem (``storage.fs``) and each backend's patch
(``storage.local``, ``storage.s3``, ``storage.gcs``) share these: the pseudo
``stat()`` result, the mapping of fs paths to storage names, the
translation of a storage's exceptions into one-line FTP replies, the file
object ``open()`` returns, and the patch mechanism itself. They live apart
from ``StorageFS`` so that a backend module needs only this one, and
``StorageFS`` can name the backends' patches without an import cycle.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import posixpath
from collections import namedtuple
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import SuspiciousOperation
from pyftpdlib.filesystems import FilesystemError

if TYPE_CHECKING:
    from .fs import StorageFS

# Named as in 1.0, when all of it was ``filesystems.py``: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.filesystems")


#: ``stat()`` result for storages without one. The first eight fields are
#: django-ftpserver 1.0's; ``st_atime``/``st_ctime`` were added (with
#: defaults, so 1.0-style construction still works) because pyftpdlib's MLSD
#: "create" fact reads ``st_ctime``.
PseudoStat = namedtuple(
    "PseudoStat",
    [
        "st_size",
        "st_mtime",
        "st_nlink",
        "st_mode",
        "st_uid",
        "st_gid",
        "st_dev",
        "st_ino",
        "st_atime",
        "st_ctime",
    ],
    defaults=(0, 0),
)


FILE = "file"


DIR = "dir"


#: Returned by ``realpath()`` for a path it cannot place inside the storage;
#: ``validpath()`` rejects it because it is not absolute.
_NOWHERE = ""


def storage_name(path: str) -> str:
    """The storage name of fs path ``path`` (``/a/b.txt`` -> ``a/b.txt``)."""
    return posixpath.normpath("/" + path).lstrip("/")


def home_root(home: str | os.PathLike[str] | None) -> str:
    """The fs root of an account's home: ``alice``, ``/alice/`` -> ``/alice``.

    ``None``, ``""`` and ``"/"`` give ``/`` (the whole storage). Backslashes
    count as separators and ``..`` cannot climb above the storage root.
    """
    text = os.fspath(home or "").replace("\\", "/")
    return posixpath.normpath("/" + text.strip("/")) if text.strip("/") else "/"


def _error(code: int) -> OSError:
    """An ``OSError`` that pyftpdlib turns into a reply without any path."""
    return OSError(code, os.strerror(code))


def _to_filesystem_error(exc: BaseException) -> FilesystemError:
    """Turn a storage's exception into a ``FilesystemError`` fit for a reply.

    The message is generic on purpose: storages put absolute server paths
    and backend details in theirs, which belong in the log, not in a reply.
    """
    if isinstance(exc, NotImplementedError):
        return FilesystemError("Operation not supported by this storage")
    if isinstance(exc, SuspiciousOperation):
        logger.warning("Refused storage path: %s", exc)
        return FilesystemError("Invalid path")
    if isinstance(exc, OSError):  # an OSError without errno (no strerror to show)
        logger.warning("Storage error: %s", exc)
        return FilesystemError("Storage error")
    logger.error("Storage error", exc_info=exc)
    return FilesystemError("Storage error")


def _operation(method: Callable[..., Any]) -> Callable[..., Any]:
    """Let only ``FilesystemError`` and errno-bearing ``OSError`` escape.

    pyftpdlib catches exactly those two in its ``ftp_*`` methods; any other
    exception drops the client's connection.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FilesystemError:
            raise
        except OSError as exc:
            if exc.errno is None:
                raise _to_filesystem_error(exc) from exc
            raise
        except Exception as exc:
            raise _to_filesystem_error(exc) from exc

    wrapper._storagefs_wrapped = True  # type: ignore[attr-defined]
    return wrapper


def _predicate(method: Callable[..., Any]) -> Callable[..., Any]:
    """Answer ``False`` instead of raising: pyftpdlib calls these unguarded."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            logger.debug("%s%r failed: %s", method.__name__, args[1:], exc)
            return False

    wrapper._storagefs_wrapped = True  # type: ignore[attr-defined]
    return wrapper


_OPERATIONS = frozenset(
    {
        "open",
        "mkstemp",
        "chdir",
        "mkdir",
        "listdir",
        "listdirinfo",
        "rmdir",
        "remove",
        "rename",
        "chmod",
        "stat",
        "lstat",
        "utime",
        "getsize",
        "getmtime",
    }
)


_PREDICATES = frozenset({"isfile", "isdir", "islink", "lexists", "_exists"})


class StorageFile:
    """A file opened by ``StorageFS.open()``.

    Its ``name`` is the fs path, which pyftpdlib passes to
    ``on_file_received``/``on_file_sent``: the signals then carry the fs path
    as ``path`` and, through ``fs2ftp()``, the client's path as ``ftp_path``.

    ``fileno()`` works only for a real, unaltered file on disk. pyftpdlib
    uses ``sendfile(2)`` whenever ``fileno()`` succeeds; on anything else
    (an in-memory file, a remote object, a storage that decrypts or
    transforms content) that would send the wrong bytes or fail, so it
    raises ``io.UnsupportedOperation`` and pyftpdlib falls back to ``read()``.

    A file opened for writing gets ``fs``: an error on closing it (the last
    buffered bytes not fitting on the disk) becomes the transfer's 451 reply
    instead of an exception inside pyftpdlib's data channel, which would
    leave the client waiting for a reply that never comes.
    """

    def __init__(
        self, file: Any, name: str, *, real: bool = False, fs: StorageFS | None = None
    ) -> None:
        self.file = file
        self.name = name
        self.real = real
        self.fs = fs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def mode(self) -> str:
        return getattr(self.file, "mode", "rb")

    @property
    def closed(self) -> bool:
        return bool(getattr(self.file, "closed", False))

    def fileno(self) -> int:
        if not self.real:
            raise io.UnsupportedOperation("not a file on disk")
        return self.file.fileno()

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        flush = getattr(self.file, "flush", None)
        if flush is not None:
            flush()

    def readable(self) -> bool:
        return "r" in self.mode or "+" in self.mode

    def writable(self) -> bool:
        return any(flag in self.mode for flag in "wa+")

    def close(self) -> None:
        if self.fs is None:
            self.file.close()
            return
        try:
            self.file.close()
        except Exception as exc:
            logger.warning("Could not write %s: %s", self.name, exc)
            message = os.strerror(exc.errno) if getattr(exc, "errno", None) else "Storage error"
            self.fs._upload_failed(self, message)

    def __enter__(self) -> StorageFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class StoragePatch:
    """Methods replacing ``StorageFS``'s for one kind of storage.

    ``StorageFS.patches`` maps storage class names to patches; the first
    class of the storage's MRO found there wins. ``apply()`` binds each
    method named in ``patch_methods`` to the filesystem instance, keeping the
    replaced one as ``_origin_<name>`` (django-ftpserver 1.0's mechanism, so
    projects' own patches keep working); public operations are wrapped with
    the same error handling as ``StorageFS``'s own.
    """

    patch_methods: tuple[str, ...] = ()
    #: Whether a backslash in a name is an ordinary character for the patched
    #: code (else ``validpath()`` refuses names with one).
    literal_backslashes: bool = False

    @classmethod
    def apply(cls, fs: StorageFS) -> None:
        """Replace bound methods of ``fs``."""
        logger.debug("Patching %s with %s.", type(fs).__name__, cls.__name__)
        fs._patch = cls
        for method_name in cls.patch_methods:
            origin = getattr(fs, method_name)  # AttributeError for an unknown name
            bound = getattr(cls, method_name).__get__(fs, type(fs))
            if not getattr(bound, "_storagefs_wrapped", False):
                if method_name in _OPERATIONS:
                    bound = _operation(bound)
                elif method_name in _PREDICATES:
                    bound = _predicate(bound)
            setattr(fs, method_name, bound)
            setattr(fs, "_origin_" + method_name, origin)
