"""``StorageFS``: serve a Django storage over FTP (the 1.0 import path).

Enable it with ``FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"``.
The code lives in ``django_ftpserver.storage``, one backend per module:

* ``storage.fs``: ``StorageFS`` itself, the generic code that needs only
  Django's ``Storage`` API, and its listing cache and upload spooling;
* ``storage.base``: what the backends build on (``StorageFile``,
  ``StoragePatch``, ``PseudoStat``, path names, error replies);
* ``storage.local``: ``FileSystemStoragePatch`` (real directories on disk);
* ``storage.s3``: ``S3Boto3StoragePatch`` (listings, multipart uploads);
* ``storage.gcs``: ``ObjectStoragePatch`` and the Google Cloud patches.

Every name this module offered before the split is still importable from
here (``tests/data/public_names.json``).
"""

from __future__ import annotations

from typing import Any

# The names marked noqa are not in ``__all__`` but were importable from here.
from .storage.base import (  # noqa: F401
    DIR,
    FILE,
    PseudoStat,
    StorageFile,
    StoragePatch,
    home_root,
    storage_name,
)
from .storage.fs import (  # noqa: F401
    ABSENT,
    LISTING_CACHE_SECONDS,
    SPOOL_MAX_MEMORY,
    Listing,
    SpooledUpload,
    StorageFS,
)
from .storage.gcs import DjangoGCloudStoragePatch, GoogleCloudStoragePatch, ObjectStoragePatch
from .storage.local import FileSystemStoragePatch

__all__ = [
    "PseudoStat",
    "StorageFile",
    "StorageFS",
    "StoragePatch",
    "FileSystemStoragePatch",
    "ObjectStoragePatch",
    "DjangoGCloudStoragePatch",
    "GoogleCloudStoragePatch",
]


def __getattr__(name: str) -> Any:
    """``S3Boto3StoragePatch`` from its own module (which needs django-storages)."""
    if name == "S3Boto3StoragePatch":
        from .storage.s3 import S3Boto3StoragePatch

        return S3Boto3StoragePatch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
