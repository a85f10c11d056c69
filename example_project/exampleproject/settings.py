"""Settings of the example project: an FTP server for Django users, on SQLite.

Two paths can be moved with environment variables, so that the tests (and
anyone trying things out) never touch a developer's database or files:

* ``EXAMPLE_PROJECT_DB``: the SQLite database file (default ``db.sqlite3``
  next to ``manage.py``);
* ``EXAMPLE_PROJECT_FTP_HOMES``: the directory holding the FTP home
  directories (default ``ftp-homes/`` next to ``manage.py``).

Not for production: the secret key is public and ``DEBUG`` is on.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-project-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_ftpserver",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exampleproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_PROJECT_DB") or BASE_DIR / "db.sqlite3",
        # Receivers write audit rows from several session threads at once;
        # wait for SQLite's write lock instead of failing after 5 seconds.
        "OPTIONS": {"timeout": 20},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"

#: Where ``manage.py demo`` creates the FTP home directories.
# A cache shared by every process of the project: the FTP server counts
# failed logins there, and `manage.py listftplockouts` / `clearftplockout`
# (other processes) see the same lockouts. Redis or Memcached in production.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": Path(DATABASES["default"]["NAME"]).parent / ".cache",
    }
}

FTP_HOMES_DIR = Path(os.environ.get("EXAMPLE_PROJECT_FTP_HOMES") or BASE_DIR / "ftp-homes")

# --- django_ftpserver (every setting: docs/settings.rst)

FTPSERVER_HOST = "127.0.0.1"
FTPSERVER_PORT = 2121
# Disconnect clients idle for five minutes.
FTPSERVER_TIMEOUT = 300
# A small passive range, as you would open in a firewall.
FTPSERVER_PASSIVE_PORTS = "60000-60099"

# --- logging: FTP access log and the server's own lines on the console

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        # What demo/receivers.py writes: logins, logouts, failed logins.
        "ftp.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Every FTP event at DEBUG; set DEBUG here to see them all.
        "django_ftpserver.handlers": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
        # "FTP server started/stopped on host:port".
        "django_ftpserver.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        },
        # A signal receiver that raised (logged with its traceback).
        "django.dispatch": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
