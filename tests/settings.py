"""Minimal settings for the test suite.

The database is chosen by ``FTPSERVER_TEST_DB`` (``sqlite``, the default,
``postgres`` or ``mysql``), so the same tests run against the services CI
provides. SQLite uses a file, not memory: the server's session threads open
connections of their own and must see the same data.
"""

import os
import tempfile

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the admin's CSS for the browser test
    "django_ftpserver",
]
STATIC_URL = "/static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Fast hashing for the functional tests; the performance and isolation
# checks switch back to Django's default hasher explicitly.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_db = os.environ.get("FTPSERVER_TEST_DB", "sqlite")
if _db == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("FTPSERVER_TEST_DB_NAME", "django_ftpserver"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
elif _db == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("FTPSERVER_TEST_DB_NAME", "django_ftpserver"),
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "TEST": {"CHARSET": "utf8mb4"},
        }
    }
else:
    _dir = os.environ.get("FTPSERVER_TEST_DB_DIR") or tempfile.mkdtemp(prefix="ftpserver-db-")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(_dir, "db.sqlite3"),
            "TEST": {"NAME": os.path.join(_dir, "test.sqlite3")},
            "OPTIONS": {"timeout": 20},
        }
    }

# A process-local cache on purpose (fast, emptied between tests): W003, which
# warns about exactly that, is tested directly in tests/test_checks.py.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_ftpserver.W003"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"pyftpdlib": {"handlers": ["null"], "propagate": True, "level": "INFO"}},
}
