"""A few threads that run the database and hashing work of logins.

Why not on the session's own thread: each session has a thread of its own
(``server.DjangoFTPServer``), new for every connection, so a login run there
pays for a new database connection and Django's per-thread connection
objects every time (about 1 ms on SQLite, several on PostgreSQL), and a
burst of 100 logins opens 100 connections at once, past PostgreSQL's default
``max_connections``. The workers keep their connections warm while logins
keep coming, bound the connections used for logins to their number whatever
the number of clients, and bound the password hashes computed at once to
about the number of cores, more of which would only slow every login down.

They serve no client's I/O, so a hash or a slow query stalls only the
logins waiting for it; the session thread waits for its result. A worker
with nothing to do for ``idle_timeout`` seconds closes its connections and
ends, so an idle server holds no database connection.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from . import dispatch

T = TypeVar("T")


def default_size() -> int:
    """One more than the cores, so hashing uses them all; at most 8."""
    return min(8, (os.cpu_count() or 1) + 1)


class DatabaseWorkers:
    """A pool of at most ``size`` threads, started on demand, ending when idle."""

    _names = itertools.count(1)

    def __init__(self, size: int | None = None, idle_timeout: float = 5.0) -> None:
        self.size = max(1, size or default_size())
        self.idle_timeout = idle_timeout
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._closed = False

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on a worker; return its result or raise its error."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._queue.put((func, args, future))
                # Start a worker unless idle ones are enough for the queue.
                if len(self._threads) < self.size and self._queue.qsize() > self._idle:
                    self._start_worker()
        if closed:  # shutting down: do it here rather than fail the login
            return func(*args)
        return future.result()

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"ftp-login-worker-{next(self._names)}", daemon=True
        )
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._lock:
                    self._idle += 1
                try:
                    item = self._queue.get(timeout=self.idle_timeout)
                except queue.Empty:
                    with self._lock:
                        self._idle -= 1
                        # A task put after the timeout but before this check
                        # counted on this worker being idle: stay for it.
                        if self._queue.empty() or self._closed:
                            self._threads.discard(me)
                            return
                    continue
                with self._lock:
                    self._idle -= 1
                if item is None:
                    with self._lock:
                        self._threads.discard(me)
                    return
                func, args, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(func(*args))
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            dispatch.release_connections()

    @property
    def threads(self) -> int:
        """Workers alive now."""
        with self._lock:
            return len(self._threads)

    def close(self, timeout: float = 10.0) -> None:
        """Let the workers finish their tasks, close their connections and end."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
