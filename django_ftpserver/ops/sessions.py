"""Live sessions across servers: published to Django's cache, listed, disconnected.

Each server process keeps its open sessions in a ``SessionRegistry`` (the
handler's ``SessionTrackingMixin`` adds and removes them) and a
``SessionPublisher`` thread writes them, once a second, to the cache named
by ``FTPSERVER_SESSIONS_CACHE`` (by default the lockout cache: the one
shared between processes and hosts when it is Redis, Memcached or the
database). Anyone reading that cache (the admin's "FTP sessions" page,
``listftpsessions``) sees every session of every server.

Keys, all under ``KEY_PREFIX``:

* ``server:<id>``: one server's sessions, written every second with an
  expiry of ``SERVER_TTL`` seconds, so a server that crashed (no chance to
  remove its entry) drops out of the list by itself;
* ``servers``: the ids of the servers seen lately (a generic cache cannot
  list keys), each with the time its entry expires, pruned when read;
* ``disconnect:<session id>``: a request to end that session. The server
  owning the session looks for requests of its own sessions at each
  publication (one ``get_many`` a second) and closes those it finds, so a
  session ends within about two seconds of the request.

A cache that fails is logged and retried at the next publication: listing
sessions must never disturb serving them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import BaseCache, caches

from ..conf import conf

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.livesessions")

KEY_PREFIX = "django_ftpserver:sessions"
_INDEX_KEY = f"{KEY_PREFIX}:servers"

#: Seconds between two publications (and two looks for disconnect requests).
PUBLISH_INTERVAL = 1.0
#: Seconds a server's published sessions outlive its last publication.
SERVER_TTL = 10
#: Seconds a disconnect request waits for its server.
REQUEST_TTL = 60

#: The reply a disconnected client gets before its connection closes.
DISCONNECT_REPLY = "421 Disconnected by the administrator."


@dataclass(frozen=True)
class LiveSession:
    """One open session, as published."""

    id: str
    server: str
    username: str
    remote: str
    since: float
    command: str
    bytes_received: int
    bytes_sent: int

    @property
    def bytes_moved(self) -> int:
        return self.bytes_received + self.bytes_sent

    @property
    def seconds(self) -> float:
        """How long it has been connected, as far as this host's clock can tell."""
        return max(0.0, time.time() - self.since)


def cache_alias() -> str | None:
    """The alias sessions are published to; ``None`` when publishing is off."""
    alias = conf.SESSIONS_CACHE
    if alias is False:
        return None
    return alias or conf.LOCKOUT_CACHE


def get_cache() -> BaseCache | None:
    alias = cache_alias()
    return None if alias is None else caches[alias]


def cache_is_process_local() -> bool:
    """Whether sessions go to a cache only this process sees (other processes' are missing)."""
    from ..auth.lockout import alias_is_process_local

    return alias_is_process_local(cache_alias())


PROCESS_LOCAL_WARNING = (
    "the sessions cache (FTPSERVER_SESSIONS_CACHE, else FTPSERVER_LOCKOUT_CACHE) is kept in "
    "each process's memory: this command cannot see the running servers' sessions"
)


def check_settings() -> list[str]:
    """A message for a ``FTPSERVER_SESSIONS_CACHE`` that cannot work."""
    from django.conf import settings

    value = conf.SESSIONS_CACHE
    if value is None or value is False:
        return []
    if not isinstance(value, str) or value not in settings.CACHES:
        known = ", ".join(sorted(settings.CACHES)) or "none"
        return [
            f"FTPSERVER_SESSIONS_CACHE names the cache {value!r}, which is not in CACHES "
            f"(known: {known}); None uses FTPSERVER_LOCKOUT_CACHE, False turns publishing off"
        ]
    return []


def _server_key(server_id: str) -> str:
    return f"{KEY_PREFIX}:server:{server_id}"


def _disconnect_key(session_id: str) -> str:
    return f"{KEY_PREFIX}:disconnect:{session_id}"


def _servers(cache: BaseCache) -> dict[str, float]:
    stored = cache.get(_INDEX_KEY)
    now = time.time()
    if not isinstance(stored, dict):
        return {}
    return {server: until for server, until in stored.items() if until > now}


