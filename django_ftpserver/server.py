"""Build and run an FTP server, without any command-line concerns.

``FTPServerConfig`` says what to serve, ``FTPServerRunner`` builds the server
and runs it until stopped (SIGTERM, SIGINT or ``stop()``), sending
``ftp_server_started`` and ``ftp_server_stopped`` exactly once each.

Concurrency: ``DjangoFTPServer`` gives every logged-in session a thread of
its own. Password hashing, ORM queries and signal receivers are plain
blocking Django code; on a single event loop (pyftpdlib's default, and
django-ftpserver 1.0's) each of them stalls every connected client. On a
thread per session they stall only their own session. Receivers of a
session run on that session's thread, in order. Before login a session runs
no Django code and is served on the accepting thread's loop
(``loginloop``); its ``PASS`` runs on one of the authorizer's login workers
(``workers.DatabaseWorkers``), where hashing (which releases the GIL) uses
all cores. See ``docs/performance.rst``.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import ipaddress
import logging
import os
import select
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from pyftpdlib.ioloop import IOLoop, timer
from pyftpdlib.servers import FTPServer, ThreadedFTPServer

from . import dispatch, signals, utils
from .auth import lockout
from .auth.loginloop import LoginLoopMixin
from .auth.workers import DatabaseWorkers
from .conf import conf
from .connections.limits import LIMIT_RANGES, AddressCounts, RefusalLog, address_key, limit_problem
from .connections.proxyprotocol import HeaderReader, ProxiedSocket, ProxyHeader, TrustedProxies
from .handlers import throttled_dtp_handler
from .ops import sessions as livesessions

logger = logging.getLogger(__name__)

try:
    from OpenSSL import SSL

    _TLS_ERRORS: tuple[type[BaseException], ...] = (SSL.Error,)
except ImportError:  # pragma: no cover - TLS is optional
    _TLS_ERRORS = ()


class ConfigError(ValueError):
    """A server option that cannot work; the message names it."""


class DjangoFTPServer(ThreadedFTPServer):
    """A thread per logged-in session; the accepting loop serves the rest.

    Until it sends its password, a session is served on the accepting
    thread's loop (see ``loginloop``); from then on, by a thread of its own
    for as long as it lasts.
    A thread whose session ended waits ``thread_idle_timeout`` seconds for
    the next one before ending: starting a thread costs the accepting thread
    a wait for the new thread to run, about 1 ms once 100 sessions compete
    for the GIL, which made the accepting thread the bottleneck of a burst
    of logins. Threads are reused, one session at a time; a thread holds no
    database connection between sessions.

    Other differences from pyftpdlib's ``ThreadedFTPServer``:

    * ``ftp_client_connected`` receivers run on the session's thread, not
      on the thread accepting connections; so does the refusal of a client
      over ``max_cons`` and its ``ftp_client_disconnected``;
    * the idle timer lives on the session's own loop (pyftpdlib leaves it on
      the accepting thread's scheduler, shared unsafely between threads);
    * the stop flag belongs to the instance, not the class, so stopping one
      server does not stop another in the same process;
    * a session ended by server shutdown still gets ``on_disconnect``;
    * the server gets an IOLoop of its own unless given one: pyftpdlib's
      default is the process-wide ``IOLoop.instance()``, so two servers
      would poll one loop from two threads, and closing one (``close_all``
      closes its loop) would close the other's listening socket;
    * ``max_cons`` counts sessions (not threads) exactly: pyftpdlib's
      threaded server compares its count of sessions with ``<=`` and so let
      one more in;
    * ``max_cons_per_ip`` counts IPv6 clients per /64 (``limits.AddressCounts``);
    * connections not logged in may take at most
      ``max_pre_login_percent`` of ``max_cons``; the rest is kept for
      sessions that logged in (see ``limits``);
    * refusals are logged as warnings at most once a minute per limit
      (``refusals``), and refused clients are answered on the accepting
      loop when the handler allows it, without a thread each.
    """

    #: Share of ``max_cons``, in percent, that connections not logged in may take.
    max_pre_login_percent = 80

    #: Seconds a session thread with nothing to serve waits before ending.
    thread_idle_timeout = 60.0

    #: The server's ``metrics.ServerMetrics`` when metrics are on (``--metrics``).
    metrics: Any = None

    #: The ``livesessions.SessionRegistry`` of the open sessions, when published.
    session_registry: Any = None

    #: ``time.monotonic()`` of the accepting loop's last turn (``health.liveness``).
    loop_heartbeat: float | None = None

    #: Longest sleep of an idle session's loop. Shutdown wakes the loops
    #: through a pipe registered in each of them, so they need not wake up
    #: every second to look at the stop flag (500 idle sessions did 500
    #: wake-ups a second, each taking the GIL from the busy ones).
    poll_timeout = 30.0

    def __init__(
        self, address_or_socket: Any, handler: Any, ioloop: Any = None, backlog: int = 100
    ) -> None:
        self._lock = threading.Lock()
        self._exit = threading.Event()
        # Sessions waiting for a thread, and the count of idle threads not
        # yet handed one, both under one condition: a thread that took a
        # session but had not yet said so must not pass for idle, or the
        # next session waits for the end of that one.
        self._handoff = threading.Condition(self._lock)
        self._sessions: collections.deque[Any] = collections.deque()
        self._session_threads: set[threading.Thread] = set()
        self._idle_threads = 0
        self._active_sessions = 0
        self._pre_login = 0
        self._closed_all = False
        own_ioloop = ioloop is None
        ioloop = ioloop or IOLoop.factory()
        try:
            super().__init__(address_or_socket, handler, ioloop=ioloop, backlog=backlog)
        except BaseException:
            if own_ioloop:  # a failed bind must not leak the poller's descriptor
                ioloop.close()
            raise
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self.ip_map = AddressCounts()
        self.refusals = RefusalLog(logger)

    @property
    def active_sessions(self) -> int:
        """Sessions being served now."""
        return self._active_sessions

    @property
    def pre_login_sessions(self) -> int:
        """Sessions being served now that have not logged in."""
        return self._pre_login

    @property
    def max_pre_login(self) -> int:
        """Most connections not logged in at once; 0: no limit of its own."""
        if not self.max_cons or self.max_pre_login_percent >= 100:
            return 0
        return max(1, self.max_cons * self.max_pre_login_percent // 100)

    def pre_login_started(self, handler: Any) -> None:
        """``handler``'s session is not logged in (any more): count it."""
        with self._lock:
            if not handler._counted_pre_login:
                handler._counted_pre_login = True
                self._pre_login += 1

    def pre_login_ended(self, handler: Any) -> None:
        """``handler``'s session logged in or closed: it no longer counts."""
        with self._lock:
            if handler._counted_pre_login:
                handler._counted_pre_login = False
                self._pre_login -= 1

    @property
    def session_threads(self) -> int:
        """Session threads alive now, serving or waiting for a session."""
        with self._lock:
            return len(self._session_threads)

    def _map_len(self) -> int:
        return self._active_sessions

    def _refresh_tasks(self) -> None:
        pass  # threads leave the set themselves

    def serve_forever(
        self, timeout: float | None = None, blocking: bool = True, handle_exit: bool = True
    ) -> None:
        """Serve until interrupted, as pyftpdlib's; ``close_all()`` after, with ``handle_exit``.

        pyftpdlib's threaded server polls every second whatever is
        scheduled; here each poll lasts until the next scheduled call (a
        failed login's delayed reply, an idle timeout) at most, computed
        after the previous events were handled.
        """
        if not blocking:
            super().serve_forever(timeout, blocking, handle_exit)
            return
        ioloop = self.ioloop
        poll, sched = ioloop.poll, ioloop.sched
        longest = self.poll_timeout if timeout is None else timeout
        try:
            while ioloop.socket_map:
                wait = longest
                if sched._tasks:
                    wait = min(wait, max(0.0, sched._tasks[0].timeout - timer()))
                poll(wait)
                sched.poll()
        except (KeyboardInterrupt, SystemExit):
            if not handle_exit:
                raise
        if handle_exit:
            self.close_all()

    def close_all(self) -> None:
        """Stop serving, end every session, then stop the authorizer's workers."""
        if self._closed_all:
            return
        self._closed_all = True
        try:
            self._active_tasks_idler.cancel()
            self._exit.set()
            with contextlib.suppress(OSError):
                os.write(self._wake_write, b"x")  # never read: wakes every loop
            with self._lock:
                threads = list(self._session_threads)
                self._handoff.notify_all()
            for thread in threads:
                thread.join(self.join_timeout)
                if thread.is_alive():
                    logger.warning("session thread %s still running after shutdown", thread.name)
            # Sessions still on the loop: closing the loop would drop the
            # on_disconnect calls their close() queues.
            for channel in list(self.ioloop.socket_map.values()):
                if isinstance(channel, LoginLoopMixin) and channel._loop_server is self:
                    channel.close()
            self.ioloop.sched.poll()
            FTPServer.close_all(self)
            for fd in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)
        finally:
            close = getattr(self.handler.authorizer, "close", None)
            if callable(close):
                close()

    def _accept_new_cons(self) -> bool:
        if not self.max_cons:
            return True
        # Counted before the new session's thread exists.
        return self._map_len() < self.max_cons

    #: Peers allowed to send a PROXY protocol header (``proxyprotocol``);
    #: empty: none, every connection is served as coming from its peer.
    proxy_protocol: TrustedProxies = TrustedProxies(())
    #: Seconds a trusted peer has to send its whole PROXY header.
    proxy_header_timeout = 5.0

    def handle_accepted(self, sock: Any, addr: Any) -> None:
        if self.proxy_protocol and addr[0] in self.proxy_protocol:
            self._read_proxy_header(sock, addr)
            return
        self._accept_session(sock, addr)

    def _read_proxy_header(self, sock: Any, addr: Any) -> None:
        """Serve ``sock`` once its PROXY header named the client (see ``proxyprotocol``).

        The header is read on this loop, before any handler exists: the
        client's address then holds from the very first thing the server
        does with the connection (the per-address limit, the greeting,
        ``ftp_client_connected``), exactly as for a direct connection.
        """
        peer = f"{addr[0]}:{addr[1]}"

        def on_header(header: ProxyHeader) -> None:
            if header.source is None:
                # LOCAL (the balancer's health check), UNKNOWN, UNSPEC or
                # UNIX: the protocol says to use the connection's own addresses.
                log = logger.debug if header.command == "LOCAL" else logger.info
                log(
                    "FTP PROXY v%d header from %s names no client (%s %s): "
                    "serving it as the balancer's own connection",
                    header.version,
                    peer,
                    header.command,
                    header.family,
                )
                self._accept_session(sock, addr)
                return
            try:
                proxied = ProxiedSocket.wrap(sock, header.source)
            except OSError:  # the balancer left already
                with contextlib.suppress(OSError):
                    sock.close()
                return
            logger.debug(
                "FTP PROXY v%d header from %s: client %s", header.version, peer, header.source
            )
            self._accept_session(proxied, header.source)

        def on_failure(reason: str, sent_something: bool) -> None:
            # A balancer's plain TCP health check connects and leaves: not news.
            quiet = not sent_something and "closed" in reason
            log = logger.debug if quiet else logger.warning
            log("FTP connection from trusted proxy %s closed: %s", peer, reason)

        HeaderReader(
            sock, peer, self.ioloop, self.proxy_header_timeout, on_header, on_failure
        ).start()

    def _accept_session(self, sock: Any, addr: Any) -> None:
        """What pyftpdlib's ``handle_accepted`` does, for the client at ``addr``."""
        handler = None
        ip = None
        refuse = None
        on_loop = False
        try:
            handler = self.handler(sock, self, ioloop=self.ioloop)
            if not handler.connected:
                return
            ip = addr[0]
            self.ip_map.append(ip)
            refuse = self._refusal(handler, ip)
            if refuse is None:
                on_loop = self._login_on_loop(handler)
            else:
                # A refusal runs no Django code unless the handler says so;
                # its ftp_client_disconnected goes to a session thread when
                # it has receivers (``LoginLoopMixin.on_disconnect``).
                on_loop = self._refuse_on_loop(handler)
            if not on_loop:
                self._detach(handler)
        except Exception:
            logger.error(traceback.format_exc())
            if handler is not None:
                handler.close()
            elif ip is not None and ip in self.ip_map:
                self.ip_map.remove(ip)
            return
        with self._lock:
            self._active_sessions += 1
            if refuse is None and hasattr(handler, "_counted_pre_login"):
                handler._counted_pre_login = True
                self._pre_login += 1
        if on_loop:
            try:
                handler.start_on_loop(self, refuse)
            except Exception:
                handler.handle_error()
            return
        self._queue(self._serve_session, handler, refuse or handler.handle, refuse is None)

    def _refusal(self, handler: Any, ip: str) -> Any:
        """The handler method that refuses this new connection, or None to serve it.

        The limits in order: all connections, connections from this
        address (IPv6: its /64), connections not logged in. Each refusal is
        logged, at most once a minute per limit.
        """
        if not self._accept_new_cons():
            self.refusals.note(
                "max_connections",
                "FTP connection from %s refused: FTPSERVER_MAX_CONNECTIONS (%d) reached",
                ip,
                self.max_cons,
            )
            return handler.handle_max_cons
        if self.max_cons_per_ip and self.ip_map.count(ip) > self.max_cons_per_ip:
            self.refusals.note(
                "max_connections_per_ip",
                "FTP connection from %s refused: FTPSERVER_MAX_CONNECTIONS_PER_IP (%d) "
                "reached by %s",
                ip,
                self.max_cons_per_ip,
                address_key(ip),
            )
            return handler.handle_max_cons_per_ip
        limit = self.max_pre_login
        refuse = getattr(handler, "handle_max_pre_login", None)
        if limit and refuse is not None and self._pre_login >= limit:
            self.refusals.note(
                "max_pre_login",
                "FTP connection from %s refused: FTPSERVER_MAX_PRE_LOGIN_PERCENT "
                "reached (%d%% of %d connections: %d not logged in)",
                ip,
                self.max_pre_login_percent,
                self.max_cons,
                limit,
            )
            return refuse
        return None

    def _detach(self, handler: Any) -> None:
        """Take ``handler`` off this server's loop, its idle and login timers with it."""
        self.ioloop.unregister(handler._fileno)
        if handler._idler is not None:
            handler._idler.cancel()
        suspend = getattr(handler, "suspend_login_timer", None)
        if suspend is not None:
            suspend()

    @staticmethod
    def _attach(handler: Any, ioloop: Any, idle_timer: bool) -> None:
        """Register ``handler`` on ``ioloop``, with a new idle timer there if asked."""
        handler.ioloop = ioloop
        handler.add_channel(events=getattr(handler, "_wanted_io_events", None))
        if idle_timer and handler.timeout:
            handler._idler = ioloop.call_later(
                handler.timeout, handler.handle_timeout, _errback=handler.handle_error
            )
        resume = getattr(handler, "resume_login_timer", None)
        if resume is not None:
            resume()  # on the new loop, for the time left

    def _login_on_loop(self, handler: Any) -> bool:
        """Whether ``handler``'s session starts on this loop (see ``loginloop``)."""
        cls = type(handler)
        if not isinstance(handler, LoginLoopMixin) or not cls.can_serve_on_loop():
            return False
        return not signals.ftp_client_connected.has_listeners(dispatch.signal_sender_of(handler))

    @staticmethod
    def _refuse_on_loop(handler: Any) -> bool:
        """Whether ``handler`` may be refused on this loop (no thread for a refusal)."""
        return isinstance(handler, LoginLoopMixin) and type(handler).can_serve_on_loop()

    def move_to_thread(self, handler: Any) -> None:
        """Serve ``handler``'s session on a thread from now on (see ``loginloop``).

        Called on this server's loop, between two polls, once the session
        sent ``PASS``. With the app's authorizer, the ``PASS`` runs on one of
        its login workers, on the session's own (not yet running) loop, and
        then a session thread takes over: the 230 goes out as soon as the
        check is done, without first waiting for the session thread.
        """
        self._detach(handler)
        workers_for = getattr(self.handler.authorizer, "workers_for", None)
        workers = workers_for(handler.username, handler.held_password()) if workers_for else None
        if not isinstance(workers, DatabaseWorkers):
            self._queue(self._serve_session, handler, handler.resume_on_thread, True)
            return
        ioloop = self.ioloop.factory()
        try:
            self._attach(handler, ioloop, idle_timer=True)
        except Exception:
            ioloop.close()
            raise
        workers.submit_batched(self._login_on_worker, (handler, ioloop))

    def _login_on_worker(self, batch: list[tuple[Any, Any]]) -> None:
        """Run the held ``PASS`` of each session of ``batch``; then a thread serves it.

        A batch is the logins that arrived while the worker was busy (see
        ``DatabaseWorkers.submit_batched``): their accounts are read in one
        query.
        """
        prefetched = getattr(self.handler.authorizer, "prefetched_accounts", None)
        usernames = [handler.username for handler, _ in batch]
        with prefetched(usernames) if prefetched else contextlib.nullcontext():
            for handler, ioloop in batch:
                try:
                    handler.login_on_worker()
                except Exception:
                    handler.handle_error()
                finally:
                    self._queue(
                        self._serve_session, handler, handler.resume_on_thread, False, ioloop
                    )

    def session_ended_on_loop(self, handler: Any) -> None:
        """A session served on this loop was closed before it moved."""
        with self._lock:
            self._active_sessions -= 1

    def run_off_loop(self, func: Any, *args: Any) -> None:
        """Run ``func(*args)`` on a session thread (Django code of a session on the loop)."""
        if self._exit.is_set():  # shutting down: no session left to stall
            self._run_task(func, *args)
            return
        with self._lock:
            self._active_sessions += 1  # counted as a session until it ran
        self._queue(self._run_task, func, *args)

    def _run_task(self, func: Any, *args: Any) -> None:
        try:
            func(*args)
        except Exception:
            logger.error(traceback.format_exc())
        finally:
            dispatch.release_connections()

    def _queue(self, func: Any, *args: Any) -> None:
        """Have a session thread run ``func(*args)``, starting one if none is idle."""
        with self._lock:
            self._sessions.append((func, args))
            if self._idle_threads:
                self._idle_threads -= 1
                self._handoff.notify()
                return
            thread = threading.Thread(target=self._session_thread, name="ftp-session")
            thread.daemon = True
            self._session_threads.add(thread)
            # Started under the lock: close_all() joins the threads of the
            # set, and joining one not started yet raises.
            thread.start()

    def _next_session(self) -> Any:
        """The next task to run, or ``None`` when this thread is to end."""
        with self._lock:
            while not self._sessions:
                if self._exit.is_set():
                    return None
                self._idle_threads += 1
                if not self._handoff.wait(self.thread_idle_timeout):
                    self._idle_threads -= 1  # nobody handed this thread a session
                    if not self._sessions:
                        return None
            return self._sessions.popleft()

    def _session_thread(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                item = self._next_session()
                if item is None:
                    return
                func, args = item
                try:
                    func(*args)
                finally:
                    me.name = "ftp-session"
                    with self._lock:
                        self._active_sessions -= 1
        finally:
            with self._lock:
                self._session_threads.discard(me)

    def _serve_session(
        self, handler: Any, start: Any, idle_timer: bool, ioloop: Any = None
    ) -> None:
        """Serve ``handler`` on this thread until it ends; ``start()`` first.

        ``start`` greets the client, refuses it, or (for a session moved
        from the loop) runs what it sent meanwhile. ``ioloop`` is the
        session's loop when it has one already, the handler registered.
        """
        threading.current_thread().name = f"ftp-session {handler.remote_ip}:{handler.remote_port}"
        try:
            with ioloop or self.ioloop.factory() as ioloop:
                wakeable = self._register_wakeup(ioloop)
                if handler.ioloop is not ioloop:
                    if handler._closed:  # the client left already
                        return
                    try:
                        self._attach(handler, ioloop, idle_timer)
                    except OSError as err:
                        if err.errno == errno.EBADF:  # the client left already
                            return
                        raise
                try:
                    start()
                except Exception:
                    handler.handle_error()
                self._run_loop(ioloop, self.poll_timeout if wakeable else 1.0)
                if not handler._closed:  # server shutdown: close it ourselves
                    handler.close()
                ioloop.sched.poll()  # run the on_disconnect callback close() queued
        except Exception:
            logger.error(traceback.format_exc())
        finally:
            dispatch.release_connections()

    def _register_wakeup(self, ioloop: Any) -> bool:
        """Make shutdown wake ``ioloop``; False for a loop that cannot (then: poll each 1 s).

        The pipe's descriptor is not in the loop's socket map, so its events
        are ignored; they only end the wait.
        """
        poller = getattr(ioloop, "_poller", None)
        if not callable(getattr(poller, "register", None)):  # kqueue, select
            return False
        try:
            poller.register(self._wake_read, select.POLLIN)
        except (OSError, ValueError):
            return False
        return True

    def _run_loop(self, ioloop: Any, poll_timeout: float = 1.0) -> None:
        """Serve one session's loop until its socket is closed and its calls ran.

        A closed session leaves its idle timer behind, cancelled but still
        in the heap; pyftpdlib's own loop waits on it, keeping the thread
        (and its place under ``max_cons``) for another second. Cancelled
        calls are dropped as soon as there is no socket left, so the thread
        ends with its client.
        """
        poll = ioloop.poll
        sched = ioloop.sched
        release_opened = dispatch.release_opened_connections
        while not self._exit.is_set():
            if ioloop.socket_map:
                # The next call's delay, computed now: a call scheduled while
                # handling the last events (a throttled transfer resuming, a
                # failed login's delayed reply) must not wait for the timeout
                # computed before it existed.
                timeout = poll_timeout
                if sched._tasks:
                    timeout = min(timeout, max(0.0, sched._tasks[0].timeout - timer()))
                poll(timeout=timeout)
            else:
                sched.reheapify()
                if not sched._tasks:
                    return
                # No socket, a call pending (a failed login's delay): sleep.
                delay = sched._tasks[0].timeout - timer()
                if delay > 0:
                    self._exit.wait(min(delay, poll_timeout))
                    continue
            if sched._tasks:
                sched.poll()
            # Whatever ran on this thread and queried (a lockout in a
            # database cache, a storage backend) keeps no connection open.
            release_opened()


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
    """Runs on the accepting loop: the loop turned (``health.liveness``)."""
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
