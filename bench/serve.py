"""One benchmarked FTP server, run in a process of its own.

``python -m bench.serve ours|ours-metrics|bare [--certfile PEM] --home DIR --password PW USER...``

``ours-metrics`` is ours with ``--metrics`` (a /metrics endpoint on a free
port, printed after the FTP port). With ``--certfile`` (certificate and
key in one PEM file) ours serves FTPS through its TLS handler and bare
pyftpdlib through ``TLS_FTPHandler``, both with that certificate.
Prints ``READY <port> [<metrics port>]`` once listening, then answers
one-line commands on stdin: ``stats`` (a JSON line: memory, threads, descriptors, and for ours
the SQL queries run, the database connections open and the password hashes
computed), ``clear-cache`` (forget verified passwords), ``pre-signals on``
and ``pre-signals off`` (connect or disconnect a receiver that allows
everything to every ``ftp_pre_*`` signal, ours only) and ``quit``.
A process of its own per server keeps the memory figures apart and lets
each server use the cores the way it would in production.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import sys
import threading
import time
import weakref
from typing import Any


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Counters:
    """SQL queries, open connections and hashes, seen from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queries = 0
        self.hashes = 0
        self.scrape_cpu = 0.0
        self.wrappers: weakref.WeakSet[Any] = weakref.WeakSet()

    def count_query(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self.lock:
            self.queries += 1
        return execute(sql, params, many, context)

    def install(self) -> None:
        """Count queries on every connection any thread opens, and hashes."""
        from django.contrib.auth import hashers
        from django.db.backends.signals import connection_created

        def created(sender: Any, connection: Any, **kwargs: Any) -> None:
            self.wrappers.add(connection)
            if self.count_query not in connection.execute_wrappers:
                connection.execute_wrappers.append(self.count_query)

        connection_created.connect(created, weak=False)

        original = hashers.PBKDF2PasswordHasher.verify

        def verify(hasher: Any, password: str, encoded: str) -> bool:
            with self.lock:
                self.hashes += 1
            return original(hasher, password, encoded)

        hashers.PBKDF2PasswordHasher.verify = verify

    def count_scrapes(self) -> None:
        """Time what serving ``/metrics`` and the probes costs, on its own threads.

        The HTTP server handles each request on a thread of its own; the
        CPU time of those threads and of the server's accepting thread is
        taken out of the session figures that compare a server with metrics
        to one without (``scrape_cpu_s``).
        """
        from django_ftpserver.ops import http

        original = http._HTTPServer.process_request_thread

        def timed(server: Any, request: Any, client_address: Any) -> None:
            start = time.thread_time()
            try:
                original(server, request, client_address)
            finally:
                with self.lock:
                    self.scrape_cpu += time.thread_time() - start

        http._HTTPServer.process_request_thread = timed

    def http_cpu(self) -> float:
        """CPU seconds of the HTTP server's own thread (accepting, starting request threads)."""
        for thread in threading.enumerate():
            if thread.name == "ftp-metrics" and thread.ident is not None:
                with contextlib.suppress(OSError):
                    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        return 0.0

    def stats(self) -> dict[str, float]:
        http = self.http_cpu()
        with self.lock:
            return {
                "queries": self.queries,
                "hashes": self.hashes,
                "scrape_cpu_s": self.scrape_cpu + http,
                "db_connections": sum(1 for w in list(self.wrappers) if w.connection is not None),
            }


def _allow(sender: Any, **kwargs: Any) -> None:
    """A pre-signal receiver that allows everything: the cost of asking, nothing more."""


def allow_everything(on: bool) -> None:
    from django_ftpserver import signals

    for name in dir(signals):
        if name.startswith("ftp_pre_"):
            signal = getattr(signals, name)
            if on:
                signal.connect(_allow, weak=False, dispatch_uid="bench-allow")
            else:
                signal.disconnect(dispatch_uid="bench-allow")


def remove_pre_signals() -> None:
    """Take the pre-signal commands out of the handler: ours as it was without the feature.

    ``PreSignalMixin`` only overrides commands (each calls pyftpdlib's after
    its check); without its overrides every command goes straight to the
    next class, as before pre-signals existed.
    """
    from django_ftpserver.handler.prechecks import PreSignalMixin

    for name in [name for name in vars(PreSignalMixin) if name.startswith("ftp_")]:
        delattr(PreSignalMixin, name)


def build_ours(args: argparse.Namespace) -> tuple[Any, Any, Any, Counters | None]:
    import django

    django.setup()
    if args.kind == "ours-without-pre-signals":
        remove_pre_signals()
    counters = Counters()
    counters.install()
    if args.kind == "ours-metrics":
        counters.count_scrapes()
    from django_ftpserver.runner import FTPServerConfig, FTPServerRunner

    metrics = ("127.0.0.1", 0) if args.kind == "ours-metrics" else None
    config = FTPServerConfig(
        host="127.0.0.1", port=0, metrics_address=metrics, certfile=args.certfile
    )
    runner = FTPServerRunner(config)
    server = runner.create_server()
    if runner.operations is not None:
        server.bench_metrics_port = runner.operations.address[1]

    def run() -> None:
        runner.run()

    def clear_cache() -> None:
        server.handler.authorizer.password_cache.clear()

    return server, run, (runner.stop, clear_cache), counters


def build_bare(args: argparse.Namespace) -> tuple[Any, Any, Any, Counters | None]:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    for user in args.users:
        authorizer.add_user(user, args.password, args.home, perm="elradfmwMT")
    attributes: dict[str, Any] = {"authorizer": authorizer}
    base: type = FTPHandler
    if args.certfile:
        from pyftpdlib.handlers import TLS_FTPHandler

        base = TLS_FTPHandler
        attributes.update(certfile=args.certfile, keyfile=args.certfile)
    handler = type("BareHandler", (base,), attributes)
    server = FTPServer(("127.0.0.1", 0), handler)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            server.ioloop.loop(0.5, blocking=False)
        server.close_all()

    return server, run, (stop.set, lambda: None), None


def control(stop: Any, clear_cache: Any, counters: Counters | None) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = {
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "rss_kb": _proc_status("VmRSS"),
                "threads": threading.active_count(),
                "fds": len(os.listdir("/proc/self/fd")),
            }
            if counters is not None:
                stats.update(counters.stats())
            print(json.dumps(stats), flush=True)
        elif command == "clear-cache":
            clear_cache()
            print("ok", flush=True)
        elif command in ("pre-signals on", "pre-signals off") and counters is not None:
            allow_everything(command.endswith("on"))
            print("ok", flush=True)
        elif command == "quit":
            break
        else:
            print(f"error unknown command {command!r}", flush=True)
    stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument(
        "kind", choices=["ours", "ours-metrics", "ours-without-pre-signals", "bare"]
    )
    parser.add_argument("--certfile", help="serve FTPS with this PEM (certificate and key)")
    parser.add_argument("--home", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("users", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    build = build_bare if args.kind == "bare" else build_ours
    server, run, (stop, clear_cache), counters = build(args)
    metrics_port = getattr(server, "bench_metrics_port", "")
    print(f"READY {server.address[1]} {metrics_port}".strip(), flush=True)
    threading.Thread(target=control, args=(stop, clear_cache, counters), daemon=True).start()
    run()


if __name__ == "__main__":
    main()
