"""Brute-force lockout: failed logins counted per client address in Django's cache.

The state lives in the cache named by ``FTPSERVER_LOCKOUT_CACHE``, so a
shared cache (Redis, Memcached, the database cache) shares it between server
processes and hosts; a per-process cache (``LocMemCache``) keeps it per
process. This module is plain logic over that cache; the FTP handler calls
``check`` (or ``is_locked``) before any password check and ``record_failure`` /
``record_success`` after one (see ``handlers.LoginGuardMixin``).

Rules:

* Every refused login counts against the client's address, whether or not
  the username exists.
* Failures are forgotten once none came from the address for
  ``FTPSERVER_LOCKOUT_WINDOW`` seconds: each failure restarts the window.
  So ``FTPSERVER_LOCKOUT_FAILURES`` failures within one window always lock,
  and so does a slower guesser who never pauses for a whole window. (A
  window restarted by each failure needs nothing but ``touch``, which every
  cache backend has; a fixed window would rely on ``incr`` keeping the
  expiry, which the database and file caches do not.)
* The failure that reaches the limit locks the address for
  ``FTPSERVER_LOCKOUT_DURATION`` seconds. The lock is created with
  ``cache.add``, so exactly one process wins and reports it, however many
  saw the limit reached.
* A successful login takes back only the failures of *that username* from
  the address: a user's own typos stop counting, but someone with one valid
  account cannot wipe out the failures of guessing other accounts.
* IPv6 clients are counted per /64 network (one customer's allocation,
  where a single host can pick any of 2**64 addresses); IPv4 per address.
* ``FTPSERVER_LOCKOUT_FAILURES = 0`` turns all of this off.

Counting uses ``cache.add`` and ``cache.incr``, atomic on Redis, Memcached
and ``LocMemCache``, so concurrent processes do not lose counts; the
database and file caches implement ``incr`` as read-then-write and may lose
a count under concurrent failures from one address.

A generic Django cache cannot list its keys, so locked addresses are also
kept in one index entry (address -> lock end), pruned whenever it is read.
The index serves listing and ``clear_all`` only; the locks themselves never
depend on it.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches

from .. import conf as conf_module
from ..conf import conf

KEY_PREFIX = "django_ftpserver:lockout"
_INDEX_KEY = f"{KEY_PREFIX}:index"
_INDEX_RETRIES = 3


@dataclass(frozen=True)
class Lockout:
    """A locked address, as listed by ``list_lockouts``."""

    address: str
    username: str
    failures: int
    locked_at: float
    until: float

    @property
    def remaining(self) -> float:
        """Seconds left, as far as this host's clock can tell."""
        return max(0.0, self.until - time.time())


def enabled() -> bool:
    return conf.LOCKOUT_FAILURES > 0


def get_cache() -> BaseCache:
    return caches[conf.LOCKOUT_CACHE]


def alias_is_process_local(alias: str | None) -> bool:
    """Tell whether the cache ``alias`` lives in this process's memory only.

    ``LocMemCache`` (Django's default) and ``DummyCache`` are one per
    process. A missing or broken alias answers False: the settings checks
    report it on their own.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    config = settings.CACHES.get(alias) if alias else None
    if config is None:
        return False
    try:
        backend = import_string(config["BACKEND"])
    except (ImportError, KeyError):
        return False
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache

    return issubclass(backend, (LocMemCache, DummyCache))


def cache_is_process_local() -> bool:
    """Tell whether the lockout cache lives in this process's memory only.

    Django's default cache (``LocMemCache``) is one per process: each server
    process then counts failures on its own, and the lockout commands, run
    in a process of their own, see nothing.
    """
    return alias_is_process_local(conf.LOCKOUT_CACHE)


PROCESS_LOCAL_WARNING = (
    "the lockout cache (FTPSERVER_LOCKOUT_CACHE) is kept in each process's memory: "
    "this command cannot see or clear the running server's lockouts"
)


def check_settings() -> list[str]:
    """Return a message for each lockout setting that cannot work."""
    from django.conf import settings

    errors = []
    for name in ("FAILURES", "WINDOW", "DURATION"):
        setting = f"FTPSERVER_LOCKOUT_{name}"
        value = conf_module.get(setting)  # raw: conf.LOCKOUT_* would int() a bad value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append(f"{setting} must be a whole number, 0 or more, not {value!r}")
        elif name != "FAILURES" and value == 0:
            errors.append(f"{setting} must be 1 second or more, not 0")
    if errors or not enabled():
        return errors
    alias = conf.LOCKOUT_CACHE
    if alias not in settings.CACHES:
        known = ", ".join(sorted(settings.CACHES)) or "none"
        errors.append(
            f"FTPSERVER_LOCKOUT_CACHE names the cache {alias!r}, which is not in CACHES "
            f"(known: {known})"
        )
    return errors


@functools.lru_cache(maxsize=4096)  # every login asks twice; parsing costs more than the rest
def normalize_address(address: str) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 as its /64.

    Raises ``ValueError`` naming ``address`` when it is not an IP address
    (an IPv6 /64 network such as ``2001:db8::/64`` is accepted too).
    """
    text = str(address).strip()
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            if network.prefixlen != (32 if network.version == 4 else 64):
                raise ValueError
            return str(network.network_address if network.version == 4 else network)
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _key(kind: str, address: str) -> str:
    return f"{KEY_PREFIX}:{kind}:{address}"


def _user_key(address: str, username: str) -> str:
    # Hashed: usernames come from the client and may hold anything, while
    # Memcached keys may not hold spaces or control characters.
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{KEY_PREFIX}:user:{address}:{digest}"


