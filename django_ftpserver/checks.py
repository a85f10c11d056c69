"""Django system checks for the ``FTPSERVER_*`` settings.

``manage.py check`` (and every command that runs the checks) reports a
setting that cannot work as an error (``django_ftpserver.E0xx``) and a
setting that works but exposes the server as a warning
(``django_ftpserver.W0xx``). The ids are stable; silence one with
``SILENCED_SYSTEM_CHECKS`` if it does not apply to you.

=====  ==============================================================
E001   a class setting (server, handler, authorizer...) cannot be imported
E002   ``FTPSERVER_PASSIVE_PORTS`` is not a valid port range
E003   ``FTPSERVER_KEYFILE`` without ``FTPSERVER_CERTFILE``
E004   the certificate or key file is missing, unreadable or not usable
E005   ``FTPSERVER_HOST`` or ``FTPSERVER_PORT`` has a wrong type or range
E006   ``FTPSERVER_TIMEOUT`` is negative or not a number
E007   ``FTPSERVER_AUTH_CACHE_TIMEOUT`` is negative or not a number
E008   ``FTPSERVER_MASQUERADE_ADDRESS`` is not an IPv4 address
E009   ``FTPSERVER_UPLOAD_MODE`` is neither ``"standard"`` nor ``"atomic"``
E011   ``FTPSERVER_PROXY_PROTOCOL_TRUSTED`` holds something not an address or network
E012   ``FTPSERVER_PROXY_PROTOCOL_TIMEOUT`` is not a number of seconds above 0
E013   a connection limit (``FTPSERVER_MAX_CONNECTIONS_PER_IP``, ``FTPSERVER_LOGIN_TIMEOUT``...)
       is not a whole number in its range
E030   ``FTPSERVER_METRICS_ADDRESS`` is not "HOST:PORT"
E031   ``FTPSERVER_METRICS_ADDRESS`` is set but prometheus_client is missing
E032   ``FTPSERVER_SESSIONS_CACHE`` names a cache that is not in ``CACHES``
W001   listening beyond loopback without TLS: passwords travel in clear
W002   a certificate is configured but TLS is not required
W010   ``FTPSERVER_TLS_REQUIRE_SESSION_REUSE`` cannot apply (no TLS, or clear data allowed)
=====  ==============================================================
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from . import conf as conf_module
from . import utils
from .conf import conf

TAG = "ftpserver"

#: Settings that name a class, as a dotted path or the class itself.
CLASS_SETTINGS = (
    "FTPSERVER_SERVER_CLASS",
    "FTPSERVER_HANDLER",
    "FTPSERVER_TLSHANDLER",
    "FTPSERVER_AUTHORIZER",
    "FTPSERVER_FILESYSTEM",
)


def _setting(name: str) -> Any:
    """The raw value (or default): checks must not crash on what they check."""
    return conf_module.get(name)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _setting_error(name: str, problem: str, hint: str, check_id: str) -> Error:
    """The error for setting ``name``: its name, then what is wrong (``problem``)."""
    return Error(f"{name} {problem}.", hint=hint, id=f"django_ftpserver.{check_id}")


def _number_setting(
    name: str,
    check_id: str,
    hint: str,
    *,
    optional: bool = False,
    typed: bool = False,
    **bounds: Any,
) -> list[CheckMessage]:
    """The error (if any) for a numeric setting outside ``bounds`` (see ``utils.number_problem``).

    ``optional``: ``None`` (the setting's "keep pyftpdlib's value") is fine.
    ``typed``: check the value as ``conf`` converts it for the code that
    uses it (``int()`` for the S3 sizes), so a value that code accepts is
    not reported.
    """
    value = _setting(name)
    if value is None and optional:
        return []
    if typed:
        try:
            value = getattr(conf, name.removeprefix("FTPSERVER_"))
        except (TypeError, ValueError):
            return [_setting_error(name, f"must be a whole number, not {value!r}", hint, check_id)]
    problem = utils.number_problem(value, **bounds)
    return [_setting_error(name, problem, hint, check_id)] if problem else []


@register(TAG)
def check_class_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: every class setting names something importable."""
    errors: list[CheckMessage] = []
    for name in CLASS_SETTINGS:
        value = _setting(name)
        if value is None or isinstance(value, type):
            continue
        if not isinstance(value, str):
            problem = f"must be a dotted path or a class, not {value!r}"
        else:
            try:
                utils.import_class(value)
                continue
            except ImportError as exc:
                problem = f"= {value!r} cannot be imported: {exc}"
            except Exception as exc:  # the module raised while being imported
                problem = f"= {value!r} failed to import: {type(exc).__name__}: {exc}"
        errors.append(
            Error(
                f"{name} {problem}",
                hint="Give the dotted path of an existing class, e.g. "
                f"{conf_module.DEFAULTS.get(name) or 'myproject.ftp.MyClass'!r}.",
                id="django_ftpserver.E001",
            )
        )
    return errors


@register(TAG)
def check_passive_ports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002: ``FTPSERVER_PASSIVE_PORTS`` parses into ports of 1-65535."""
    value = _setting("FTPSERVER_PASSIVE_PORTS")
    if value is None:
        return []
    problem = None
    if isinstance(value, str):
        try:
            utils.parse_ports(value)
        except ValueError as exc:
            problem = str(exc)
    else:
        try:
            ports = list(value)
        except TypeError:
            ports = []
        if not ports or not all(_is_number(p) and int(p) == p and 1 <= p <= 65535 for p in ports):
            problem = f"expected a string like '60000-60100' or a list of ports, not {value!r}"
    if problem is None:
        return []
    return [
        Error(
            f"FTPSERVER_PASSIVE_PORTS is invalid: {problem}",
            hint="Use a string of ports and ascending ranges within 1-65535, "
            "e.g. '60000-60100' or '50000,60000-60010'.",
            id="django_ftpserver.E002",
        )
    ]


@register(TAG, Tags.security)
def check_tls_files(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003/E004: a key needs a certificate; both files must be usable."""
    certfile, keyfile = _setting("FTPSERVER_CERTFILE"), _setting("FTPSERVER_KEYFILE")
    if keyfile and not certfile:
        return [
            Error(
                "FTPSERVER_KEYFILE is set but FTPSERVER_CERTFILE is not.",
                hint="Set FTPSERVER_CERTFILE to the certificate (chain) that goes with the key.",
                id="django_ftpserver.E003",
            )
        ]
    if not certfile:
        return []
    for name, path in (("FTPSERVER_CERTFILE", certfile), ("FTPSERVER_KEYFILE", keyfile)):
        if not path:
            continue
        if not isinstance(path, (str, os.PathLike)):
            problem = f"must be a file path, not {path!r}"
        elif not os.path.isfile(path):
            problem = f"file not found: {path}"
        elif not os.access(path, os.R_OK):
            problem = f"file not readable by this process: {path}"
        else:
            continue
        return [
            Error(
                f"{name} {problem}",
                hint="Give the path of a PEM file that the user running the server can read.",
                id="django_ftpserver.E004",
            )
        ]
    from .runner import ConfigError
    from .runner import check_tls_files as load

    try:
        load(os.fspath(certfile), os.fspath(keyfile) if keyfile else None)
    except ConfigError as exc:
        return [
            Error(
                f"The TLS certificate or key cannot be used: {exc}",
                hint="Check that both files are PEM, that the key belongs to the certificate "
                "and that the key is not encrypted.",
                id="django_ftpserver.E004",
            )
        ]
    return []


@register(TAG)
def check_address(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E005: ``FTPSERVER_HOST`` is a string and ``FTPSERVER_PORT`` a port number."""
    errors: list[CheckMessage] = []
    host, port = _setting("FTPSERVER_HOST"), _setting("FTPSERVER_PORT")
    if not isinstance(host, str):
        errors.append(
            Error(
                f"FTPSERVER_HOST must be a string, not {host!r}.",
                hint="e.g. '127.0.0.1', '0.0.0.0' (all IPv4 interfaces) or '::'.",
                id="django_ftpserver.E005",
            )
        )
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535):
        errors.append(
            Error(
                f"FTPSERVER_PORT must be an integer from 0 to 65535, not {port!r}.",
                hint="e.g. 21, or 2121 to run without root.",
                id="django_ftpserver.E005",
            )
        )
    return errors


@register(TAG)
def check_timeouts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E006/E007: timeouts are numbers of seconds, not negative."""
    return _number_setting(
        "FTPSERVER_TIMEOUT",
        "E006",
        "Seconds a client may stay idle, e.g. 300; None keeps pyftpdlib's default.",
        optional=True,
        minimum=0,
        unit="seconds",
    ) + _number_setting(
        "FTPSERVER_AUTH_CACHE_TIMEOUT",
        "E007",
        "Seconds a verified password is remembered, e.g. 300; 0 disables it.",
        minimum=0,
        unit="seconds",
    )


@register(TAG)
def check_upload_mode(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E009: the upload mode is one of those the handler knows."""
    value = _setting("FTPSERVER_UPLOAD_MODE")
    if value in conf_module.UPLOAD_MODES:
        return []
    return [
        _setting_error(
            "FTPSERVER_UPLOAD_MODE",
            f"must be one of {', '.join(conf_module.UPLOAD_MODES)}, not {value!r}",
            '"standard" writes into the file named; "atomic" moves the file into '
            "place once complete.",
            "E009",
        )
    ]


@register(TAG)
def check_masquerade_address(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E008: PASV replies carry an IPv4 address, so the masquerade address is one."""
    value = _setting("FTPSERVER_MASQUERADE_ADDRESS")
    if value is None:
        return []
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return [
            Error(
                f"FTPSERVER_MASQUERADE_ADDRESS must be an IPv4 address, not {value!r}.",
                hint="Give the public IPv4 address clients reach the server at (not a name).",
                id="django_ftpserver.E008",
            )
        ]
    return []


@register(TAG, Tags.security)
def check_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E013: each connection limit is a whole number in its range.

    The ranges are ``connections.limits.LIMIT_RANGES``.
    """
    from .connections.limits import LIMIT_RANGES

    errors: list[CheckMessage] = []
    for name, (least, most) in LIMIT_RANGES.items():
        errors += _number_setting(
            f"FTPSERVER_{name.upper()}",
            "E013",
            "0 turns a limit off, except FTPSERVER_MAX_LOGIN_ATTEMPTS (1 or "
            "more) and FTPSERVER_MAX_PRE_LOGIN_PERCENT (1 to 100); see "
            "docs/security.rst for the defaults and how to tune them.",
            optional=True,  # pyftpdlib's own value
            minimum=least,
            maximum=most,
            whole=True,
        )
    return errors


@register(TAG)
def check_proxy_protocol(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E011/E012: the trusted proxies are addresses or networks; the timeout is positive."""
    from .connections.proxyprotocol import TrustedProxies

    errors: list[CheckMessage] = []
    value = _setting("FTPSERVER_PROXY_PROTOCOL_TRUSTED")
    entries = [value] if isinstance(value, str) else value
    problem = None
    if not isinstance(entries, (list, tuple, set, frozenset)):
        problem = f"must be a list of addresses or networks, not {value!r}"
    else:
        try:
            TrustedProxies(entries)
        except ValueError as exc:
            problem = str(exc)
    if problem:
        errors.append(
            Error(
                f"FTPSERVER_PROXY_PROTOCOL_TRUSTED: {problem}.",
                hint="List the load balancers' addresses or networks, e.g. "
                "['10.0.0.5', '10.0.1.0/24'] (names are not resolved; host bits must be 0).",
                id="django_ftpserver.E011",
            )
        )
    return errors + _number_setting(
        "FTPSERVER_PROXY_PROTOCOL_TIMEOUT",
        "E012",
        "Seconds a trusted proxy has to send its header, e.g. 5.",
        minimum=0,
        above=True,
        unit="seconds",
    )


def is_loopback(host: Any) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if not isinstance(host, str):
        return False
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_warning(host: Any, use_tls: bool) -> CheckMessage | None:
    """W001 for a server on ``host``: plain FTP beyond loopback."""
    if use_tls or is_loopback(host):
        return None
    return Warning(
        f"The FTP server listens on {host!r} without TLS: passwords and files cross "
        "the network in clear text.",
        hint="Set FTPSERVER_CERTFILE and FTPSERVER_KEYFILE (TLS is then required), "
        "or listen on 127.0.0.1 behind a TLS-terminating proxy.",
        id="django_ftpserver.W001",
    )


@register(TAG, Tags.security)
def check_exposure(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: a non-loopback ``FTPSERVER_HOST`` without a certificate."""
    host = _setting("FTPSERVER_HOST")
    if not isinstance(host, str):
        return []  # E005 reports it
    warning = exposure_warning(host, bool(_setting("FTPSERVER_CERTFILE")))
    return [warning] if warning else []


@register(TAG, Tags.security)
def check_tls_required(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002: with a certificate, TLS should stay required on both channels."""
    if not _setting("FTPSERVER_CERTFILE"):
        return []
    relaxed = [
        name
        for name in ("FTPSERVER_TLS_CONTROL_REQUIRED", "FTPSERVER_TLS_DATA_REQUIRED")
        if not _setting(name)
    ]
    if not relaxed:
        return []
    return [
        Warning(
            f"{' and '.join(relaxed)} {'is' if len(relaxed) == 1 else 'are'} False: clients "
            "may log in or transfer files without TLS although a certificate is configured.",
            hint="Remove the setting (TLS is required by default) unless you must serve "
            "clients that cannot do TLS.",
            id="django_ftpserver.W002",
        )
    ]


@register(TAG, Tags.security)
def check_session_reuse(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W010: requiring TLS session reuse needs TLS, and covers protected data only."""
    if not _setting("FTPSERVER_TLS_REQUIRE_SESSION_REUSE"):
        return []
    if not _setting("FTPSERVER_CERTFILE"):
        problem = "has no effect without a certificate (FTPSERVER_CERTFILE): there is no TLS"
    elif not _setting("FTPSERVER_TLS_DATA_REQUIRED"):
        problem = (
            "does not cover clear data connections, which FTPSERVER_TLS_DATA_REQUIRED = False "
            "allows (PROT C)"
        )
    else:
        return []
    return [
        Warning(
            f"FTPSERVER_TLS_REQUIRE_SESSION_REUSE {problem}.",
            hint="Configure a certificate and keep FTPSERVER_TLS_DATA_REQUIRED on, or remove "
            "FTPSERVER_TLS_REQUIRE_SESSION_REUSE.",
            id="django_ftpserver.W010",
        )
    ]


def _lockout_cache_warning() -> list[CheckMessage]:
    from .auth import lockout

    if not lockout.enabled() or lockout.check_settings() or not lockout.cache_is_process_local():
        return []
    return [
        Warning(
            f"FTPSERVER_LOCKOUT_CACHE ({conf.LOCKOUT_CACHE!r}) is a process-local cache: each "
            "server process counts failed logins on its own, and listftplockouts / "
            "clearftplockout cannot see the server's lockouts.",
            hint="Point FTPSERVER_LOCKOUT_CACHE at a shared cache (Redis, Memcached, the "
            "database or file-based cache) in CACHES.",
            id="django_ftpserver.W003",
        )
    ]


def _behind_a_balancer() -> bool:
    trusted = _setting("FTPSERVER_PROXY_PROTOCOL_TRUSTED")
    return bool(trusted) and not isinstance(trusted, bool)


@register(TAG, Tags.security, deploy=True)
def check_lockout_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W003: lockouts in a process-local cache are per process and out of the commands' reach.

    A deployment check (``manage.py check --deploy``) only: one server
    process with Django's default cache is what every new project starts
    with, and it is protected (the process counts its own failures). A
    warning on every command from the first minute would teach people to
    ignore warnings; the lockout commands say the same thing on their own,
    where it matters. :func:`check_lockout_cache_scaled_out` says it on
    every command once the settings show several servers.
    """
    if _behind_a_balancer():
        return []  # check_lockout_cache_scaled_out reports it, once
    return _lockout_cache_warning()


@register(TAG, Tags.security)
def check_lockout_cache_scaled_out(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W003 on every command when a balancer (PROXY protocol) spreads clients over servers.

    Behind a balancer, each server counting its own failures multiplies
    the attempts an attacker gets by the number of servers: no longer a
    deployment detail.
    """
    return _lockout_cache_warning() if _behind_a_balancer() else []


@register(TAG)
def check_metrics_address(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E030: ``FTPSERVER_METRICS_ADDRESS`` is "HOST:PORT"; E031: prometheus_client is there."""
    from .utils import parse_address

    value = _setting("FTPSERVER_METRICS_ADDRESS")
    if value is None:
        return []
    try:
        parse_address(value)
    except ValueError as exc:
        return [
            _setting_error(
                "FTPSERVER_METRICS_ADDRESS",
                f"is not HOST:PORT: {exc}",
                "e.g. '127.0.0.1:9100', or '0.0.0.0:9100' for a scraper on another host.",
                "E030",
            )
        ]
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return [
            Error(
                "FTPSERVER_METRICS_ADDRESS is set but prometheus_client is not installed.",
                hint="pip install 'django-ftpserver[metrics]'",
                id="django_ftpserver.E031",
            )
        ]
    return []


@register(TAG)
def check_s3_uploads(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E020: S3 multipart uploads need parts of at least 5 MiB and at least one thread."""
    from .storage.s3 import MIN_PART_SIZE

    return _number_setting(
        "FTPSERVER_S3_PART_SIZE",
        "E020",
        f"S3 refuses parts under 5 MiB: use at least {MIN_PART_SIZE}; the default is 8 MiB "
        "(e.g. FTPSERVER_S3_PART_SIZE = 16 * 1024 * 1024).",
        typed=True,
        minimum=MIN_PART_SIZE,
        whole=True,
    ) + _number_setting(
        "FTPSERVER_S3_UPLOAD_THREADS",
        "E020",
        "An upload needs at least one; each adds one part of memory per upload.",
        typed=True,
        minimum=1,
        whole=True,
    )


@register(TAG)
def check_sessions_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E032: ``FTPSERVER_SESSIONS_CACHE`` is None, False or an alias in ``CACHES``."""
    from .ops import sessions as livesessions

    return [
        Error(
            f"{message}.",
            hint="Name a cache of CACHES, or leave it unset to use the lockout cache.",
            id="django_ftpserver.E032",
        )
        for message in livesessions.check_settings()
    ]