def _index_update(cache: BaseCache, add: dict[str, float] | None = None, remove: str = "") -> None:
    """Read-modify-write of the server index, checked once against a concurrent writer."""
    for _ in range(3):
        index = _servers(cache)
        index.update(add or {})
        index.pop(remove, None)
        if index:
            cache.set(_INDEX_KEY, index, SERVER_TTL * 6)
        else:
            cache.delete(_INDEX_KEY)
        check = _servers(cache)
        if all(server in check for server in (add or {})) and remove not in check:
            return


def list_sessions() -> list[LiveSession]:
    """Every session published by every server, oldest first."""
    cache = get_cache()
    if cache is None:
        return []
    index = _servers(cache)
    if not index:
        return []
    found = cache.get_many([_server_key(server) for server in index])
    sessions = []
    for entry in found.values():
        if not isinstance(entry, dict):
            continue
        for item in entry.get("sessions", ()):
            with contextlib.suppress(TypeError, ValueError):
                sessions.append(LiveSession(**item))
    return sorted(sessions, key=lambda session: (session.since, session.id))


def get_session(session_id: str) -> LiveSession | None:
    return next((s for s in list_sessions() if s.id == session_id), None)


def request_disconnect(session_id: str) -> LiveSession | None:
    """Ask the server of ``session_id`` to close it; the session, or None if not open."""
    session = get_session(session_id)
    cache = get_cache()
    if session is None or cache is None:
        return None
    cache.set(_disconnect_key(session_id), time.time(), REQUEST_TTL)
    return session


# --- the server side


