"""Django settings of the benchmarked server.

Deliberately close to a real project: Django's default password hashers
(PBKDF2 first), no debug, the app's default server, handler and authorizer.
The database is a throwaway SQLite file (``BENCH_DB_PATH``), or PostgreSQL
with ``BENCH_DB=postgres`` (database ``BENCH_DB_NAME``).
"""

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_ftpserver",
]
# PASSWORD_HASHERS is not set on purpose: Django's default, PBKDF2.

if os.environ.get("BENCH_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_DB_NAME", "ftpserver_bench"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_DB_PATH", "bench.sqlite3"),
            "OPTIONS": {"timeout": 30},
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

# Every benchmark client comes from 127.0.0.1 and the crowd measure holds
# 500 sessions at once: far over the default per-address limit (50), which
# would refuse most of them with 421. The other limits keep their defaults
# on purpose (they are what is measured): a 60-second login timeout, which
# a logged-in idle session never meets, and 80% of the 512 connections
# for clients not logged in (409), above the largest login burst (100).
FTPSERVER_MAX_CONNECTIONS_PER_IP = 0
FTPSERVER_LOGIN_TIMEOUT = 60
FTPSERVER_MAX_PRE_LOGIN_PERCENT = 80
