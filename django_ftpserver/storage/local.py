"""Django's ``FileSystemStorage`` served as the real directory tree it is.

The generic code would treat local disk as an object store; this patch
uses real directories, ``sendfile`` for downloads, writes straight into
the file and renames with ``os.rename``, all through ``storage.path()``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import posixpath
import stat as stat_module
from typing import TYPE_CHECKING, Any

from django.core.files import File

from .base import _NOWHERE, DIR, FILE, StorageFile, StoragePatch, _error, home_root, storage_name

if TYPE_CHECKING:
    from .fs import StorageFS

# Named as in 1.0, when all of it was ``filesystems.py``: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.filesystems")


class FileSystemStoragePatch(StoragePatch):
    """Django's ``FileSystemStorage``: real files and real directories.

    Everything goes through ``storage.path()`` (Django's ``safe_join``) and
    ``os``; files are opened with ``storage.open()`` so a subclass's
    ``_open()`` still applies. Only regular files and directories are
    served: opening a FIFO or a device would block or stream forever.
    """

    literal_backslashes = os.sep == "/"
    patch_methods = (
        "_kind",
        "listdir",
        "stat",
        "getsize",
        "getmtime",
        "mkdir",
        "rmdir",
        "rename",
        "utime",
        "chmod",
        "realpath",
        "_open_read",
        "_open_write",
        "_prepare_root",
        "_home_root",
    )

    def _local(self: StorageFS, path: str) -> str:  # type: ignore[misc]
        return self.storage.path(storage_name(path))

    def _home_root(self: StorageFS, home: str) -> str:  # type: ignore[misc]
        """An absolute home inside the storage's location counts from there.

        Projects moving from the default filesystem have homes such as
        ``/srv/media/ftp/alice``; with a storage at ``/srv/media`` that is
        the prefix ``ftp/alice``, not ``srv/media/ftp/alice``.
        """
        text = os.fspath(home or "")
        if os.path.isabs(text):
            location = os.path.abspath(self.storage.location)
            relative = os.path.relpath(os.path.abspath(text), location)
            if relative == ".":
                return "/"
            if relative != ".." and not relative.startswith(".." + os.sep):
                return home_root(relative)
        return home_root(text)

    def _prepare_root(self: StorageFS) -> None:  # type: ignore[misc]
        """Create the home directory, as ``FileSystemStorage`` creates parents on save."""
        local = FileSystemStoragePatch._local(self, self.root)
        if os.path.isdir(local):
            return
        try:
            os.makedirs(local, exist_ok=True)
            mode = self.storage.directory_permissions_mode
            if mode is not None:
                os.chmod(local, mode)
        except OSError as exc:
            logger.warning("Cannot create the home directory %s: %s", local, exc)

    def _kind(self: StorageFS, path: str) -> str | None:  # type: ignore[misc]
        try:
            mode = os.stat(FileSystemStoragePatch._local(self, path)).st_mode
        except (OSError, ValueError):
            return None
        if stat_module.S_ISDIR(mode):
            return DIR
        if stat_module.S_ISREG(mode):
            return FILE
        return None

    def realpath(self: StorageFS, path: str) -> str:  # type: ignore[misc]
        """The fs path ``path`` leads to after symlinks, or ``""`` if it leaves the storage."""
        try:
            location = os.path.realpath(self.storage.location)
            real = os.path.realpath(FileSystemStoragePatch._local(self, path))
            relative = os.path.relpath(real, location)
        except Exception:
            return _NOWHERE
        if relative == ".":
            return "/"
        if relative == ".." or relative.startswith(".." + os.sep):
            return _NOWHERE
        return "/" + relative.replace(os.sep, "/")

    def listdir(self: StorageFS, path: str) -> list[str]:  # type: ignore[misc]
        """Regular files and directories, without symlinks that lead out of the home."""
        local = FileSystemStoragePatch._local(self, path)
        names = []
        with os.scandir(local) as entries:
            for entry in entries:
                try:
                    if not (entry.is_dir() or entry.is_file()):
                        continue
                except OSError:
                    continue
                if entry.is_symlink() and not self.validpath(posixpath.join(path, entry.name)):
                    continue
                names.append(entry.name)
        return names

    def stat(self: StorageFS, path: str) -> os.stat_result:  # type: ignore[misc]
        result = os.stat(FileSystemStoragePatch._local(self, path))
        if not (stat_module.S_ISDIR(result.st_mode) or stat_module.S_ISREG(result.st_mode)):
            raise _error(errno.ENOENT)
        return result

    def getsize(self: StorageFS, path: str) -> int:  # type: ignore[misc]
        return os.path.getsize(FileSystemStoragePatch._local(self, path))

    def getmtime(self: StorageFS, path: str) -> float:  # type: ignore[misc]
        return os.path.getmtime(FileSystemStoragePatch._local(self, path))

    def mkdir(self: StorageFS, path: str) -> None:  # type: ignore[misc]
        local = FileSystemStoragePatch._local(self, path)
        os.mkdir(local)
        mode = self.storage.directory_permissions_mode
        if mode is not None:
            os.chmod(local, mode)

    def rmdir(self: StorageFS, path: str) -> None:  # type: ignore[misc]
        os.rmdir(FileSystemStoragePatch._local(self, path))

    def rename(self: StorageFS, src: str, dst: str) -> None:  # type: ignore[misc]
        local = FileSystemStoragePatch._local
        os.rename(local(self, src), local(self, dst))

    def utime(self: StorageFS, path: str, timeval: float) -> None:  # type: ignore[misc]
        os.utime(FileSystemStoragePatch._local(self, path), (timeval, timeval))

    def chmod(self: StorageFS, path: str, mode: int) -> None:  # type: ignore[misc]
        os.chmod(FileSystemStoragePatch._local(self, path), mode)

    def _open_read(self: StorageFS, path: str) -> StorageFile:  # type: ignore[misc]
        kind = self._kind(path)
        if kind != FILE:
            raise _error(errno.EISDIR if kind == DIR else errno.ENOENT)
        file = self.storage.open(storage_name(path), "rb")
        return StorageFile(file, path, real=FileSystemStoragePatch._is_disk_file(self, path, file))

    def _open_write(self: StorageFS, path: str, mode: str) -> StorageFile:  # type: ignore[misc]
        """Write in place: streamed to disk, and append/resume work natively."""
        local = FileSystemStoragePatch._local(self, path)
        created = not os.path.lexists(local)
        kind = self._kind(path)
        if not created and kind != FILE:
            # A directory, or a FIFO/device/dangling symlink: opening those
            # for writing blocks, or writes where it should not.
            raise _error(errno.EISDIR if kind == DIR else errno.EACCES)
        file = self.storage.open(storage_name(path), mode)
        permissions = self.storage.file_permissions_mode
        if created and permissions is not None:
            os.chmod(local, permissions)
        return StorageFile(file, path, fs=self)

    def _is_disk_file(self: StorageFS, path: str, file: Any) -> bool:  # type: ignore[misc]
        """Whether ``file`` reads the bytes of the file on disk, so sendfile may be used."""
        # FileSystemStorage returns a plain File around the open file. A File
        # subclass may change what read() returns (decrypting storages do),
        # and sendfile would bypass it: only the plain wrapper qualifies.
        raw = file.file if type(file) is File else file
        if type(raw) not in (io.BufferedReader, io.FileIO):
            return False
        return getattr(raw, "name", None) == FileSystemStoragePatch._local(self, path)
