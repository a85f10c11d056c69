"""Settings for the server processes of the scale-out test (``test_scale_out``).

Everything shared comes from the environment the test sets, so several
``manage.py ftpserver`` processes share one deployment: the test's database
(``FTPSERVER_TEST_DB``/``FTPSERVER_TEST_DB_NAME``, as in ``tests.settings``),
a Redis cache under a key prefix of the test's own, and one S3 bucket (on
``moto_server``) served through ``StorageFS``, as ``tests.settings_s3``
reaches it. The test client
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

# The bucket on moto_server named by the environment (tests.s3.S3Bucket.environ()).
from tests.settings_s3 import FTPSERVER_FILESYSTEM, STORAGES  # noqa: E402, F401

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
