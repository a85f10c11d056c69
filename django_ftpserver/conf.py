"""Every ``FTPSERVER_*`` setting, read in one place.

Each setting is a property that reads ``django.conf.settings`` on first
access and remembers the value until Django's ``setting_changed`` signal
(sent by ``override_settings`` and pytest-django's ``settings`` fixture)
says a setting changed: a login reads several of them, and a read through
Django's lazy settings costs more than a dictionary lookup. Nothing is
written back into the project's settings. Command-line options of
``manage.py ftpserver`` win over these values by one rule,
:func:`option_or_setting`.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

#: Defaults of the settings shared with django-ftpserver 1.0, by name.
#: Kept as a public mapping because ``utils.get_ftp_setting`` (part of the
#: published API) falls back to it.
DEFAULTS: dict[str, Any] = {
    "FTPSERVER_HOST": "127.0.0.1",
    "FTPSERVER_PORT": 21,
    "FTPSERVER_TIMEOUT": None,
    "FTPSERVER_PASSIVE_PORTS": None,
    "FTPSERVER_MASQUERADE_ADDRESS": None,
    "FTPSERVER_FILE_ACCESS_USER": None,
    "FTPSERVER_CERTFILE": None,
    "FTPSERVER_KEYFILE": None,
    "FTPSERVER_SENDFILE": None,
    "FTPSERVER_DAEMONIZE": False,
    "FTPSERVER_DAEMONIZE_OPTIONS": {},
    "FTPSERVER_PIDFILE": None,
    "FTPSERVER_SERVER_CLASS": "django_ftpserver.server.DjangoFTPServer",
    "FTPSERVER_HANDLER": "django_ftpserver.handlers.DjangoFTPHandler",
    "FTPSERVER_TLSHANDLER": "django_ftpserver.handlers.DjangoTLS_FTPHandler",
    "FTPSERVER_AUTHORIZER": "django_ftpserver.authorizers.FTPAccountAuthorizer",
    "FTPSERVER_FILESYSTEM": None,
    "FTPSERVER_AUTH_CACHE_TIMEOUT": 300,
    "FTPSERVER_AUTH_WORKERS": None,
    "FTPSERVER_TLS_CONTROL_REQUIRED": True,
    "FTPSERVER_TLS_DATA_REQUIRED": True,
    "FTPSERVER_TLS_REQUIRE_SESSION_REUSE": False,
    # Brute-force lockout (see auth/lockout.py); FAILURES = 0 turns it off.
    "FTPSERVER_LOCKOUT_FAILURES": 10,
    "FTPSERVER_LOCKOUT_WINDOW": 900,
    "FTPSERVER_LOCKOUT_DURATION": 900,
    "FTPSERVER_LOCKOUT_CACHE": "default",
    # Limits; None keeps the handler's or server's own value (pyftpdlib's
    # defaults: 512 connections, 3 login attempts, no bandwidth limit).
    "FTPSERVER_MAX_CONNECTIONS": None,
    # Connections before login (see connections/limits.py and docs/security.rst for
    # the reasoning behind each default); 0 turns the first two off.
    "FTPSERVER_MAX_CONNECTIONS_PER_IP": 50,
    "FTPSERVER_LOGIN_TIMEOUT": 60,
    "FTPSERVER_MAX_PRE_LOGIN_PERCENT": 80,
    "FTPSERVER_MAX_LOGIN_ATTEMPTS": None,
    "FTPSERVER_READ_LIMIT": None,
    "FTPSERVER_WRITE_LIMIT": None,
    "FTPSERVER_CREATE_HOME_DIRS": False,
    # Operations endpoint (/metrics, /healthz, /readyz): "HOST:PORT" or None.
    "FTPSERVER_METRICS_ADDRESS": None,
    # PROXY protocol (see connections/proxyprotocol.py): the balancers allowed to send
    # a header; empty turns it off.
    "FTPSERVER_PROXY_PROTOCOL_TRUSTED": (),
    "FTPSERVER_PROXY_PROTOCOL_TIMEOUT": 5,
    # "standard" (write into the file named) or "atomic" (write beside it,
    # move into place when complete); see policy/uploads.py.
    "FTPSERVER_UPLOAD_MODE": "standard",
    # Object storage (django_ftpserver.storage.s3): multipart part size and parts in flight.
    "FTPSERVER_S3_PART_SIZE": 8 * 1024 * 1024,
    "FTPSERVER_S3_UPLOAD_THREADS": 3,
    # Live sessions: the cache alias they are published to (None: the
    # lockout cache's, False: not published) and this server's name there.
    "FTPSERVER_SESSIONS_CACHE": None,
    "FTPSERVER_SERVER_NAME": None,
}

#: The values of FTPSERVER_UPLOAD_MODE.
UPLOAD_MODES = ("standard", "atomic")


_values: dict[str, Any] = {}
_lock = threading.Lock()
_generation = 0


def get(name: str) -> Any:
    """Return setting ``name``, or its default when unset or ``None``."""
    try:
        return _values[name]
    except KeyError:
        pass
    generation = _generation
    value = getattr(settings, name, None)
    if value is None:
        value = DEFAULTS.get(name)
    with _lock:
        # Not if the settings changed while this thread read them: the
        # value may be the one from before.
        if generation == _generation:
            _values[name] = value
    return value


def option_or_setting(value: Any, name: str) -> Any:
    """``value`` when it was given, else setting ``name`` (or its default).

    The one rule by which an option of ``manage.py ftpserver`` wins over
    the setting of the same meaning. "Not given" is what argparse leaves
    for an option left off: ``None``, ``False`` (a flag such as
    ``--sendfile``) or ``""``. Anything else is given, 0 included:
    ``--timeout 0`` turns the idle timeout off and must not read as
    "use the setting". Compared by identity, as ``0 == False``.

    It lives here rather than in the command because the fallback is a
    settings read, and settings are read in this module only: whoever
    else builds a server from options (a project's own command, a test)
    gets the same precedence by calling it.
    """
    if value is None or value is False or value == "":
        return get(name)
    return value


def _forget(**kwargs: Any) -> None:
    global _generation
    with _lock:
        _generation += 1
        _values.clear()


setting_changed.connect(_forget, dispatch_uid="django_ftpserver.conf")


class Settings:
    """Typed, lazy access to the ``FTPSERVER_*`` settings."""

    @property
    def HOST(self) -> str:
        return get("FTPSERVER_HOST")

    @property
    def PORT(self) -> int:
        return get("FTPSERVER_PORT")

    @property
    def TIMEOUT(self) -> int | None:
        return get("FTPSERVER_TIMEOUT")

    @property
    def PASSIVE_PORTS(self) -> str | None:
        return get("FTPSERVER_PASSIVE_PORTS")

    @property
    def MASQUERADE_ADDRESS(self) -> str | None:
        return get("FTPSERVER_MASQUERADE_ADDRESS")

    @property
    def FILE_ACCESS_USER(self) -> str | None:
        return get("FTPSERVER_FILE_ACCESS_USER")

    @property
    def CERTFILE(self) -> str | None:
        return get("FTPSERVER_CERTFILE")

    @property
    def KEYFILE(self) -> str | None:
        return get("FTPSERVER_KEYFILE")

    @property
    def SENDFILE(self) -> bool | None:
        return get("FTPSERVER_SENDFILE")

    @property
    def DAEMONIZE(self) -> bool:
        return bool(get("FTPSERVER_DAEMONIZE"))

    @property
    def DAEMONIZE_OPTIONS(self) -> dict[str, Any]:
        return dict(get("FTPSERVER_DAEMONIZE_OPTIONS"))

    @property
    def PIDFILE(self) -> str | None:
        return get("FTPSERVER_PIDFILE")

    @property
    def SERVER_CLASS(self) -> str | type:
        return get("FTPSERVER_SERVER_CLASS")

    @property
    def HANDLER(self) -> str | type:
        return get("FTPSERVER_HANDLER")

    @property
    def TLSHANDLER(self) -> str | type:
        return get("FTPSERVER_TLSHANDLER")

    @property
    def AUTHORIZER(self) -> str | type:
        return get("FTPSERVER_AUTHORIZER")

    @property
    def FILESYSTEM(self) -> str | type | None:
        return get("FTPSERVER_FILESYSTEM")

    @property
    def AUTH_CACHE_TIMEOUT(self) -> float:
        return float(get("FTPSERVER_AUTH_CACHE_TIMEOUT"))

    @property
    def AUTH_WORKERS(self) -> int | None:
        """Threads running logins' queries and hashes; ``None``: cores + 1, at most 8."""
        value = get("FTPSERVER_AUTH_WORKERS")
        return None if value is None else int(value)

    @property
    def TLS_CONTROL_REQUIRED(self) -> bool:
        return bool(get("FTPSERVER_TLS_CONTROL_REQUIRED"))

    @property
    def TLS_DATA_REQUIRED(self) -> bool:
        return bool(get("FTPSERVER_TLS_DATA_REQUIRED"))

    @property
    def TLS_REQUIRE_SESSION_REUSE(self) -> bool:
        return bool(get("FTPSERVER_TLS_REQUIRE_SESSION_REUSE"))

    @property
    def LOCKOUT_FAILURES(self) -> int:
        return int(get("FTPSERVER_LOCKOUT_FAILURES"))

    @property
    def LOCKOUT_WINDOW(self) -> int:
        return int(get("FTPSERVER_LOCKOUT_WINDOW"))

    @property
    def LOCKOUT_DURATION(self) -> int:
        return int(get("FTPSERVER_LOCKOUT_DURATION"))

    @property
    def LOCKOUT_CACHE(self) -> str:
        return get("FTPSERVER_LOCKOUT_CACHE")

    @property
    def MAX_CONNECTIONS(self) -> int | None:
        return get("FTPSERVER_MAX_CONNECTIONS")

    @property
    def MAX_CONNECTIONS_PER_IP(self) -> int:
        """Most connections from one address (IPv6: one /64); 0: no limit."""
        return get("FTPSERVER_MAX_CONNECTIONS_PER_IP")

    @property
    def LOGIN_TIMEOUT(self) -> int:
        """Seconds a connection has to log in; 0: no limit."""
        return get("FTPSERVER_LOGIN_TIMEOUT")

    @property
    def MAX_PRE_LOGIN_PERCENT(self) -> int:
        """Share of the connections, in percent, that those not logged in may take."""
        return get("FTPSERVER_MAX_PRE_LOGIN_PERCENT")

    @property
    def MAX_LOGIN_ATTEMPTS(self) -> int | None:
        return get("FTPSERVER_MAX_LOGIN_ATTEMPTS")

    @property
    def READ_LIMIT(self) -> int | None:
        return get("FTPSERVER_READ_LIMIT")

    @property
    def WRITE_LIMIT(self) -> int | None:
        return get("FTPSERVER_WRITE_LIMIT")

    @property
    def CREATE_HOME_DIRS(self) -> bool:
        return bool(get("FTPSERVER_CREATE_HOME_DIRS"))

    @property
    def METRICS_ADDRESS(self) -> str | tuple[str, int] | None:
        """Where to serve /metrics, /healthz and /readyz; ``None``: nowhere."""
        return get("FTPSERVER_METRICS_ADDRESS")

    @property
    def PROXY_PROTOCOL_TRUSTED(self) -> list[str]:
        """Addresses and networks (CIDR) allowed to send a PROXY protocol header.

        One string is taken as a list of one; anything else that is not a
        list is returned as is, for the check (E011) to name it.
        """
        value = get("FTPSERVER_PROXY_PROTOCOL_TRUSTED")
        if isinstance(value, str):
            return [value]
        return list(value) if isinstance(value, (list, tuple, set, frozenset)) else value

    @property
    def PROXY_PROTOCOL_TIMEOUT(self) -> float:
        """Seconds a trusted proxy has to send its whole header."""
        return float(get("FTPSERVER_PROXY_PROTOCOL_TIMEOUT"))

    @property
    def UPLOAD_MODE(self) -> str:
        return get("FTPSERVER_UPLOAD_MODE")

    @property
    def S3_PART_SIZE(self) -> int:
        """Bytes per part of an upload to S3 (at least 5 MiB, S3's minimum)."""
        return int(get("FTPSERVER_S3_PART_SIZE"))

    @property
    def S3_UPLOAD_THREADS(self) -> int:
        """Parts of one upload sent at once; memory per upload is (this + 1) parts."""
        return int(get("FTPSERVER_S3_UPLOAD_THREADS"))

    @property
    def SESSIONS_CACHE(self) -> str | bool | None:
        """Cache alias of the live sessions; ``None``: ``LOCKOUT_CACHE``'s; ``False``: off."""
        return get("FTPSERVER_SESSIONS_CACHE")

    @property
    def SERVER_NAME(self) -> str | None:
        """This server's name on the sessions page; ``None``: ``hostname:port``."""
        return get("FTPSERVER_SERVER_NAME")


conf = Settings()
