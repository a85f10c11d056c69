"""Sending signals from FTP sessions: robustly, and without holding connections.

Receivers are project code. A receiver that raises must not break the FTP
session or the server, so every signal goes through ``Signal.send_robust``;
Django logs each failure with its traceback on the ``django.dispatch`` logger
and the other receivers still run.

Sessions run on their own threads (see ``server.DjangoFTPServer``), and Django
opens one database connection per thread. A receiver that queries the
database would leave that connection open for as long as the client stays
connected, so after the receivers ran, the thread's connections are closed:
an idle session holds none, however many sessions there are.

Receivers are not the only code on a session thread that may query: a
lockout kept in a database cache, a filesystem on a database-backed
storage, a project's own login message. The session loop therefore calls
``release_opened_connections()`` after each round of events; it costs one
thread-local read unless the round opened a connection.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created
from django.dispatch import Signal

_opened = threading.local()


def _note_connection(sender: Any, **kwargs: Any) -> None:
    _opened.pending = True


connection_created.connect(_note_connection, weak=False, dispatch_uid="django_ftpserver.opened")


def release_connections() -> None:
    """Close this thread's database connections, unless inside a transaction.

    Inside ``atomic()`` (a test's transaction, or a caller's own) closing
    would break the caller, so the connection is left alone there.
    """
    _opened.pending = False
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def release_opened_connections() -> None:
    """``release_connections()`` if this thread opened a connection since the last one."""
    if getattr(_opened, "pending", False):
        release_connections()


def signal_sender_of(handler: Any) -> type:
    """The ``sender`` of a handler's signals: its ``signal_sender``, else its class."""
    return getattr(handler, "signal_sender", None) or type(handler)


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; a failing receiver is logged, not raised."""
    if not signal.receivers or not signal.has_listeners(sender):
        return
    try:
        signal.send_robust(sender=sender, **kwargs)
    finally:
        release_connections()