def _incr(cache: BaseCache, key: str, timeout: int) -> int:
    """Add one to ``key``, creating it if needed; restart its expiry."""
    for _ in range(3):
        if cache.add(key, 1, timeout):
            return 1
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr(): start again
            continue
        cache.touch(key, timeout)
        return count
    return 1


def is_locked(address: str) -> bool:
    """Tell whether logins from ``address`` are refused now."""
    if not enabled():
        return False
    return get_cache().get(_key("locked", normalize_address(address))) is not None


def check(address: str, username: str) -> tuple[bool, int]:
    """Whether ``address`` is locked out, and the failures ``username`` has from it.

    One cache round trip for what a login needs to know before its check;
    the count goes to ``record_success`` after a right password.
    """
    if not enabled():
        return False, 0
    address = normalize_address(address)
    locked_key, user_key = _key("locked", address), _user_key(address, username or "")
    values = get_cache().get_many([locked_key, user_key])
    return values.get(locked_key) is not None, int(values.get(user_key) or 0)


def get_lockout(address: str) -> Lockout | None:
    """The current lockout of ``address`` (an address or IPv6 /64), or None."""
    address = normalize_address(address)
    info = get_cache().get(_key("locked", address))
    return _lockout(address, info)


def _lockout(address: str, info: Any) -> Lockout | None:
    if not isinstance(info, dict):
        return None
    return Lockout(
        address=address,
        username=str(info.get("username", "")),
        failures=int(info.get("failures", 0)),
        locked_at=float(info.get("locked_at", 0)),
        until=float(info.get("until", 0)),
    )


def failure_count(address: str) -> int:
    """Failures counted for ``address`` in the current window."""
    return int(get_cache().get(_key("failures", normalize_address(address))) or 0)


def record_failure(address: str, username: str) -> Lockout | None:
    """Count a refused login; return the new ``Lockout`` if this one locked the address.

    Returns None when the address was not locked by this call, including
    when another process locked it first: the caller reports a lockout
    only when it gets one back, so it is reported once.
    """
    if not enabled():
        return None
    cache = get_cache()
    address = normalize_address(address)
    window = conf.LOCKOUT_WINDOW
    count = _incr(cache, _key("failures", address), window)
    _incr(cache, _user_key(address, username or ""), window)
    if count < conf.LOCKOUT_FAILURES:
        return None
    duration = conf.LOCKOUT_DURATION
    now = time.time()
    info = {"username": username, "failures": count, "locked_at": now, "until": now + duration}
    if not cache.add(_key("locked", address), info, duration):
        return None  # locked already, by this process or another
    # The lock holds the address now; counting starts afresh when it ends.
    cache.delete(_key("failures", address))
    _index_update(cache, add={address: now + duration})
    return _lockout(address, info)


def record_success(address: str, username: str, own: int | None = None) -> None:
    """Take back the failures ``username`` had from ``address``.

    ``own`` is their count as ``check`` found it; ``None`` reads it again.
    """
    if not enabled() or own == 0:
        return
    cache = get_cache()
    address = normalize_address(address)
    user_key = _user_key(address, username or "")
    if own is None:
        own = cache.get(user_key)
    if not own:
        return
    cache.delete(user_key)
    try:
        remaining = cache.decr(_key("failures", address), int(own))
    except ValueError:  # the address's count expired already
        return
    if remaining <= 0:
        cache.delete(_key("failures", address))


def _index_update(
    cache: BaseCache, add: dict[str, float] | None = None, remove: set[str] | None = None
) -> dict[str, float]:
    """Apply a change to the index of locked addresses; return the pruned index.

    Read-modify-write, retried after checking that the write was not
    overwritten by another process doing the same.
    """
    add = add or {}
    remove = remove or set()
    index: dict[str, float] = {}
    for _ in range(_INDEX_RETRIES):
        now = time.time()
        stored = cache.get(_INDEX_KEY)
        index = {
            address: until
            for address, until in (stored.items() if isinstance(stored, dict) else ())
            if until > now and address not in remove
        }
        index.update(add)
        if index == stored:
            return index
        if index:
            timeout = max(1, int(max(index.values()) - now) + 1)
            cache.set(_INDEX_KEY, index, timeout)
        else:
            cache.delete(_INDEX_KEY)
        check = cache.get(_INDEX_KEY) or {}
        if all(address in check for address in add) and not (remove & set(check)):
            break
    return index


def list_lockouts() -> list[Lockout]:
    """The addresses locked now, soonest to be released first."""
    cache = get_cache()
    index = _index_update(cache)
    if not index:
        return []
    keys = {_key("locked", address): address for address in index}
    found = cache.get_many(list(keys))
    lockouts = [_lockout(keys[key], info) for key, info in found.items()]
    return sorted((lockout for lockout in lockouts if lockout), key=lambda lock: lock.until)


def clear(address: str) -> bool:
    """Lift the lockout of ``address`` and forget its failures.

    Returns whether it was locked. Raises ``ValueError`` for a bad address.
    """
    cache = get_cache()
    address = normalize_address(address)
    was_locked = cache.get(_key("locked", address)) is not None
    cache.delete_many([_key("locked", address), _key("failures", address)])
    _index_update(cache, remove={address})
    return was_locked


def clear_all() -> list[str]:
    """Lift every listed lockout; return the addresses released."""
    cache = get_cache()
    released = [lockout.address for lockout in list_lockouts()]
    cache.delete_many([_key(kind, a) for a in released for kind in ("locked", "failures")])
    _index_update(cache, remove=set(released))
    return released
