"""Where the lockout is enforced: brute-force protection at ``PASS``.

``auth.lockout`` keeps the failure counts (in a Django cache); this module is
the session's side of it, refusing a locked-out address before its
password is looked at and counting failures as they happen.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import signals
from ..auth import lockout

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


class LoginGuardMixin:
    """Brute-force protection at login.

    * A client whose address is locked out (``auth.lockout``) is refused at
      ``PASS`` before its password is looked at, so guessing costs the
      server no hashing, and is disconnected.
    * A refused password counts against the address at once. pyftpdlib
      calls ``on_login_failed`` only after ``auth_failed_timeout`` (3 s),
      and not at all when the server stops meanwhile, so counting there
      would let a client skip the count by making the server wait.
    * ``max_login_attempts`` holds for pipelined commands. pyftpdlib counts
      a connection's attempts in that delayed callback too, while it goes
      on reading the commands already received: a client sending many
      ``USER``/``PASS`` pairs in one go had every password checked. Here a
      connection's failures count at once, and a ``PASS`` past the limit is
      refused unchecked.

    A lockout cache that fails is logged and lets the login go on: an
    unreachable cache must not lock every user out.
    """

    locked_out_reply = "530 Too many failed logins from your address; try again later."
    too_many_attempts_reply = "530 Too many failed logins on this connection."

    #: Failed logins on this connection, counted when they happen.
    _failed_logins = 0
    #: The failures of this username from this address, as the last PASS found them.
    _own_failures: int | None = None

    def _lockout_call(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Exception:
            logger.exception("FTP lockout cache failed; login checks go on without it")
            return None

    def ftp_PASS(self, line: str) -> Any:
        if self.authenticated or not self.username:
            return super().ftp_PASS(line)  # pyftpdlib's 503 replies
        if self._failed_logins >= self.max_login_attempts:
            self.username = ""
            self.respond(self.too_many_attempts_reply)
            return None  # the pending failure's callback disconnects
        state = self._lockout_call(lockout.check, self.remote_ip, self.username)
        self._own_failures = state[1] if state else None
        if state and state[0]:
            logger.info(
                "FTP login of %r from %s refused: address locked out", self.username, self.remote_ip
            )
            self.username = ""
            self.respond(self.locked_out_reply)
            self.close_when_done()
            return None
        return super().ftp_PASS(line)

    def handle_auth_failed(self, msg: str, password: str) -> None:
        username = self.username
        self._failed_logins += 1
        super().handle_auth_failed(msg, password)
        locked = self._lockout_call(lockout.record_failure, self.remote_ip, username)
        if locked is not None:
            logger.warning(
                "FTP address %s locked out for %d s after %d failed logins (last as %r)",
                locked.address,
                round(locked.until - locked.locked_at),
                locked.failures,
                username,
            )
            self._emit(
                signals.ftp_client_locked_out,
                "client locked out",
                remote_ip=self.remote_ip,
                username=username,
            )

    def add_channel(self, map: Any = None, events: Any = None) -> None:
        # pyftpdlib's delayed reply to a failed login re-registers the
        # socket first and only then checks whether the session was closed
        # meanwhile: a client that sent ``PASS wrong`` and ``QUIT`` in one
        # packet got its session closed before the reply was due, and the
        # callback raised EBADF (a traceback in the log), or worse,
        # registered a descriptor number the kernel had given to another
        # connection since. A closed session registers nothing; the rest of
        # the callback (no reply, ``ftp_login_failed``) still runs.
        if self._closed:
            return
        super().add_channel(map, events)

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        # Before the 230 goes out. The password was right even if the login
        # is refused further on (home directory): the typos stop counting.
        self._lockout_call(
            lockout.record_success, self.remote_ip, self.username, self._own_failures
        )
        self._failed_logins = 0
        super().handle_auth_success(home, password, msg_login)
