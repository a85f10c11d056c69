"""Build and run an FTP server, without any command-line concerns.

``FTPServerConfig`` says what to serve, ``FTPServerRunner`` builds the server
and runs it until stopped (SIGTERM, SIGINT or ``stop()``), sending
``ftp_server_started`` and ``ftp_server_stopped`` exactly once each. The
``ftpserver`` management command is a thin layer over them, and so is a
project that runs the server from its own code. The server they build is
``django_ftpserver.server.DjangoFTPServer`` unless configured otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import dispatch, signals, utils
from .auth import lockout
from .conf import conf
from .connections.limits import LIMIT_RANGES, limit_problem
from .connections.proxyprotocol import TrustedProxies
from .handlers import throttled_dtp_handler
from .ops import sessions as livesessions
from .server import DjangoFTPServer

# The 1.0 name: the starting/stopping lines have always been logged there.
logger = logging.getLogger("django_ftpserver.server")

try:
    from OpenSSL import SSL

    _TLS_ERRORS: tuple[type[BaseException], ...] = (SSL.Error,)
except ImportError:  # pragma: no cover - TLS is optional
    _TLS_ERRORS = ()


class ConfigError(ValueError):
    """A server option that cannot work; the message names it."""


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535


@dataclass
class FTPServerConfig:
    """What to serve. Unset class options are read from the settings.

    ``handler_options`` are set as attributes of the handler class (for
    example ``banner``, ``max_login_attempts``); they win over the options
    derived from the other fields.
    """

    host: str
    port: int
    timeout: int | None = None
    passive_ports: list[int] | None = None
    masquerade_address: str | None = None
    file_access_user: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    sendfile: bool | None = None
    server_class: str | type | None = None
    handler_class: str | type | None = None
    authorizer_class: str | type | None = None
    filesystem_class: str | type | None = None
    #: Limits; None keeps the server's or handler's own value.
    max_connections: int | None = None
    max_connections_per_ip: int | None = None
    max_login_attempts: int | None = None
    read_limit: int | None = None
    write_limit: int | None = None
    login_timeout: int | None = None
    max_pre_login_percent: int | None = None
    #: ``(host, port)`` or ``"HOST:PORT"`` of /metrics, /healthz and /readyz;
    #: None reads FTPSERVER_METRICS_ADDRESS (unset: no such endpoint).
    metrics_address: tuple[str, int] | str | None = None
    #: Peers allowed to send a PROXY protocol header; None: the setting.
    proxy_protocol_trusted: list[str] | None = None
    proxy_protocol_timeout: float | None = None
    handler_options: dict[str, Any] = field(default_factory=dict)

    _LIMITS = tuple(LIMIT_RANGES)

    def __post_init__(self) -> None:
        if self.server_class is None:
            self.server_class = conf.SERVER_CLASS
        if self.handler_class is None:
            self.handler_class = conf.TLSHANDLER if self.use_tls else conf.HANDLER
        if self.authorizer_class is None:
            self.authorizer_class = conf.AUTHORIZER
        if self.filesystem_class is None:
            self.filesystem_class = conf.FILESYSTEM
        for name in self._LIMITS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(conf, name.upper()))
        if self.metrics_address is None:
            self.metrics_address = conf.METRICS_ADDRESS
        if self.proxy_protocol_trusted is None:
            self.proxy_protocol_trusted = conf.PROXY_PROTOCOL_TRUSTED
        if self.proxy_protocol_timeout is None:
            self.proxy_protocol_timeout = conf.PROXY_PROTOCOL_TIMEOUT

    @property
    def use_tls(self) -> bool:
        return bool(self.certfile or self.keyfile)

    def validate(self) -> None:
        """Raise ``ConfigError`` for an option that cannot work.

        Everything that can be known before binding is checked here, so a
        broken configuration fails at start-up with one line naming the
        value, never at the first client.
        """
        if not isinstance(self.host, str):
            raise ConfigError(f"host must be a string such as '127.0.0.1', not {self.host!r}")
        if not _is_port(self.port):
            raise ConfigError(f"port must be a number from 0 to 65535, not {self.port!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or self.timeout < 0
        ):
            raise ConfigError(f"timeout must be 0 or more seconds, not {self.timeout!r}")
        if self.passive_ports is not None:
            try:
                ports = list(self.passive_ports)
            except TypeError:
                ports = []
            if not ports or not all(_is_port(p) and p > 0 for p in ports):
                raise ConfigError(f"passive ports must be in 1-65535: {self.passive_ports!r}")
        if self.masquerade_address is not None:
            try:
                ipaddress.IPv4Address(self.masquerade_address)
            except ValueError:
                raise ConfigError(
                    "masquerade address must be an IPv4 address (PASV replies carry "
                    f"one), not {self.masquerade_address!r}"
                ) from None
        if self.use_tls:
            if not self.certfile:
                raise ConfigError("a TLS key file was given without a certificate file")
            for label, path in (("certificate", self.certfile), ("key", self.keyfile)):
                if path and not os.path.isfile(path):
                    raise ConfigError(f"TLS {label} file not found: {path}")
                if path and not os.access(path, os.R_OK):
                    raise ConfigError(f"TLS {label} file not readable: {path}")
            check_tls_files(self.certfile, self.keyfile)
        for name in self._LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            problem = limit_problem(name, value)
            if problem:
                option = name.replace("_", "-")
                raise ConfigError(
                    f"{name.replace('_', ' ')} (--{option}, FTPSERVER_{name.upper()}) {problem}"
                )
        self.trusted_proxies()
        timeout = self.proxy_protocol_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(
                f"FTPSERVER_PROXY_PROTOCOL_TIMEOUT must be more than 0 seconds, not {timeout!r}"
            )
        errors = lockout.check_settings() + livesessions.check_settings()
        if errors:
            raise ConfigError(errors[0])
        if self.metrics_address is not None:
            try:
                self.metrics_address = utils.parse_address(self.metrics_address)
            except ValueError as exc:
                raise ConfigError(
                    f"metrics address (--metrics, FTPSERVER_METRICS_ADDRESS): {exc}"
                ) from None

    def trusted_proxies(self) -> TrustedProxies:
        """The peers allowed to send a PROXY header; ``ConfigError`` names a bad entry."""
        entries = self.proxy_protocol_trusted or []
        if isinstance(entries, str):
            entries = [entries]
        try:
            if not isinstance(entries, (list, tuple, set, frozenset)):
                raise ValueError(f"must be a list of addresses or networks, not {entries!r}")
            return TrustedProxies(entries)
        except ValueError as exc:
            raise ConfigError(f"FTPSERVER_PROXY_PROTOCOL_TRUSTED: {exc}") from None


def _openssl_reason(exc: Exception) -> str:
    """A one-line reason from a pyOpenSSL error (a list of (lib, func, reason))."""
    try:
        reasons = [reason for _lib, _func, reason in exc.args[0] if reason]
    except (IndexError, TypeError, ValueError):
        reasons = []
    if "no start line" in reasons:
        return "not a PEM file (no start line)"
    return "; ".join(reasons) or str(exc).splitlines()[0] or type(exc).__name__


def check_tls_files(certfile: str, keyfile: str | None) -> None:
    """Load the certificate and key as the TLS handler will; raise ``ConfigError``.

    Catches a file that is not PEM, a key that does not belong to the
    certificate, and an encrypted key (the server cannot ask for its
    passphrase).
    """
    try:
        from OpenSSL import SSL
    except ImportError:
        raise ConfigError("TLS needs pyOpenSSL: pip install 'django-ftpserver[tls]'") from None
    # OpenSSL would ask for the passphrase of an encrypted key on the
    # terminal: a hang under systemd. Refuse it before loading.
    try:
        with open(keyfile or certfile, "rb") as f:
            encrypted = b"ENCRYPTED" in f.read(1 << 20)
    except OSError as exc:
        raise ConfigError(f"TLS key file not readable: {keyfile or certfile}: {exc}") from None
    if encrypted:
        raise ConfigError(
            f"the TLS key in {keyfile or certfile} is encrypted: the server cannot ask for "
            "its passphrase; decrypt it (openssl pkey -in KEY -out KEY.plain)"
        )
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    try:
        context.use_certificate_chain_file(certfile)
    except SSL.Error as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {certfile}: {_openssl_reason(exc)}"
        ) from None
    try:
        context.use_privatekey_file(keyfile or certfile)
        context.check_privatekey()
    except SSL.Error as exc:
        if not keyfile:
            raise ConfigError(
                f"no usable private key in the TLS certificate file {certfile} "
                f"({_openssl_reason(exc)}): give the key file too"
            ) from None
        raise ConfigError(f"cannot load the TLS key {keyfile}: {_openssl_reason(exc)}") from None


class FTPServerRunner:
    """Create a server from a config and run it until it is stopped."""

    #: Seconds between two stamps of ``server.loop_heartbeat`` by the loop.
    heartbeat_interval = 0.5

    def __init__(self, config: FTPServerConfig) -> None:
        self.config = config
        self._server: Any = None
        self._address: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._wake_fd: int | None = None
        self._previous_handlers: dict[int, Any] | None = None
        self.operations: Any = None  # opsserver.OperationsServer with metrics on

    def handler_options(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {}
        if config.timeout is not None:
            options["timeout"] = config.timeout
        if config.passive_ports is not None:
            options["passive_ports"] = list(config.passive_ports)
        if config.masquerade_address is not None:
            options["masquerade_address"] = config.masquerade_address
        if config.use_tls:
            options["certfile"] = config.certfile
            options["keyfile"] = config.keyfile or config.certfile
            options["tls_control_required"] = conf.TLS_CONTROL_REQUIRED
            options["tls_data_required"] = conf.TLS_DATA_REQUIRED
            options["tls_require_session_reuse"] = conf.TLS_REQUIRE_SESSION_REUSE
        if config.sendfile is not None:
            # pyftpdlib's name; 1.0 set ``sendfile``, which pyftpdlib ignores.
            options["use_sendfile"] = bool(config.sendfile)
        if config.max_login_attempts is not None:
            options["max_login_attempts"] = config.max_login_attempts
        if config.login_timeout is not None:
            options["login_timeout"] = config.login_timeout
        options.update(config.handler_options)
        return options

    def create_server(self) -> Any:
        """Build the server and bind its socket; raise ``ConfigError`` or ``OSError``."""
        config = self.config
        config.validate()
        handler_class = config.handler_class
        if config.use_tls and handler_class is None:
            raise ConfigError("TLS needs pyOpenSSL: pip install 'django-ftpserver[tls]'")
        try:
            server = utils.make_server(
                server_class=config.server_class,
                handler_class=handler_class,
                authorizer_class=config.authorizer_class,
                filesystem_class=config.filesystem_class,
                host_port=(config.host, config.port),
                file_access_user=config.file_access_user,
                **self.handler_options(),
            )
        except _TLS_ERRORS as exc:
            # pyftpdlib's FTPServer loads the certificate before binding.
            raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from exc
        trusted = config.trusted_proxies()
        if trusted:
            if not isinstance(server, DjangoFTPServer):
                server.close_all()
                raise ConfigError(
                    "FTPSERVER_PROXY_PROTOCOL_TRUSTED needs a server class based on "
                    f"django_ftpserver.server.DjangoFTPServer, not {type(server).__name__}"
                )
            server.proxy_protocol = trusted
            server.proxy_header_timeout = float(config.proxy_protocol_timeout)
        if config.max_connections is not None:
            server.max_cons = config.max_connections
        if config.max_connections_per_ip is not None:
            server.max_cons_per_ip = config.max_connections_per_ip
        if config.max_pre_login_percent is not None:
            server.max_pre_login_percent = config.max_pre_login_percent
        if config.read_limit or config.write_limit:
            # ``server.handler`` is make_server's fresh subclass: no class leaks.
            server.handler.dtp_handler = throttled_dtp_handler(
                server.handler.dtp_handler, config.read_limit or 0, config.write_limit or 0
            )
        if config.use_tls:
            try:
                server.handler.get_ssl_context()  # fail now, not at the first client
            except Exception as exc:
                server.close_all()
                raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from exc
        if config.metrics_address is not None:
            try:
                self.operations = self._operations_server(server, config.metrics_address)
            except BaseException:
                server.close_all()
                raise
        if livesessions.cache_alias() is not None:
            # Published by a thread that run() starts (after daemonizing).
            server.session_registry = livesessions.SessionRegistry()
            server.handler = livesessions.with_session_tracking(server.handler)
        self._server = server
        self._address = tuple(server.address[:2])
        return server

    @staticmethod
    def _operations_server(server: Any, address: tuple[str, int]) -> Any:
        """Count the server's events; bind /metrics, /healthz and /readyz on ``address``."""
        from .ops.http import OperationsServer
        from .ops.metrics import ServerMetrics, with_metrics

        try:
            metrics = ServerMetrics(known_commands=server.handler.proto_cmds)
        except ImportError as exc:
            raise ConfigError(str(exc)) from None
        try:
            operations = OperationsServer(address, server, metrics)
        except OSError as exc:
            host, port = address
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        # ``server.handler`` is make_server's fresh subclass: no class leaks.
        server.handler = with_metrics(server.handler)
        server.metrics = metrics
        return operations

    @property
    def server(self) -> Any:
        return self._server

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked).

        Read at bind time: it stays available after the server stopped and
        its socket is closed (e.g. for a ``ftp_server_stopped`` receiver).
        """
        if self._address is None:
            raise RuntimeError("Server not created. Call create_server() first.")
        return self._address

    def stop(self) -> None:
        """Ask ``run()`` to return; safe from any thread and from signal handlers."""
        self._stop.set()
        fd = self._wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"x")

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call ``stop()`` (main thread only; idempotent).

        ``run()`` does it too; a caller that has more to do between creating
        the server and running it (printing, daemonizing) calls it first, so
        that a SIGTERM arriving meanwhile still stops the server cleanly.
        """
        if self._previous_handlers is not None:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        self._previous_handlers = previous

    def _restore_signal_handlers(self) -> None:
        for signum, handler in (self._previous_handlers or {}).items():
            signal.signal(signum, handler)
        self._previous_handlers = None

    def run(self, sender: Any = None) -> None:
        """Serve through ``server.serve_forever()`` until stopped; send the start and stop signals.

        As in django-ftpserver 1.0, serving is the server's
        ``serve_forever()``: a server class that overrides it, or a test
        that patches it, is honoured. ``stop()`` (SIGTERM, SIGINT, another
        thread) wakes the server's loop through a pipe and ends
        ``serve_forever()`` as pyftpdlib's own interrupt handling does.
        Whichever way it ends (stopped, returned, raised), the server is
        closed and ``ftp_server_stopped`` is sent once.
        """
        if self._server is None:
            raise RuntimeError("Server not created. Call create_server() first.")
        server = self._server
        signal_sender = sender or self.__class__
        host, port = self.address

        def announce(signal: Any, event: str) -> None:
            logger.info("FTP server %s on %s:%s", event, host, port)
            dispatch.send(signal, sender=signal_sender, server=server, host=host, port=port)

        self.install_signal_handlers()
        operations = self.operations
        waker = _StopWaker(server.ioloop)
        self._wake_fd = waker.write_fd
        heartbeat = None
        publisher = None
        try:
            server.loop_heartbeat = time.monotonic()
            heartbeat = server.ioloop.call_every(self.heartbeat_interval, _stamp_heartbeat, server)
            if operations is not None:
                operations.start()
            cache = livesessions.get_cache()
            if server.session_registry is not None and cache is not None:
                publisher = livesessions.SessionPublisher(
                    server.session_registry, livesessions.default_server_name(port), cache
                )
                publisher.start()
            announce(signals.ftp_server_started, "started")
            if self._stop.is_set():
                waker.wake()  # stopped before it started serving
            # _StopServing escapes a serve_forever() that lets interrupts through.
            with contextlib.suppress(_StopServing):
                server.serve_forever()
        finally:
            self._wake_fd = None
            if heartbeat is not None:
                heartbeat.cancel()
            try:
                waker.close()
                if isinstance(server, DjangoFTPServer) or server.ioloop.socket_map:
                    server.close_all()  # not closed by serve_forever() already
            finally:
                try:
                    if publisher is not None:
                        publisher.stop()
                    if operations is not None:
                        operations.close()
                finally:
                    announce(signals.ftp_server_stopped, "stopped")
                    self._restore_signal_handlers()


def _stamp_heartbeat(server: Any) -> None:
    """Runs on the accepting loop: the loop turned (``ops.health.liveness``)."""
    server.loop_heartbeat = time.monotonic()


class _StopServing(SystemExit):
    """Ends ``serve_forever()`` from inside its loop (pyftpdlib handles ``SystemExit``)."""


class _StopWaker:
    """A pipe registered in the server's loop; a byte written to it ends serving."""

    def __init__(self, ioloop: Any) -> None:
        self.ioloop = ioloop
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._fileno = self.read_fd
        ioloop.register(self.read_fd, self, ioloop.READ)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write_fd, b"x")

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        raise _StopServing()

    handle_close = handle_read_event

    def close(self) -> None:
        """Unregister and close the pipe (also called by the loop's ``close()``)."""
        if self.read_fd < 0:
            return
        if self.ioloop.socket_map.get(self.read_fd) is self:
            with contextlib.suppress(Exception):
                self.ioloop.unregister(self.read_fd)
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self.write_fd = -1
