"""The operations endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP.

Served from the FTP server's own process (``manage.py ftpserver --metrics
HOST:PORT``) by a small threaded HTTP server on a port of its own, so a
scrape or a probe never waits behind FTP sessions, and a slow readiness
check (a database that hangs) never delays a liveness probe.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import health

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.opsserver")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "django-ftpserver"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        ops = self.server.ops
        try:
            if path == "/metrics":
                self._metrics(ops)
            elif path == "/healthz":
                self._json(*health.liveness(ops.ftp_server, ops.heartbeat_limit))
            elif path == "/readyz":
                self._json(*ops.readiness(ops.ftp_server))
            else:
                self._send(
                    404,
                    "text/plain; charset=utf-8",
                    b"not found: try /metrics, /healthz or /readyz\n",
                )
        except Exception:
            logger.exception("error while answering %s", path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n")

    do_HEAD = do_GET  # noqa: N815

    def _metrics(self, ops: OperationsServer) -> None:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(self.headers.get("Accept"))
        self._send(200, content_type, encoder(ops.metrics.registry))

    def _json(self, ok: bool, checks: dict[str, Any]) -> None:
        body = {"status": "ok" if ok else "fail", "checks": checks}
        self._send(200 if ok else 503, "application/json", json.dumps(body).encode() + b"\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    ops: OperationsServer


class OperationsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` of ``ftp_server`` on ``address``.

    The socket is bound here (a busy port fails at start-up, with the FTP
    server's other configuration errors); ``start()`` serves it on a daemon
    thread, after daemonizing.
    """

    def __init__(
        self,
        address: tuple[str, int],
        ftp_server: Any,
        metrics: Any,
        readiness: Any = health.readiness,
    ) -> None:
        self.ftp_server = ftp_server
        self.metrics = metrics
        self.readiness = readiness
        #: Seconds without a turn of the accepting loop before /healthz fails.
        self.heartbeat_limit = health.HEARTBEAT_LIMIT
        self._thread: threading.Thread | None = None
        host = address[0]
        http_class = _HTTPServer
        if ":" in host:
            import socket

            http_class = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
        self.httpd = http_class(address, _Handler)
        self.httpd.ops = self

    @property
    def address(self) -> tuple[str, int]:
        return tuple(self.httpd.server_address[:2])  # type: ignore[return-value]

    def fileno(self) -> int:
        return self.httpd.fileno()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="ftp-metrics"
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()
