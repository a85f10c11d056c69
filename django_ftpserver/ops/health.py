"""Liveness and readiness of a running FTP server, as ``/healthz`` and ``/readyz`` report them.

* Live (``/healthz``): the listening socket is open and listening, and the
  event loop that accepts connections turned recently (``FTPServerRunner``
  stamps ``server.loop_heartbeat`` on every turn; an idle loop still turns
  every ``poll_interval``). A loop stuck in a receiver or a deadlock stops
  the stamp, and the orchestrator restarts the process. Nothing connects to
  the FTP port: a probe must not show up as a client in logs, signals and
  metrics.
* Ready (``/readyz``): live, and the database and the lockout cache answer;
  a server that cannot check a password should get no new clients.

Each check returns ``(ok, details)``; the details go out as JSON.
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

#: A loop that has not turned for this many seconds is reported stuck.
HEARTBEAT_LIMIT = 10.0


def liveness(server: Any, heartbeat_limit: float = HEARTBEAT_LIMIT) -> tuple[bool, dict[str, Any]]:
    """Whether ``server`` accepts connections and its loop turns."""
    checks: dict[str, Any] = {}
    try:
        sock = server.socket
        listening = sock is not None and bool(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        )
        checks["listening"] = {"ok": listening}
    except (OSError, AttributeError) as exc:
        checks["listening"] = {"ok": False, "error": str(exc) or type(exc).__name__}
    beat = getattr(server, "loop_heartbeat", None)
    if beat is None:
        checks["event_loop"] = {"ok": False, "error": "the server loop has not started"}
    else:
        age = max(0.0, time.monotonic() - beat)
        checks["event_loop"] = {"ok": age <= heartbeat_limit, "seconds_since_turn": round(age, 3)}
    stopping = getattr(server, "_exit", None)
    if stopping is not None and stopping.is_set():
        checks["stopping"] = {"ok": False, "error": "the server is shutting down"}
    return all(check["ok"] for check in checks.values()), checks


def check_database() -> dict[str, Any]:
    """One ``SELECT 1`` on the database that holds the FTP accounts."""
    from django.db import connections, router

    from ..models import FTPUserAccount

    alias = router.db_for_read(FTPUserAccount) or "default"
    started = time.monotonic()
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "alias": alias, "error": _one_line(exc)}
    finally:
        # This thread serves probes only: keep no connection between them.
        connection.close()
    return {"ok": True, "alias": alias, "seconds": round(time.monotonic() - started, 4)}


def check_cache() -> dict[str, Any]:
    """A write and a read of one short-lived key in the lockout cache."""
    from ..auth import lockout
    from ..conf import conf

    alias = conf.LOCKOUT_CACHE
    key = f"{lockout.KEY_PREFIX}:readyz:{uuid.uuid4().hex}"
    started = time.monotonic()
    try:
        cache = lockout.get_cache()
        cache.set(key, 1, 10)
        found = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        return {"ok": False, "alias": alias, "error": _one_line(exc)}
    if found != 1:
        return {"ok": False, "alias": alias, "error": "a value written could not be read back"}
    return {"ok": True, "alias": alias, "seconds": round(time.monotonic() - started, 4)}


def readiness(server: Any) -> tuple[bool, dict[str, Any]]:
    """Whether ``server`` is live and its database and lockout cache answer."""
    live, checks = liveness(server)
    checks["database"] = check_database()
    checks["lockout_cache"] = check_cache()
    return live and all(check["ok"] for check in checks.values()), checks


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
