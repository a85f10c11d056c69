"""Prometheus metrics of one FTP server: what its sessions did, counted cheaply.

``ServerMetrics`` owns a ``prometheus_client`` registry for one server;
``MetricsMixin`` is put in front of the server's handler class when metrics
are on (``FTPServerRunner`` does it for ``--metrics``), so a server without
metrics runs no metrics code at all.

Why counting looks the way it does: a session's commands and bytes are its
hot path. A ``prometheus_client`` counter takes a lock on every increment
and its ``labels()`` another; here each session counts its commands in a
plain dictionary of its own (only the thread serving the session writes
it) and its bytes in two integers, added once per data connection. A
scrape sums the sessions still open and the totals of those that ended,
under one lock that a session takes once, when it ends. Events that happen
once per login or per transfer (login results, transfers, durations,
lockouts, errors) use ``prometheus_client``'s own metrics.

No label ever carries a username, an address or a path: commands are
bounded to the FTP commands the handler knows, anything else is "other".
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pyftpdlib.authorizers import AuthorizerError
from pyftpdlib.ioloop import timer

from .. import signals

#: Values of the ``result`` label of ``ftpserver_logins_total``.
LOGIN_RESULTS = ("ok", "bad_password", "unknown_user", "locked_out", "refused", "error")

#: Values of the ``kind`` label of ``ftpserver_errors_total``.
ERROR_KINDS = ("session", "login", "lockout_cache")

#: Values of the ``reason`` label of ``ftpserver_connections_refused_total``:
#: the limit that refused the connection, named as its setting and as the
#: warnings of ``limits`` name it.
REFUSAL_REASONS = ("max_connections", "max_connections_per_ip", "max_pre_login")

#: The ``command`` label of a command the handler does not know.
OTHER_COMMAND = "other"

LOGIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TRANSFER_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

MISSING_CLIENT = "metrics need prometheus_client: pip install 'django-ftpserver[metrics]'"


class ServerMetrics:
    """The metrics of one server, in a registry of their own.

    Raises ``ImportError`` (with ``MISSING_CLIENT``) when ``prometheus_client``
    is not installed.
    """

    def __init__(self, known_commands: Iterable[str] = ()) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ImportError(MISSING_CLIENT) from None
        self.known_commands = frozenset(known_commands)
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._live: set[Any] = set()
        self._started = 0
        self._ended_commands: dict[tuple[str, str], int] = {}
        self._ended_received = 0
        self._ended_sent = 0
        registry = self.registry
        self.logins = Counter(
            "ftpserver_logins",
            "Login attempts (PASS), by result.",
            ["result"],
            registry=registry,
        )
        for result in LOGIN_RESULTS:
            self.logins.labels(result)
        self.login_duration = Histogram(
            "ftpserver_login_duration_seconds",
            "Time from receiving PASS to deciding the login, queueing for a login worker included.",
            buckets=LOGIN_BUCKETS,
            registry=registry,
        )
        self.lockouts = Counter(
            "ftpserver_lockouts",
            "Client addresses this server locked out after too many failed logins.",
            registry=registry,
        )
        self.transfers = Counter(
            "ftpserver_transfers",
            "File transfers (RETR, STOR, APPE, STOU), by direction and result.",
            ["direction", "result"],
            registry=registry,
        )
        self.transfer_duration = Histogram(
            "ftpserver_transfer_duration_seconds",
            "Duration of file transfers, from the data connection to its end.",
            ["direction"],
            buckets=TRANSFER_BUCKETS,
            registry=registry,
        )
        for direction in ("upload", "download"):
            self.transfer_duration.labels(direction)
            for result in ("complete", "incomplete"):
                self.transfers.labels(direction, result)
        self.refused = Counter(
            "ftpserver_connections_refused",
            "Connections answered 421 and closed at once by a connection limit, by limit "
            "(FTPSERVER_MAX_CONNECTIONS, FTPSERVER_MAX_CONNECTIONS_PER_IP, "
            "FTPSERVER_MAX_PRE_LOGIN_PERCENT).",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        self.login_timeouts = Counter(
            "ftpserver_login_timeouts",
            "Connections closed because they had not logged in within FTPSERVER_LOGIN_TIMEOUT.",
            registry=registry,
        )
        self.errors = Counter(
            "ftpserver_errors",
            "Unexpected errors: a session ended by an exception, a login check that "
            "failed (database unreachable), a lockout cache that failed.",
            ["kind"],
            registry=registry,
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        registry.register(_SessionCollector(self))

    # --- sessions (once each)

    def session_started(self, handler: Any) -> None:
        with self._lock:
            self._live.add(handler)
            self._started += 1

    def session_ended(self, handler: Any) -> None:
        """Fold the counts of ``handler`` into the totals; the scrape sees one or the other."""
        with self._lock:
            if handler not in self._live:
                return
            self._live.discard(handler)
            ended = self._ended_commands
            for key, count in handler._metric_commands.items():
                ended[key] = ended.get(key, 0) + count
            self._ended_received += handler._metric_received
            self._ended_sent += handler._metric_sent

    def snapshot(self) -> dict[str, Any]:
        """Open sessions and the summed counts, consistent with each other."""
        with self._lock:
            commands = dict(self._ended_commands)
            received, sent = self._ended_received, self._ended_sent
            live = list(self._live)
            started = self._started
        for handler in live:
            # dict.copy() runs without releasing the GIL: a consistent copy
            # even while the session's thread counts.
            for key, count in handler._metric_commands.copy().items():
                commands[key] = commands.get(key, 0) + count
            received += handler._metric_received
            sent += handler._metric_sent
        return {
            "open": len(live),
            "started": started,
            "commands": commands,
            "received": received,
            "sent": sent,
        }

    # --- events

    def command_label(self, cmd: str, arg: str) -> str:
        if cmd == "SITE" and arg:
            cmd = f"SITE {arg.split(' ', 1)[0].upper()}"
        return cmd if cmd in self.known_commands else OTHER_COMMAND


class _SessionCollector:
    """Turns ``ServerMetrics.snapshot()`` into metric families at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return list(self._families(None))

    def collect(self) -> Iterator[Any]:
        return self._families(self.metrics.snapshot())

    @staticmethod
    def _families(snapshot: dict[str, Any] | None) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        empty = snapshot is None
        snapshot = snapshot or {"open": 0, "started": 0, "commands": {}, "received": 0, "sent": 0}
        yield GaugeMetricFamily(
            "ftpserver_sessions", "Control connections open now.", value=snapshot["open"]
        )
        yield CounterMetricFamily(
            "ftpserver_sessions_started",
            "Control connections served since the server started.",
            value=snapshot["started"],
        )
        commands = CounterMetricFamily(
            "ftpserver_commands",
            "Commands received, by command and class of their first reply "
            "(1xx: a transfer started).",
            labels=["command", "reply_class"],
        )
        if not empty:
            for (command, digit), count in sorted(snapshot["commands"].items()):
                commands.add_metric([command, f"{digit}xx"], count)
        yield commands
        yield CounterMetricFamily(
            "ftpserver_received_bytes",
            "Bytes received on data connections (uploads).",
            value=snapshot["received"],
        )
        yield CounterMetricFamily(
            "ftpserver_sent_bytes",
            "Bytes sent on data connections (downloads and listings).",
            value=snapshot["sent"],
        )


