"""Serve a session on the accepting thread's loop until it sends its password.

Why: a session thread costs a thread wake-up for every event it serves,
and under a burst of connections those wake-ups, each competing for the
GIL, cost more than the events themselves. Before login a session runs no
Django code at all (the greeting, ``USER``, ``AUTH TLS``, ``FEAT``...), so
it is served the way bare pyftpdlib serves everything: on the loop of the
thread that accepts connections, which handles whatever is ready in one
go. With a burst of 100 logins, that halved the server's CPU per login.

The first line that needs Django (``PASS``, which looks up the account and
checks the password) moves the session to a thread of its own, where it
stays for the rest of its life, exactly as a session that started there.
That line and any sent behind it are held, in order, and run on the new
thread; nothing Django-side runs on the loop:

* a session starts on its thread at once when ``ftp_client_connected`` has
  receivers, or when its handler class overrides a hook that runs before
  login (``on_connect``, ``on_disconnect``, ``handle``, ``ftp_USER``): such
  code may query the database;
* a session that ends before it moved (QUIT, a timeout, a client gone)
  sends ``ftp_client_disconnected`` from a session thread, when the signal
  has receivers.
"""

from __future__ import annotations

import functools
from typing import Any

from pyftpdlib.ioloop import timer

from .. import signals
from ..dispatch import signal_sender_of

#: Hooks that run before login (the refusals and the login timeout too); a
#: handler class overriding one starts its sessions on their own threads.
PRE_LOGIN_HOOKS = (
    "on_connect",
    "on_disconnect",
    "handle",
    "ftp_USER",
    "handle_max_cons",
    "handle_max_cons_per_ip",
    "handle_max_pre_login",
    "handle_login_timeout",
)


@functools.cache
def _only_own_pre_login_hooks(cls: type) -> bool:
    # Every class of the MRO, not only the first owner of a hook: the
    # server puts mixins of its own in front of a project's class (metrics,
    # session tracking), and they call the project's hook through super().
    for klass in cls.__mro__:
        if klass.__module__.startswith(("django_ftpserver.", "pyftpdlib.", "builtins")):
            continue
        if any(name in klass.__dict__ for name in PRE_LOGIN_HOOKS):
            return False  # a project's own pre-login hook: it may query
    return True


class LoginLoopMixin:
    """Lets ``server.DjangoFTPServer`` serve the session on its loop until login.

    Put it first in the bases of the handler.
    """

    #: Commands (upper case) that move the session to its own thread before they run.
    thread_commands = frozenset({"PASS"})

    #: False: always serve sessions of this handler on their own threads.
    serve_login_on_loop = True

    _loop_server: Any = None  # the server whose loop serves this session now
    _held_lines: list[tuple[bytes, bool]] | None = None  # received since the move began
    _closed_on_loop = False
    _deferred_signals: list[tuple[Any, str, dict[str, Any]]] | None = None
    #: When the held ``PASS`` arrived (``timer()``), for the login duration metric.
    login_started: float | None = None

    @classmethod
    def can_serve_on_loop(cls) -> bool:
        """Whether sessions of this class may start on the accepting loop."""
        return cls.serve_login_on_loop and _only_own_pre_login_hooks(cls)

    def start_on_loop(self, server: Any, start: Any = None) -> None:
        """Greet (or ``start()``: refuse) the client from the accepting loop.

        The server checked it may.
        """
        self._loop_server = server
        (start or self.handle)()

    # --- holding the lines that need a thread

    def found_terminator(self) -> None:
        if self._loop_server is None:
            super().found_terminator()
            return
        data = b"".join(self._in_buffer)
        discarding = getattr(self, "_discarding_line", False)
        if self._held_lines is None:
            command = data.split(b" ", 1)[0].upper().decode("ascii", "replace")
            if discarding or command not in self.thread_commands:
                super().found_terminator()
                return
            self._held_lines = []
            self.login_started = timer()  # metrics: the login's wait for a worker counts
        self._held_lines.append((data, discarding))
        self._in_buffer = []
        self._in_buffer_len = 0
        self._discarding_line = False

    def handle_read(self) -> None:
        super().handle_read()
        if self._held_lines is not None and self._loop_server is not None and not self._closed:
            # After this poll's events, not now: the loop may still have a
            # write event of this socket to dispatch.
            self.ioloop.call_later(0, self._move_to_thread, _errback=self.handle_error)

    def _move_to_thread(self) -> None:
        server = self._loop_server
        if server is None or self._closed:
            return  # moved already, or the client left meanwhile
        self._loop_server = None
        server.move_to_thread(self)

    def _run_held(self, count: int | None = None) -> None:
        """Run ``count`` held lines (all by default) as if just received."""
        lines = self._held_lines or []
        run, rest = (lines, []) if count is None else (lines[:count], lines[count:])
        self._held_lines = rest or None
        # What arrived after the last held line (a partial line) stays.
        partial = (self._in_buffer, self._in_buffer_len, getattr(self, "_discarding_line", False))
        try:
            for data, discarding in run:
                if self._closed:
                    return
                self._in_buffer = [data] if data else []
                self._in_buffer_len = len(data)
                self._discarding_line = discarding
                self.found_terminator()
        finally:
            self._in_buffer, self._in_buffer_len, self._discarding_line = partial

    def held_password(self) -> str:
        """The password of the held ``PASS`` line ("" if the first held line is not one)."""
        if not self._held_lines:
            return ""
        data = self._held_lines[0][0]
        if data[:5].upper() != b"PASS ":
            return ""
        try:
            return self.decode(data[5:])
        except UnicodeDecodeError:
            return ""

    def login_on_worker(self) -> None:
        """Run the held ``PASS`` on a login worker; its signals wait for the thread.

        The session is on no loop meanwhile (its own loop is not running
        yet), so nothing else touches it; the reply goes out from here.
        """
        self._deferred_signals = []
        self._run_held(1)

    def resume_on_thread(self) -> None:
        """On the session's thread: send the signals held back, run the held lines."""
        deferred, self._deferred_signals = self._deferred_signals or [], None
        for signal, event, kwargs in deferred:
            super()._emit(signal, event, **kwargs)
        self._run_held()

    def _emit(self, signal: Any, event: str, **kwargs: Any) -> None:
        if self._deferred_signals is not None:
            self._deferred_signals.append((signal, event, kwargs))
            return
        super()._emit(signal, event, **kwargs)

    # --- ending on the loop

    def close(self) -> None:
        server = self._loop_server
        if server is None or self._closed:
            super().close()
            return
        self._loop_server = None
        self._closed_on_loop = True
        try:
            super().close()
        finally:
            server.session_ended_on_loop(self)

    def on_disconnect(self) -> None:
        if not self._closed_on_loop:
            super().on_disconnect()
            return
        self._closed_on_loop = False
        if signals.ftp_client_disconnected.has_listeners(signal_sender_of(self)):
            self.server.run_off_loop(super().on_disconnect)
        else:
            super().on_disconnect()