class SessionRegistry:
    """The open sessions of one server process, by session id."""

    def __init__(self, server_id: str | None = None) -> None:
        self.server_id = server_id or uuid.uuid4().hex[:10]
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}
        self._numbers = itertools.count(1)

    def add(self, handler: Any) -> str:
        session_id = f"{self.server_id}-{next(self._numbers)}"
        with self._lock:
            self._sessions[session_id] = handler
        return session_id

    def remove(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def items(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._sessions.items())

    def __len__(self) -> int:
        return len(self._sessions)


def describe(session_id: str, handler: Any, server_name: str) -> dict[str, Any]:
    """What is published of one session (read from another thread: best effort)."""
    received, sent = handler.session_bytes()
    username = handler.username if handler.authenticated else ""
    return asdict(
        LiveSession(
            id=session_id,
            server=server_name,
            username=username or "",
            remote=f"{handler.remote_ip}:{handler.remote_port}",
            since=handler.connected_at,
            command=handler.current_command or "",
            bytes_received=received,
            bytes_sent=sent,
        )
    )


def close_on_request(handler: Any) -> None:
    """End ``handler``'s session from another thread, as if its client had left.

    Shutting the reading side of the control socket wakes the session's own
    loop with an end of file; the session then answers ``DISCONNECT_REPLY``
    and closes on its own thread, without reading that end of file (see
    ``SessionTrackingMixin.handle_read_event``).
    """
    handler.disconnect_requested = True
    sock = handler.socket
    shutdown = getattr(sock, "sock_shutdown", None) or sock.shutdown  # pyOpenSSL or plain
    with contextlib.suppress(OSError, AttributeError):
        shutdown(socket.SHUT_RD)


class SessionPublisher:
    """Publishes a server's sessions every ``interval`` seconds; ends the requested ones."""

    def __init__(
        self,
        registry: SessionRegistry,
        name: str,
        cache: BaseCache,
        interval: float = PUBLISH_INTERVAL,
    ) -> None:
        self.registry = registry
        self.name = name
        self.cache = cache
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._indexed_until = 0.0
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ftp-sessions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing and take this server's sessions off the list."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        try:
            self.cache.delete(_server_key(self.registry.server_id))
            _index_update(self.cache, remove=self.registry.server_id)
        except Exception as exc:
            logger.warning("could not remove this server's FTP sessions from the cache: %s", exc)

    def _run(self) -> None:
        from .. import dispatch

        try:
            while True:
                self.publish_once()
                dispatch.release_connections()  # a database cache: no connection kept
                if self._stop.wait(self.interval):
                    return
        except Exception:  # pragma: no cover - publish_once logs its own errors
            logger.exception("FTP session publisher stopped")

    def publish_once(self) -> None:
        try:
            items = self.registry.items()
            self._publish(items)
            self._serve_requests(items)
        except Exception as exc:
            if not self._failing:
                logger.warning("could not publish the FTP sessions to the cache: %s", exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("publishing the FTP sessions to the cache again")
            self._failing = False

    def _publish(self, items: list[tuple[str, Any]]) -> None:
        sessions = []
        for session_id, handler in items:
            with contextlib.suppress(Exception):  # a session closing meanwhile
                sessions.append(describe(session_id, handler, self.name))
        now = time.time()
        entry = {"server": self.name, "pid": os.getpid(), "updated": now, "sessions": sessions}
        server_id = self.registry.server_id
        self.cache.set(_server_key(server_id), entry, SERVER_TTL)
        if now + SERVER_TTL / 2 > self._indexed_until:
            self._indexed_until = now + SERVER_TTL * 3
            _index_update(self.cache, add={server_id: self._indexed_until})

    def _serve_requests(self, items: list[tuple[str, Any]]) -> None:
        if not items:
            return
        keys = {_disconnect_key(session_id): (session_id, handler) for session_id, handler in items}
        found = self.cache.get_many(list(keys))
        if not found:
            return
        self.cache.delete_many(list(found))
        for key in found:
            session_id, handler = keys[key]
            logger.info(
                "FTP session %s (%s from %s) disconnected on request",
                session_id,
                handler.username or "not logged in",
                handler.remote_ip,
            )
            close_on_request(handler)


def default_server_name(port: int) -> str:
    return conf.SERVER_NAME or f"{socket.gethostname()}:{port}"


class SessionTrackingMixin:
    """Keeps a handler in ``server.session_registry`` and tells what it is doing.

    The server sets ``session_registry`` when sessions are published
    (``FTPServerRunner``); without it, this mixin only records the current
    command, one attribute per command.
    """

    session_id: str | None = None
    connected_at: float = 0.0
    #: The last command received (its name only: never an argument, a password).
    current_command: str | None = None
    disconnect_requested = False
    _bytes_received_done = 0
    _bytes_sent_done = 0

    def on_connect(self) -> None:
        self.connected_at = time.time()
        registry = getattr(self.server, "session_registry", None)
        if registry is not None:
            self.session_id = registry.add(self)
        super().on_connect()

    def close(self) -> None:
        super().close()
        session_id = self.session_id
        if session_id is not None:
            self.session_id = None
            registry = getattr(self.server, "session_registry", None)
            if registry is not None:
                registry.remove(session_id)

    def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
        self.current_command = cmd
        return super().pre_process_command(line, cmd, arg)

    def _on_dtp_close(self) -> None:
        # pyftpdlib's close() deletes data_channel: a data connection that
        # closes after its control connection finds no attribute at all.
        channel = getattr(self, "data_channel", None)
        if channel is not None:
            self._bytes_received_done += channel.tot_bytes_received
            self._bytes_sent_done += channel.tot_bytes_sent
        super()._on_dtp_close()

    def session_bytes(self) -> tuple[int, int]:
        """(received, sent) on data connections, the one in progress included."""
        received, sent = self._bytes_received_done, self._bytes_sent_done
        channel = getattr(self, "data_channel", None)
        if channel is not None:
            received += channel.tot_bytes_received
            sent += channel.tot_bytes_sent
        return received, sent

    def handle_read_event(self) -> None:
        # The end of file ``close_on_request`` causes must not reach the
        # socket's reader: OpenSSL takes an end of file without close_notify
        # for an attack, answers it with a fatal "decode error" alert and
        # fails the connection, so an FTPS client would read that alert
        # instead of the reply. The session ends here, before any read.
        if self.disconnect_requested and not self._closed:
            self._end_on_request()
            return
        super().handle_read_event()

    def handle_close(self) -> None:
        if self.disconnect_requested and not self._closed:
            self._end_on_request()
            return
        super().handle_close()

    def _end_on_request(self) -> None:
        """Answer ``DISCONNECT_REPLY`` (not during a TLS handshake), then close."""
        if not getattr(self, "_ssl_accepting", False):
            with contextlib.suppress(Exception):
                self.respond(DISCONNECT_REPLY)
        self.close()  # over TLS: close_notify first, as for any other end of session


def with_session_tracking(handler_class: type) -> type:
    """A subclass of ``handler_class`` that keeps itself in ``server.session_registry``."""
    if issubclass(handler_class, SessionTrackingMixin):
        return handler_class
    tracked = type(f"Tracked{handler_class.__name__}", (SessionTrackingMixin, handler_class), {})
    tracked.__module__ = handler_class.__module__
    return tracked
