"""Object storages without real directories, such as Google Cloud Storage.

A prefix with something under it is a directory; ``exists()`` tells a file.
Untested against a real endpoint (S3, tested, has ``storage.s3``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DIR, FILE, StoragePatch, storage_name

if TYPE_CHECKING:
    from .fs import StorageFS


class ObjectStoragePatch(StoragePatch):
    """Object storages served through the ``Storage`` API alone (Google Cloud).

    Keys are files; a "directory" is a prefix with something under it,
    including an empty ``prefix/`` marker object. One ``exists()`` call tells
    a file, a prefix listing a directory, so no parent listing is needed.
    Untested against a real endpoint: django-storages' ``S3Storage`` has its
    own patch (``django_ftpserver.storage.s3``).
    """

    patch_methods = ("_kind",)

    def _kind(self: StorageFS, path: str) -> str | None:  # type: ignore[misc]
        if self._is_known_dir(path):
            return DIR
        name = storage_name(path)
        if self.storage.exists(name):
            return FILE
        dirs, files = self._storage_listdir(path)
        return DIR if (dirs or files) else None


class DjangoGCloudStoragePatch(ObjectStoragePatch):
    """django-gcloud-storage: like S3, but ``listdir()`` wants a trailing slash."""

    patch_methods = ("_kind", "_storage_listdir")

    def _storage_listdir(self: StorageFS, path: str) -> tuple[list[str], list[str]]:  # type: ignore[misc]
        name = storage_name(path)
        return self.storage.listdir(name + "/" if name else name)


class GoogleCloudStoragePatch(ObjectStoragePatch):
    """django-storages' Google Cloud storage: served as a generic object storage."""
