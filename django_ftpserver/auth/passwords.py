"""The password cache: a verified password costs one hash per process.

Cameras and scanners log in again and again with the same credentials; a
password hash is ~0.1-1 s of CPU. ``PasswordCache`` remembers verified
passwords in process memory (keyed by a hash, never the password) and
lets concurrent logins with the same credentials share one hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict

CacheKey = tuple[str, bytes]


class PasswordCache:
    """Remembers passwords that were verified, never the passwords themselves.

    An entry is keyed by the username and an HMAC-SHA256 of the password
    under a random key made per process (``os.urandom``), so neither the
    plaintext nor a digest that could be attacked offline outside this
    process is kept. The entry holds an HMAC of a fingerprint of what the
    check depended on: the user's stored password hash, ``is_active`` and the
    FTP account. A hit counts only while that fingerprint is unchanged, so a
    changed password, a deactivated user or a deleted account is refused at
    the very next login, without waiting for the timeout. Failed checks are
    never stored.

    Concurrent checks of the same username and password are collapsed
    (``claim``/``release``): the first runs the hash, the others wait for it
    and then find its entry. Without that, 100 clients of one account
    logging in at once would run 100 hashes, exactly when nothing is cached
    yet.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._key = os.urandom(32)
        self._entries: OrderedDict[CacheKey, tuple[bytes, float]] = OrderedDict()
        self._in_flight: dict[CacheKey, threading.Event] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def key(self, username: str, password: str) -> CacheKey:
        return (username, self._mac(password.encode("utf-8", "surrogatepass")))

    def _fingerprint_mac(self, fingerprint: tuple) -> bytes:
        return self._mac(repr(fingerprint).encode("utf-8", "surrogatepass"))

    def hit(self, key: CacheKey, fingerprint: tuple) -> bool:
        """Tell whether ``key`` was verified while ``fingerprint`` held."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            stored, expires = entry
            if expires < time.monotonic() or not hmac.compare_digest(
                stored, self._fingerprint_mac(fingerprint)
            ):
                del self._entries[key]
                return False
            return True

    def peek(self, key: CacheKey) -> bool:
        """Whether ``key`` has an entry, valid or not: a hint, never an answer."""
        entry = self._entries.get(key)
        return entry is not None and entry[1] >= time.monotonic()

    def store(self, key: CacheKey, fingerprint: tuple, timeout: float) -> None:
        """Remember a successful check for ``timeout`` seconds."""
        with self._lock:
            self._entries[key] = (self._fingerprint_mac(fingerprint), time.monotonic() + timeout)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def claim(self, key: CacheKey) -> threading.Event | None:
        """Return ``None`` if the caller is to check ``key`` itself.

        Otherwise another thread is checking the same credentials; the
        returned event is set when it is done (call ``hit`` again then).
        Whoever got ``None`` must call ``release(key)`` when done.
        """
        with self._lock:
            event = self._in_flight.get(key)
            if event is None:
                self._in_flight[key] = threading.Event()
            return event

    def release(self, key: CacheKey) -> None:
        with self._lock:
            event = self._in_flight.pop(key, None)
        if event is not None:
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
