"""Small helpers kept at the module paths of django-ftpserver 1.0."""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any

from django.conf import settings

from . import conf

#: Published name of the defaults mapping; the values live in ``conf``.
FTPSERVER_DEFAULTS = conf.DEFAULTS

MIN_PORT = 1
MAX_PORT = 65535


def get_ftp_setting(name: str) -> Any:
    """Return setting ``name`` from the project's settings, else its default."""
    return conf.get(name)


def get_settings_value(name: str) -> Any:
    """Return ``settings.<name>`` or ``None``.

    .. deprecated:: 1.0
       Use :func:`get_ftp_setting`, which knows the defaults.
    """
    warnings.warn(
        "get_settings_value is deprecated, use get_ftp_setting instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(settings, name, None)


def parse_address(value: Any, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Parse ``"HOST:PORT"``, ``"[IPV6]:PORT"``, ``"PORT"`` or a ``(host, port)`` pair.

    Raises ``ValueError`` naming the value for anything else.
    """
    if isinstance(value, (tuple, list)) and len(value) == 2:
        host, port = value
    elif isinstance(value, int) and not isinstance(value, bool):
        host, port = default_host, value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
            if not sep:
                raise ValueError(f"expected [IPV6]:PORT, not {value!r}")
        elif ":" in text:
            host, _, port = text.rpartition(":")
            if ":" in host:
                raise ValueError(f"write an IPv6 address as [IPV6]:PORT, not {value!r}")
        else:
            host, port = default_host, text
    else:
        raise ValueError(f"expected 'HOST:PORT', not {value!r}")
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"invalid port {port!r} in {value!r}") from None
    if not isinstance(host, str) or not host or not 0 <= number <= 65535:
        raise ValueError(f"expected 'HOST:PORT' with a port from 0 to 65535, not {value!r}")
    return host, number


def parse_ports(ports_text: str) -> list[int]:
    """Parse ``"12345,13000-15000"`` into a sorted list of unique ports.

    Raises ``ValueError`` naming the offending part for anything that is not
    a port or an ascending ``low-high`` range of ports in 1..65535: a silent
    empty range would leave passive mode without ports.
    """
    if not isinstance(ports_text, str):
        raise ValueError(f"ports must be a string like '60000-60100', not {ports_text!r}")
    ports: set[int] = set()
    for raw in ports_text.split(","):
        bit = raw.strip()
        try:
            if "-" in bit:
                low_text, high_text = bit.split("-", 1)
                low, high = int(low_text), int(high_text)
            else:
                low = high = int(bit)
        except ValueError:
            raise ValueError(f"invalid port or range {bit!r} in {ports_text!r}") from None
        if not (MIN_PORT <= low <= MAX_PORT and MIN_PORT <= high <= MAX_PORT):
            raise ValueError(f"port out of range 1-65535: {bit!r} in {ports_text!r}")
        if low > high:
            raise ValueError(f"empty port range {bit!r} in {ports_text!r}")
        ports.update(range(low, high + 1))
    return sorted(ports)


def number_problem(
    value: Any,
    *,
    minimum: float,
    maximum: float | None = None,
    above: bool = False,
    whole: bool = False,
    unit: str = "",
) -> str | None:
    """Why ``value`` is not a number in range, as ``"must be ..., not VALUE"``; None if it is.

    One wording for every numeric setting, whether the system checks or
    the server's start-up report it. ``above`` asks for more than
    ``minimum``; ``whole`` for an ``int``. ``True`` is refused although
    Python counts it as 1: nobody means a number by it.
    """
    fits = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or not whole)
        and (value > minimum if above else value >= minimum)
        and (maximum is None or value <= maximum)
    )
    if fits:
        return None
    if maximum is not None:
        wanted = f"from {minimum} to {maximum}"
    elif above:
        wanted = f"more than {minimum}"
    else:
        wanted = f"{minimum} or more"
    kind = "a whole number, " if whole else ""
    unit = f" {unit}" if unit else ""
    return f"must be {kind}{wanted}{unit}, not {value!r}"


def import_class(class_path: str) -> Any:
    """Import ``"package.module.Name"`` and return ``Name``.

    Raises ``ImportError`` with the path in the message, for both a missing
    module and a missing attribute.
    """
    module_path, _, name = class_path.rpartition(".")
    if not module_path:
        raise ImportError(f"{class_path!r} is not a dotted path to a class")
    module = import_module(module_path)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"module {module_path!r} has no attribute {name!r}") from None


def make_server(
    server_class: Any,
    handler_class: Any,
    authorizer_class: Any,
    filesystem_class: Any,
    host_port: tuple[str, int],
    file_access_user: str | None = None,
    **handler_options: Any,
) -> Any:
    """Build a server listening on ``host_port``.

    Unlike django-ftpserver 1.0, the options are set on a fresh subclass of
    ``handler_class``, never on the class itself: two servers in one process
    (tests, or FTP and FTPS side by side) no longer leak options such as a
    cached TLS context into each other.
    """
    if isinstance(server_class, str):
        server_class = import_class(server_class)
    if isinstance(handler_class, str):
        handler_class = import_class(handler_class)
    if isinstance(authorizer_class, str):
        authorizer_class = import_class(authorizer_class)
    if isinstance(filesystem_class, str):
        filesystem_class = import_class(filesystem_class)

    attrs = dict(handler_options)
    # Signals keep ``sender=handler_class`` so receivers connected with
    # ``sender=DjangoFTPHandler`` still match (see SignalEmitterMixin).
    attrs["signal_sender"] = getattr(handler_class, "signal_sender", None) or handler_class
    attrs["authorizer"] = authorizer_class(file_access_user)
    if filesystem_class is not None:
        attrs["abstracted_fs"] = filesystem_class
    if "certfile" in attrs or "keyfile" in attrs:
        # A TLS context cached by a parent class must not be reused.
        attrs.setdefault("ssl_context", None)
    handler = type(handler_class.__name__, (handler_class,), attrs)
    handler.__module__ = handler_class.__module__
    handler.__qualname__ = handler_class.__qualname__
    return server_class(host_port, handler)