class MetricsMixin:
    """Counts a session's events into ``server.metrics`` (a ``ServerMetrics``).

    Put in front of the handler class only when metrics are on: it adds a
    little work to every command and reply.
    """

    _metrics: ServerMetrics | None = None
    _metric_command: str | None = None  # the command whose first reply is awaited
    _metric_login_result: str | None = None
    #: When the PASS being checked arrived (set by ``loginloop`` when held).
    login_started: float | None = None

    def on_connect(self) -> None:
        metrics = getattr(self.server, "metrics", None)
        if metrics is not None:
            self._metric_commands: dict[tuple[str, str], int] = {}
            self._metric_received = 0
            self._metric_sent = 0
            self._metrics = metrics
            metrics.session_started(self)
        super().on_connect()

    def close(self) -> None:
        super().close()
        metrics = self._metrics
        if metrics is not None:
            self._metrics = None
            metrics.session_ended(self)

    # --- commands: plain dictionary increments on the session's own thread

    def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
        metrics = self._metrics
        if metrics is not None:
            if cmd in metrics.known_commands and cmd != "SITE":
                self._metric_command = cmd
            else:
                self._metric_command = metrics.command_label(cmd, arg)
        return super().pre_process_command(line, cmd, arg)

    def respond(self, resp: str, *args: Any, **kwargs: Any) -> None:
        command = self._metric_command
        if command is not None:
            self._metric_command = None
            key = (command, resp[:1])  # the reply class's digit; "xx" added at scrape time
            counts = self._metric_commands
            counts[key] = counts.get(key, 0) + 1
        super().respond(resp, *args, **kwargs)

    # --- data connections: bytes once per connection, transfers once each

    def _on_dtp_close(self) -> None:
        # pyftpdlib's close() deletes data_channel: a data connection that
        # closes after its control connection finds no attribute at all.
        channel = getattr(self, "data_channel", None)
        if channel is not None and self._metrics is not None:
            self._metric_received += channel.tot_bytes_received
            self._metric_sent += channel.tot_bytes_sent
        super()._on_dtp_close()

    def log_transfer(
        self, cmd: str, filename: str, receive: bool, completed: bool, elapsed: float, bytes: int
    ) -> None:
        metrics = self._metrics
        if metrics is not None:
            direction = "upload" if receive else "download"
            metrics.transfers.labels(direction, "complete" if completed else "incomplete").inc()
            metrics.transfer_duration.labels(direction).observe(elapsed)
        super().log_transfer(cmd, filename, receive, completed, elapsed, bytes)

    # --- logins

    def ftp_PASS(self, line: str) -> Any:
        metrics = self._metrics
        if metrics is None or self.authenticated or not self.username:
            return super().ftp_PASS(line)
        started = self.login_started or timer()
        self.login_started = None
        self._metric_login_result = None
        try:
            return super().ftp_PASS(line)
        finally:
            result = self._metric_login_result
            if result is None:
                locked_reply = getattr(self, "locked_out_reply", None)
                locked = locked_reply is not None and self._last_response == locked_reply
                result = "locked_out" if locked else "refused"
            metrics.logins.labels(result).inc()
            metrics.login_duration.observe(max(0.0, timer() - started))

    def handle_auth_failed(self, msg: str, password: str) -> None:
        # Called inside the ``except`` that caught the authorizer's error.
        error = sys.exc_info()[1]
        if isinstance(error, AuthorizerError):
            self._metric_login_result = "error"
            if self._metrics is not None:
                self._metrics.errors.labels("login").inc()
        else:
            self._metric_login_result = getattr(error, "reason", None) or "bad_password"
        super().handle_auth_failed(msg, password)

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        super().handle_auth_success(home, password, msg_login)
        # A right password can still be refused (home directory unavailable).
        self._metric_login_result = "ok" if self.authenticated else "error"

    def _lockout_call(self, function: Any, *args: Any) -> Any:
        metrics = self._metrics

        def counted(*call_args: Any) -> Any:
            try:
                return function(*call_args)
            except Exception:
                if metrics is not None:
                    metrics.errors.labels("lockout_cache").inc()
                raise

        return super()._lockout_call(counted, *args)

    def _emit(self, signal: Any, event: str, **kwargs: Any) -> None:
        if signal is signals.ftp_client_locked_out and self._metrics is not None:
            self._metrics.lockouts.inc()
        super()._emit(signal, event, **kwargs)

    # --- connection limits (see ``limits``): a refused connection never
    # reaches on_connect, so these read the server's metrics themselves

    def _count_refusal(self, reason: str) -> None:
        metrics = getattr(self.server, "metrics", None)
        if metrics is not None:
            metrics.refused.labels(reason).inc()

    def handle_max_cons(self) -> None:
        self._count_refusal("max_connections")
        super().handle_max_cons()

    def handle_max_cons_per_ip(self) -> None:
        self._count_refusal("max_connections_per_ip")
        super().handle_max_cons_per_ip()

    def handle_max_pre_login(self) -> None:
        self._count_refusal("max_pre_login")
        super().handle_max_pre_login()

    def handle_login_timeout(self) -> None:
        metrics = getattr(self.server, "metrics", None)
        if metrics is not None and not self.authenticated and not self._closed:
            metrics.login_timeouts.inc()
        super().handle_login_timeout()

    def handle_error(self) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels("session").inc()
        super().handle_error()


def with_metrics(handler_class: type) -> type:
    """A subclass of ``handler_class`` that counts into ``server.metrics``."""
    if issubclass(handler_class, MetricsMixin):
        return handler_class
    counted = type(f"Metrics{handler_class.__name__}", (MetricsMixin, handler_class), {})
    counted.__module__ = handler_class.__module__
    return counted
