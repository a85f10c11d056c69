"""Build and run an FTP server, without any command-line concerns.

``FTPServerConfig`` says what to serve, ``FTPServerRunner`` builds the server
and runs it until stopped (SIGTERM, SIGINT or ``stop()``), sending
``ftp_server_started`` and ``ftp_server_stopped`` exactly once each.

Concurrency: ``DjangoFTPServer`` gives every session a thread of its own.
Password hashing, ORM queries and signal receivers are plain blocking Django
code; on a single event loop (pyftpdlib's default, and django-ftpserver
1.0's) each of them stalls every connected client. On a thread per session
they stall only their own session, and hashing (which releases the GIL)
runs on all cores. Receivers of a session run on that session's thread, in
order.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from . import dispatch, lockout, signals, utils
from .conf import conf
from .handlers import throttled_dtp_handler

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A server option that cannot work; the message names it."""


class DjangoFTPServer(ThreadedFTPServer):
    """A thread per session; the accepting thread does nothing else.

    Differences from pyftpdlib's ``ThreadedFTPServer``:

    * the session's first callback (``on_connect``, hence the
      ``ftp_client_connected`` receivers) runs on the session's thread, not
      on the thread accepting connections;
    * the idle timer lives on the session's own loop (pyftpdlib leaves it on
      the accepting thread's scheduler, shared unsafely between threads);
    * the stop flag belongs to the instance, not the class, so stopping one
      server does not stop another in the same process;
    * a session ended by server shutdown still gets ``on_disconnect``;
    * each server has an event loop of its own, not pyftpdlib's shared one;
    * ``max_cons`` counts sessions exactly: pyftpdlib's threaded server
      compares its count of sessions with ``<=`` and so let one more in.
    """

    def __init__(
        self, address_or_socket: Any, handler: Any, ioloop: Any = None, backlog: int = 100
    ) -> None:
        self._lock = threading.Lock()
        self._exit = threading.Event()
        # An event loop of its own. pyftpdlib's default is a process-wide
        # singleton, which two servers in one process (tests, FTP beside
        # FTPS) would then poll from two threads at once; closing any loop,
        # as each session's does, also resets that singleton at random.
        if ioloop is None:
            ioloop = IOLoop.factory()
        super().__init__(address_or_socket, handler, ioloop=ioloop, backlog=backlog)

    def _accept_new_cons(self) -> bool:
        if not self.max_cons:
            return True
        # Counted before the new session's thread exists.
        return self._map_len() < self.max_cons

    def handle_accepted(self, sock: Any, addr: Any) -> None:
        handler = None
        ip = None
        try:
            handler = self.handler(sock, self, ioloop=self.ioloop)
            if not handler.connected:
                return
            ip = addr[0]
            self.ip_map.append(ip)
            if not self._accept_new_cons():
                handler.handle_max_cons()
                return
            if self.max_cons_per_ip and self.ip_map.count(ip) > self.max_cons_per_ip:
                handler.handle_max_cons_per_ip()
                return
            self.ioloop.unregister(handler._fileno)
            if handler._idler is not None:
                handler._idler.cancel()
        except Exception:
            logger.error(traceback.format_exc())
            if handler is not None:
                handler.close()
            elif ip is not None and ip in self.ip_map:
                self.ip_map.remove(ip)
            return
        thread = threading.Thread(
            target=self._serve_session, args=(handler,), name=f"ftp-session {addr[0]}:{addr[1]}"
        )
        thread.daemon = True
        with self._lock:
            self._active_tasks.append(thread)
        thread.start()

    def _serve_session(self, handler: Any) -> None:
        try:
            with self.ioloop.factory() as ioloop:
                handler.ioloop = ioloop
                try:
                    handler.add_channel()
                except OSError as err:
                    if err.errno == errno.EBADF:  # the client left already
                        return
                    raise
                if handler.timeout:
                    handler._idler = ioloop.call_later(
                        handler.timeout, handler.handle_timeout, _errback=handler.handle_error
                    )
                try:
                    handler.handle()
                except Exception:
                    handler.handle_error()
                self._run_loop(ioloop)
                if not handler._closed:  # server shutdown: close it ourselves
                    handler.close()
                ioloop.sched.poll()  # run the on_disconnect callback close() queued
        except Exception:
            logger.error(traceback.format_exc())
        finally:
            dispatch.release_connections()

    def _run_loop(self, ioloop: Any) -> None:
        poll = ioloop.poll
        sched = ioloop.sched
        poll_timeout = self.poll_timeout
        timeout = poll_timeout
        while (ioloop.socket_map or sched._tasks) and not self._exit.is_set():
            if ioloop.socket_map:
                poll(timeout=timeout)
            else:
                sched.reheapify()
            if sched._tasks:
                soonest = sched.poll()
                timeout = poll_timeout if soonest is None else min(soonest, poll_timeout)
                if not ioloop.socket_map and soonest:
                    self._exit.wait(min(soonest, poll_timeout))
            else:
                timeout = poll_timeout


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
    handler_options: dict[str, Any] = field(default_factory=dict)

    _LIMITS = (
        "max_connections",
        "max_connections_per_ip",
        "max_login_attempts",
        "read_limit",
        "write_limit",
    )

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

    @property
    def use_tls(self) -> bool:
        return bool(self.certfile or self.keyfile)

    def validate(self) -> None:
        """Raise ``ConfigError`` for an option that cannot work."""
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be a number from 0 to 65535, not {self.port!r}")
        if self.timeout is not None and (not isinstance(self.timeout, int) or self.timeout < 0):
            raise ConfigError(f"timeout must be 0 or more seconds, not {self.timeout!r}")
        if self.passive_ports is not None:
            bad = [p for p in self.passive_ports if not 1 <= int(p) <= 65535]
            if not self.passive_ports or bad:
                raise ConfigError(f"passive ports must be in 1-65535: {self.passive_ports!r}")
        if self.use_tls:
            if not self.certfile:
                raise ConfigError("a TLS key file was given without a certificate file")
            for label, path in (("certificate", self.certfile), ("key", self.keyfile)):
                if path and not os.path.isfile(path):
                    raise ConfigError(f"TLS {label} file not found: {path}")
                if path and not os.access(path, os.R_OK):
                    raise ConfigError(f"TLS {label} file not readable: {path}")
        for name in self._LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            least = 1 if name == "max_login_attempts" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                option = name.replace("_", "-")
                raise ConfigError(
                    f"{name.replace('_', ' ')} (--{option}, FTPSERVER_{name.upper()}) must be"
                    f" a whole number, {least} or more, not {value!r}"
                )
        errors = lockout.check_settings()
        if errors:
            raise ConfigError(errors[0])


