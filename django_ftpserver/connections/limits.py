"""Connections that have not logged in: how many, from where, for how long.

Without a password, a client can still take a connection slot: bare
pyftpdlib lets one address open all 512 of them and keep each for its
300-second idle timeout, so nobody else can log in. Three limits stop that,
each on by default:

* **Per address** (``FTPSERVER_MAX_CONNECTIONS_PER_IP``): connections are
  counted per client address, IPv6 per /64 network (the block one customer
  or host can pick addresses from at will), with the lockout's own
  ``normalize_address``. ``AddressCounts`` takes the place of pyftpdlib's
  ``server.ip_map`` list, so pyftpdlib's own bookkeeping (``close()``
  removes the address) counts the same way.
* **Login timeout** (``FTPSERVER_LOGIN_TIMEOUT``): a connection not logged
  in that many seconds after its greeting gets ``421`` and is closed,
  whatever it sent meanwhile. One timer per connection on its loop's
  scheduler, set once and cancelled at login: never reset by commands,
  unlike the idle timer, so a client sending a byte every few seconds
  cannot keep its slot.
* **Reserved share** (``FTPSERVER_MAX_PRE_LOGIN_PERCENT``): the
  connections not logged in may take at most that share of
  ``max_cons``; the rest is kept for sessions that logged in. A flood from
  many addresses then leaves room for the users logged in, and for new
  logins as soon as the flood's connections time out.

Refusals and login timeouts are logged as warnings, at most one a minute
per limit (``RefusalLog``): a flood must not flood the log too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from pyftpdlib.ioloop import timer

from ..auth.lockout import normalize_address
from ..utils import number_problem

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.limits")

#: The range of each limit: name -> (least, most or None).
LIMIT_RANGES: dict[str, tuple[int, int | None]] = {
    "max_connections": (0, None),
    "max_connections_per_ip": (0, None),
    "max_login_attempts": (1, None),
    "read_limit": (0, None),
    "write_limit": (0, None),
    "login_timeout": (0, None),
    "max_pre_login_percent": (1, 100),
}


def limit_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be limit ``name`` (see ``LIMIT_RANGES``), or None."""
    least, most = LIMIT_RANGES[name]
    return number_problem(value, minimum=least, maximum=most, whole=True)


def address_key(address: str) -> str:
    """What an address is counted as: IPv4 as is, IPv6 as its /64."""
    try:
        return normalize_address(address)
    except ValueError:  # not an IP address (a Unix socket...): as given
        return str(address)


class AddressCounts:
    """Connections per address (IPv6 per /64), in place of pyftpdlib's ``ip_map`` list.

    Offers the list methods pyftpdlib uses (``append``, ``remove``,
    ``count``, ``in``), so its handlers keep it up to date, and a lock:
    sessions end on their own threads. ``remove`` of an address not
    counted does nothing.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, address: str) -> None:
        key = address_key(address)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, address: str) -> None:
        key = address_key(address)
        with self._lock:
            count = self._counts.get(key, 0)
            if count > 1:
                self._counts[key] = count - 1
            else:
                self._counts.pop(key, None)

    def count(self, address: str) -> int:
        return self._counts.get(address_key(address), 0)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.count(address) > 0

    def __len__(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def __repr__(self) -> str:
        with self._lock:
            return f"AddressCounts({self._counts!r})"


class RefusalLog:
    """Warnings about refused connections, at most one per limit per ``interval``.

    The first refusal of a limit is logged at once; the ones that follow
    within the interval are counted, and the next warning says how many
    there were. Thread-safe.
    """

    interval = 60.0

    def __init__(self, log: logging.Logger = logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def note(self, limit: str, message: str, *args: Any) -> bool:
        """Count a refusal by ``limit``; log ``message % args`` if due. Return whether it was."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(limit)
            if last is not None and now - last < self.interval:
                self._unlogged[limit] = self._unlogged.get(limit, 0) + 1
                return False
            self._last[limit] = now
            unlogged = self._unlogged.pop(limit, 0)
        if unlogged:
            message += " (%d more since the last warning)"
            args = (*args, unlogged)
        self._log.warning(message, *args)
        return True


def note_refusal(server: Any, limit: str, message: str, *args: Any) -> None:
    """Log a refusal through ``server``'s ``RefusalLog``, or directly without one."""
    refusals = getattr(server, "refusals", None)
    if isinstance(refusals, RefusalLog):
        refusals.note(limit, message, *args)
    else:
        logger.warning(message, *args)


