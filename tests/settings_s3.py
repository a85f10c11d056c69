"""Test settings serving a bucket on a ``moto_server`` through ``StorageFS``.

For processes a test starts (``manage.py ftpserver`` as a subprocess): the
bucket comes from the environment, as ``tests.s3.S3Bucket.environ()`` gives
it (``FTPSERVER_TEST_S3_ENDPOINT``, ``FTPSERVER_TEST_S3_BUCKET`` and the
``AWS_*`` credentials). Requests are not counted here; count them in the
test's own process or from the bucket's contents.
"""

import os

from tests.settings import *  # noqa: F403

STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("FTPSERVER_TEST_S3_BUCKET", "ftpserver-tests"),
            "endpoint_url": os.environ.get("FTPSERVER_TEST_S3_ENDPOINT", "http://127.0.0.1:5000"),
            "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "addressing_style": "path",
            "signature_version": "s3v4",
            "use_ssl": False,
            "file_overwrite": True,
            "querystring_auth": False,
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"
