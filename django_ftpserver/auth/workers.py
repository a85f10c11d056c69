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

import collections
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .. import dispatch

T = TypeVar("T")

_current = threading.local()


def on_worker() -> bool:
    """Whether this thread is a login worker (of any pool)."""
    return getattr(_current, "is_worker", False)


def _run_into(future: Future, func: Callable[..., Any], args: tuple) -> None:
    """Run ``func(*args)``; its result or its exception goes to ``future``."""
    try:
        future.set_result(func(*args))
    except BaseException as exc:
        future.set_exception(exc)


def default_size() -> int:
    """One more than the cores, so hashing uses them all; at most 8."""
    return min(8, (os.cpu_count() or 1) + 1)


class DatabaseWorkers:
    """A pool of at most ``size`` threads, started on demand, ending when idle.

    A task goes to a waiting worker if there is one, else to a new worker
    if there are fewer than ``size``, else it waits for the next free one.
    The count of waiting workers is kept under the same lock as the tasks:
    a worker that took a task but had not yet said so must not pass for
    idle, or two logins that need two workers at once get one.
    """

    _names = itertools.count(1)

    #: Seconds a worker waits for a task before closing its connections and ending.
    idle_timeout = 5.0

    def __init__(
        self,
        size: int | None = None,
        idle_timeout: float | None = None,
        name: str = "ftp-login-worker",
        batch_size: int = 1,
    ) -> None:
        self.size = max(1, size or default_size())
        self.name = name
        self.batch_size = max(1, batch_size)
        # Per function, the batch not yet started, still open to items.
        self._open_batches: dict[Callable[..., Any], list[Any]] = {}
        if idle_timeout is not None:
            self.idle_timeout = idle_timeout
        self._condition = threading.Condition()
        self._tasks: collections.deque[tuple[Callable[..., Any], tuple, Future]] = (
            collections.deque()
        )
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # waiting workers not yet handed a task
        self._closed = False

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on a worker; return its result or raise its error.

        Called on one of the workers, it runs there and then: waiting for
        another worker could deadlock a full pool.
        """
        if on_worker():
            return func(*args)
        return self.submit(func, *args).result()

    def submit(self, func: Callable[..., T], *args: Any) -> Future[T]:
        """Have a worker run ``func(*args)``; the future holds its result."""
        future: Future[T] = Future()
        with self._condition:
            if not self._closed:
                self._tasks.append((func, args, future))
                if self._idle > 0:
                    self._idle -= 1
                    self._condition.notify()
                elif len(self._threads) < self.size:
                    thread = threading.Thread(
                        target=self._work,
                        name=f"{self.name}-{next(self._names)}",
                        daemon=True,
                    )
                    self._threads.add(thread)
                    thread.start()
                closed = False
            else:
                closed = True
        if closed:  # shutting down: do it here rather than fail the login
            _run_into(future, func, args)
        return future

    def submit_batched(self, func: Callable[[list[Any]], Any], item: Any) -> None:
        """Have a worker run ``func(items)``, ``item`` among them.

        ``items`` also holds what was submitted for ``func`` after ``item``
        and before a worker started on it, up to ``batch_size`` items:
        work that arrived together is done together (with one query, say)
        by a pool that is busy. With ``batch_size`` 1, one task per item.
        """
        with self._condition:
            batch = self._open_batches.get(func)
            if batch is not None and len(batch) < self.batch_size:
                batch.append(item)
                return
            batch = [item]
            if self.batch_size > 1:
                self._open_batches[func] = batch
        self.submit(self._run_batch, func, batch)

    def _run_batch(self, func: Callable[[list[Any]], Any], batch: list[Any]) -> Any:
        with self._condition:
            if self._open_batches.get(func) is batch:
                del self._open_batches[func]  # closed: later items start another
        return func(batch)

    def _next_task(self) -> tuple[Callable[..., Any], tuple, Future] | None:
        """The next task, or ``None`` when this worker is to end."""
        with self._condition:
            while not self._tasks:
                if self._closed:
                    return None
                self._idle += 1
                if not self._condition.wait(self.idle_timeout):
                    # Nobody handed this worker a task, or a notify() raced the
                    # timeout and counted it already: never below zero.
                    self._idle = max(0, self._idle - 1)
                    if not self._tasks:
                        return None
            return self._tasks.popleft()

    def _work(self) -> None:
        me = threading.current_thread()
        _current.is_worker = True
        try:
            while True:
                task = self._next_task()
                if task is None:
                    return
                func, args, future = task
                if future.set_running_or_notify_cancel():
                    _run_into(future, func, args)
        finally:
            with self._condition:
                self._threads.discard(me)
            dispatch.release_connections()

    @property
    def threads(self) -> int:
        """Workers alive now."""
        with self._condition:
            return len(self._threads)

    def close(self, timeout: float = 10.0) -> None:
        """Let the workers finish their tasks, close their connections and end."""
        with self._condition:
            self._closed = True
            threads = list(self._threads)
            self._condition.notify_all()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
