"""Settings for the server processes of the scale-out test (``test_scale_out``).

Everything shared comes from the environment the test sets, so several
``manage.py ftpserver`` processes share one deployment: the test's database
(``FTPSERVER_TEST_DB``/``FTPSERVER_TEST_DB_NAME``, as in ``tests.settings``),
a Redis cache under a key prefix of the test's own, and one store served
through ``StorageFS``: the S3 bucket named by ``FTPSERVER_TEST_S3_BUCKET``
when set, else the directory ``FTPSERVER_TEST_SHARED_STORE``. The test client
stands in for the load balancer: 127.0.0.1 may send PROXY headers.
"""

import os

from tests.probe_settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["FTPSERVER_TEST_REDIS_URL"],
        "KEY_PREFIX": os.environ["FTPSERVER_TEST_REDIS_PREFIX"],
    }
}

if os.environ.get("FTPSERVER_TEST_S3_BUCKET"):
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["FTPSERVER_TEST_S3_BUCKET"],
            "endpoint_url": os.environ["FTPSERVER_TEST_S3_ENDPOINT"],
            "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "addressing_style": "path",
            "signature_version": "s3v4",
            "use_ssl": False,
            "file_overwrite": True,
            "querystring_auth": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["FTPSERVER_TEST_SHARED_STORE"]},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"

FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["127.0.0.1"]
FTPSERVER_LOCKOUT_FAILURES = 2
FTPSERVER_LOCKOUT_WINDOW = 60
FTPSERVER_LOCKOUT_DURATION = 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "pyftpdlib": {"handlers": [], "propagate": False},
        "django_ftpserver": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
