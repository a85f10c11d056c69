"""The threaded FTP server: how sessions are accepted and given threads.

Concurrency: ``DjangoFTPServer`` gives every logged-in session a thread of
its own. Password hashing, ORM queries and signal receivers are plain
blocking Django code; on a single event loop (pyftpdlib's default, and
django-ftpserver 1.0's) each of them stalls every connected client. On a
thread per session they stall only their own session. Receivers of a
session run on that session's thread, in order. Before login a session runs
no Django code and is served on the accepting thread's loop
(``auth.loginloop``); its ``PASS`` runs on one of the authorizer's login
workers (``auth.workers.DatabaseWorkers``), where hashing (which releases the
GIL) uses all cores. See ``docs/performance.rst``.

Building and running the server (``FTPServerConfig``, ``FTPServerRunner``)
lives in ``django_ftpserver.runner``; their names stay importable from here,
where django-ftpserver 1.0 projects import them.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import select
import threading
import traceback
from typing import Any

from pyftpdlib.ioloop import IOLoop, timer
from pyftpdlib.servers import FTPServer, ThreadedFTPServer

from . import dispatch, signals
from .auth.loginloop import LoginLoopMixin
from .auth.workers import DatabaseWorkers

# The imports marked noqa keep names importable from here that were before
# the runner moved out (tests/data/public_names.json).
from .conf import conf  # noqa: F401
from .connections.limits import (  # noqa: F401
    LIMIT_RANGES,
    AddressCounts,
    RefusalLog,
    address_key,
    limit_problem,
)
from .connections.proxyprotocol import HeaderReader, ProxiedSocket, ProxyHeader, TrustedProxies
from .handlers import throttled_dtp_handler  # noqa: F401

logger = logging.getLogger(__name__)


class DjangoFTPServer(ThreadedFTPServer):
    """A thread per logged-in session; the accepting loop serves the rest.

    Until it sends its password, a session is served on the accepting
    thread's loop (see ``auth.loginloop``); from then on, by a thread of its own
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
    * ``max_cons_per_ip`` counts IPv6 clients per /64 (``connections.limits.AddressCounts``);
    * connections not logged in may take at most
      ``max_pre_login_percent`` of ``max_cons``; the rest is kept for
      sessions that logged in (see ``connections.limits``);
    * refusals are logged as warnings at most once a minute per limit
      (``refusals``), and refused clients are answered on the accepting
      loop when the handler allows it, without a thread each.
    """

    #: Share of ``max_cons``, in percent, that connections not logged in may take.
    max_pre_login_percent = 80

    #: Seconds a session thread with nothing to serve waits before ending.
    thread_idle_timeout = 60.0

    #: The server's ``ops.metrics.ServerMetrics`` when metrics are on (``--metrics``).
    metrics: Any = None

    #: The ``ops.sessions.SessionRegistry`` of the open sessions, when published.
    session_registry: Any = None

    #: ``time.monotonic()`` of the accepting loop's last turn (``ops.health.liveness``).
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

    #: Peers allowed to send a PROXY protocol header (``connections.proxyprotocol``);
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
        """Serve ``sock`` once its PROXY header named the client (``connections.proxyprotocol``).

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
        """Whether ``handler``'s session starts on this loop (see ``auth.loginloop``)."""
        cls = type(handler)
        if not isinstance(handler, LoginLoopMixin) or not cls.can_serve_on_loop():
            return False
        return not signals.ftp_client_connected.has_listeners(dispatch.signal_sender_of(handler))

    @staticmethod
    def _refuse_on_loop(handler: Any) -> bool:
        """Whether ``handler`` may be refused on this loop (no thread for a refusal)."""
        return isinstance(handler, LoginLoopMixin) and type(handler).can_serve_on_loop()

    def move_to_thread(self, handler: Any) -> None:
        """Serve ``handler``'s session on a thread from now on (see ``auth.loginloop``).

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


#: Names that live in ``django_ftpserver.runner`` and were importable from here.
_RUNNER_NAMES = frozenset({"ConfigError", "FTPServerConfig", "FTPServerRunner", "check_tls_files"})


def __getattr__(name: str) -> Any:
    """The runner's names, imported on first use (the runner imports this module)."""
    if name in _RUNNER_NAMES:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
