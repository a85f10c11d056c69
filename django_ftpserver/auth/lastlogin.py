"""Writing ``last_login`` off the login's path, and retrying a lost connection.

``LastLoginRecorder`` writes the ``last_login`` of logins behind their
reply, a batch per commit, so that a burst of logins is not a burst of
commits; ``retry_db`` runs a query again
once on a new connection when the database went away (a restarted server,
"server has gone away"), the one retry a login gets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import Error as DBError
from django.db import InterfaceError, OperationalError, router, transaction
from pyftpdlib.authorizers import AuthorizerError

from .. import dispatch, models

# Named as in 1.0, when all of it was ``authorizers.py``: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.authorizers")


T = TypeVar("T")


#: Errors that a new connection may cure: the server restarted, the
#: connection was cut ("server has gone away"), a connection left broken.
RETRYABLE_DB_ERRORS = (OperationalError, InterfaceError)


def retry_db(func: Callable[..., T], *args: Any) -> T:
    """Run ``func``; after a connection error, once more on a new connection.

    Login workers keep their connections while logins keep coming; one
    broken under them (a database restart, "server has gone away", a
    server-side idle timeout) fails the first query, and the retry runs it
    again on a new connection. A second failure becomes ``AuthorizerError``:
    a 530 reply, logged here, instead of a dropped client.
    """
    try:
        return func(*args)
    except RETRYABLE_DB_ERRORS as exc:
        logger.warning("database error during login, retrying on a new connection: %s", exc)
        dispatch.release_connections()
    except DBError as exc:
        logger.error("database error during login", exc_info=True)
        raise AuthorizerError("Login unavailable, try again later.") from exc
    try:
        return func(*args)
    except DBError as exc:
        logger.error("database error during login", exc_info=True)
        raise AuthorizerError("Login unavailable, try again later.") from exc


class LastLoginRecorder:
    """Writes the ``last_login`` of logins, behind them, a batch per commit.

    A login does not wait for its time to be stored: the 230 reply goes out
    and the time is written ``delay`` seconds later, with those of the other
    logins that came meanwhile, in one transaction, by a login worker.
    Written before each reply, one by one, a burst of 100 logins queued
    behind 100 commits (one at a time on SQLite, each waiting for the file
    lock): 1.5 s, 50 times bare pyftpdlib's whole login; and a worker
    waiting for a commit is a worker not checking a password. ``flush()``
    writes what is pending and waits for it.
    """

    #: Seconds between a login and the write of its time (and of the
    #: logins that come meanwhile).
    delay = 0.05

    def __init__(self, model: type[models.FTPUserAccount]) -> None:
        self.model = model
        self._condition = threading.Condition()
        self._pending: dict[Any, Any] = {}
        self._writing = False
        self._timer: threading.Timer | None = None

    def record(self, account_pk: Any, when: Any, submit: Callable[..., Any]) -> None:
        """Have ``when`` stored as the last login of ``account_pk``, soon.

        ``submit(func)`` runs the writing elsewhere (the login workers),
        ``delay`` seconds from the first time recorded since the last write.
        """
        with self._condition:
            self._keep({account_pk: when})
            if self._writing:
                return  # a write is due: it takes this one too
            self._writing = True
            self._timer = threading.Timer(self.delay, self._due, (submit,))
            self._timer.daemon = True
            self._timer.start()

    def _keep(self, times: dict[Any, Any]) -> None:
        """Add ``times`` to the pending ones, the later time of an account winning."""
        for pk, when in times.items():
            previous = self._pending.get(pk)
            if previous is None or when > previous:
                self._pending[pk] = when

    def _drain(self) -> None:
        """Write batches until nothing is pending; a batch that failed stays pending."""
        while True:
            with self._condition:
                batch, self._pending = self._pending, {}
                if not batch:
                    self._writing = False
                    self._condition.notify_all()
                    return
            stored = False
            try:
                stored = self._store(batch)
            finally:
                if not stored:  # kept for the next write
                    with self._condition:
                        self._keep(batch)
                        self._writing = False
                        self._condition.notify_all()
            if not stored:
                return

    def _store(self, batch: dict[Any, Any]) -> bool:
        """Write ``batch``, once more on a new connection after a connection error."""
        for attempt in (1, 2):
            try:
                self._write(batch)
                return True
            except DBError as exc:
                if attempt == 1 and isinstance(exc, RETRYABLE_DB_ERRORS):
                    dispatch.release_connections()
                    continue
                # The logins succeeded; their times wait for the next write.
                logger.warning("last_login of %d account(s) not stored yet: %s", len(batch), exc)
        return False

    def _due(self, submit: Callable[..., Any]) -> None:
        with self._condition:
            if self._timer is None:
                return  # flush() took the write over
            self._timer = None
        submit(self._drain)

    def flush(self, timeout: float = 10.0) -> bool:
        """Store every recorded time now; False if that took over ``timeout``."""
        with self._condition:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            try:
                self._drain()
            finally:
                dispatch.release_connections()
        with self._condition:
            self._condition.wait_for(lambda: not self._writing, timeout)
            return not self._writing and not self._pending

    def _write(self, batch: dict[Any, Any]) -> None:
        manager = self.model._default_manager
        if len(batch) == 1:
            ((pk, when),) = batch.items()
            manager.filter(pk=pk).update(last_login=when)
            return
        with transaction.atomic(using=router.db_for_write(self.model)):
            for pk, when in batch.items():
                manager.filter(pk=pk).update(last_login=when)