class FTPServerRunner:
    """Create a server from a config and run it until it is stopped."""

    #: Seconds between checks of the stop flag while idle.
    poll_interval = 0.5

    def __init__(self, config: FTPServerConfig) -> None:
        self.config = config
        self._server: Any = None
        self._stop = threading.Event()

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
        if config.sendfile is not None:
            # pyftpdlib's name; 1.0 set ``sendfile``, which pyftpdlib ignores.
            options["use_sendfile"] = bool(config.sendfile)
        if config.max_login_attempts is not None:
            options["max_login_attempts"] = config.max_login_attempts
        options.update(config.handler_options)
        return options

    def create_server(self) -> Any:
        """Build the server and bind its socket; raise ``ConfigError`` or ``OSError``."""
        config = self.config
        config.validate()
        handler_class = config.handler_class
        if config.use_tls and handler_class is None:
            raise ConfigError("TLS needs pyOpenSSL: pip install 'django-ftpserver[tls]'")
        server = utils.make_server(
            server_class=config.server_class,
            handler_class=handler_class,
            authorizer_class=config.authorizer_class,
            filesystem_class=config.filesystem_class,
            host_port=(config.host, config.port),
            file_access_user=config.file_access_user,
            **self.handler_options(),
        )
        if config.max_connections is not None:
            server.max_cons = config.max_connections
        if config.max_connections_per_ip is not None:
            server.max_cons_per_ip = config.max_connections_per_ip
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
        self._server = server
        return server

    @property
    def server(self) -> Any:
        return self._server

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked)."""
        return self._server.address[:2]

    def stop(self) -> None:
        """Ask ``run()`` to return; safe from any thread and from signal handlers."""
        self._stop.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous

    def run(self, sender: Any = None) -> None:
        """Serve until stopped, sending the start and stop signals."""
        if self._server is None:
            raise RuntimeError("Server not created. Call create_server() first.")
        server = self._server
        signal_sender = sender or self.__class__
        host, port = self.address
        previous = self._install_signal_handlers()
        try:
            logger.info("FTP server started on %s:%s", host, port)
            dispatch.send(
                signals.ftp_server_started,
                sender=signal_sender,
                server=server,
                host=host,
                port=port,
            )
            loop = server.ioloop.loop
            while not self._stop.is_set():
                loop(self.poll_interval, blocking=False)
        finally:
            try:
                server.close_all()
            finally:
                logger.info("FTP server stopped on %s:%s", host, port)
                dispatch.send(
                    signals.ftp_server_stopped,
                    sender=signal_sender,
                    server=server,
                    host=host,
                    port=port,
                )
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