class LoginLimitsMixin:
    """Handler side of the limits: the login timeout and the quiet refusals.

    Put it in the bases of the control handler before pyftpdlib's class.
    A server that counts the connections not logged in (``DjangoFTPServer``)
    marks each one it counted with ``_counted_pre_login``; this mixin
    tells it when that connection logs in or closes (``pre_login_ended``).
    """

    #: Seconds a connection has to log in after its greeting; 0: no limit.
    login_timeout: float = 60

    pre_login_reply = "421 Too many connections waiting to log in. Try again later."
    login_timeout_reply = "421 Not logged in within {seconds}. Disconnecting."

    _login_deadline: float | None = None  # timer() value; None: logged in, or no limit
    _login_timer: Any = None
    _counted_pre_login = False

    # --- the login timeout

    def handle(self) -> None:
        if self.login_timeout and not self.authenticated:
            self._login_deadline = timer() + self.login_timeout
            self.resume_login_timer()
        super().handle()

    def resume_login_timer(self) -> None:
        """(Re)arm the login timer on the current loop, for the time left.

        Called when the session is registered on a loop: the server moves a
        session from the accepting loop to a thread of its own at ``PASS``.
        """
        self.suspend_login_timer()
        if self._login_deadline is None or self._closed:
            return
        delay = max(0.0, self._login_deadline - timer())
        self._login_timer = self.call_later(delay, self.handle_login_timeout)

    def suspend_login_timer(self) -> None:
        """Cancel the login timer on the current loop (the deadline stays)."""
        timer_, self._login_timer = self._login_timer, None
        if timer_ is not None and not timer_.cancelled:
            timer_.cancel()

    def handle_login_timeout(self) -> None:
        """Called when the login deadline passes: 421, then close."""
        self._login_timer = None
        if self.authenticated or self._closed:
            return
        note_refusal(
            self.server,
            "login_timeout",
            "FTP connection from %s closed: not logged in within FTPSERVER_LOGIN_TIMEOUT (%s s)",
            self.remote_ip,
            _seconds(self.login_timeout),
        )
        if not getattr(self, "_ssl_accepting", False):  # mid-handshake: nothing can be said
            # Sent at once if the socket takes it; close() does not wait for
            # a client that does not read (it would keep the slot).
            with contextlib.suppress(OSError):
                seconds = _seconds(self.login_timeout)
                seconds += " second" if seconds == "1" else " seconds"
                self.respond(self.login_timeout_reply.format(seconds=seconds))
        self.close()

    def _logged_in(self) -> None:
        self._login_deadline = None
        self.suspend_login_timer()
        self._uncount()

    def _uncount(self) -> None:
        if self._counted_pre_login:
            ended = getattr(self.server, "pre_login_ended", None)
            if ended is not None:
                ended(self)
            else:
                self._counted_pre_login = False

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        super().handle_auth_success(home, password, msg_login)
        if self.authenticated:
            self._logged_in()

    def flush_account(self) -> None:
        was_authenticated = self.authenticated
        super().flush_account()
        if was_authenticated and not self.authenticated and not self._closed:
            # REIN, or USER after login: back to square one, deadline included.
            started = getattr(self.server, "pre_login_started", None)
            if started is not None:
                started(self)
            if self.login_timeout:
                self._login_deadline = timer() + self.login_timeout
                self.resume_login_timer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._login_deadline = None
            self._uncount()

    def add_channel(self, map: Any = None, events: Any = None) -> None:
        # pyftpdlib re-registers a session after a failed login's delay; one
        # closed meanwhile (its login timed out) must stay out of the loop,
        # whose descriptor may belong to a new connection by now.
        if self._closed:
            return
        super().add_channel(map, events)

    # --- refusals: one 421, then close; the server logs them, rate-limited

    def _refuse_connection(self, reply: str) -> None:
        with contextlib.suppress(OSError):
            self.respond(reply)
        self.close()

    def handle_max_cons(self) -> None:
        self._refuse_connection("421 Too many connections. Service temporarily unavailable.")

    def handle_max_cons_per_ip(self) -> None:
        self._refuse_connection("421 Too many connections from the same IP address.")

    def handle_max_pre_login(self) -> None:
        self._refuse_connection(self.pre_login_reply)


def _seconds(value: float) -> str:
    return f"{value:g}"
