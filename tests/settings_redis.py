"""Settings for server processes started by the Redis lockout test.

The test's own database and a Redis cache, both named through the
environment, so separate server processes share the lockout state.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["FTPSERVER_TEST_SERVER_DB"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["FTPSERVER_TEST_REDIS_URL"],
        "KEY_PREFIX": os.environ["FTPSERVER_TEST_REDIS_PREFIX"],
    }
}
FTPSERVER_LOCKOUT_FAILURES = int(os.environ.get("FTPSERVER_LOCKOUT_FAILURES", "4"))
FTPSERVER_LOCKOUT_WINDOW = 60
FTPSERVER_LOCKOUT_DURATION = int(os.environ.get("FTPSERVER_LOCKOUT_DURATION", "30"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "pyftpdlib": {"handlers": [], "propagate": False},
        "django_ftpserver": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
