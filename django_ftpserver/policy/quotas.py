"""Storage quotas per account: limits, usage in the database, uploads in flight.

Limits. An account may store at most ``quota_bytes`` bytes and
``quota_files`` files; each value not set on the account (``None``) comes
from its group, and 0 means no limit. A session reads its limits at login
(in its ``AccountSnapshot``), like the rest of the account.

Usage. ``FTPUserAccount.used_bytes``/``used_files`` hold what the account
stores, updated with ``F()`` expressions (atomic in the database, whatever
the number of server processes) when an upload ends, a file is deleted or
replaced. Only accounts with a limit are tracked; an account whose usage
was never counted (``usage_counted_at`` empty: a limit just set) is
counted from its home at its first upload, and ``manage.py ftpquota
recalc`` counts again from the storage.

Uploads in flight. Two sessions of one account uploading at once must not
together go beyond the limit: each upload holds a ``Reservation`` in the
process's ``Ledger``, and every read of its data channel checks the usage
at its start, plus the bytes each upload of the account in this process
received so far, plus what completed meanwhile, against the limit. The one
that would cross it is cut. Sessions in different server processes see
each other's uploads once they completed (the database), so across
processes the limit can be exceeded by at most what was in flight.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.quotas")


@dataclass(frozen=True)
class Limits:
    """What an account may store; ``None`` means no limit on that count."""

    max_bytes: int | None = None
    max_files: int | None = None

    @classmethod
    def resolve(
        cls,
        account_bytes: int | None,
        account_files: int | None,
        group_bytes: int | None,
        group_files: int | None,
    ) -> Limits | None:
        """The account's values where set, else the group's; None when nothing limits."""
        max_bytes = account_bytes if account_bytes is not None else group_bytes
        max_files = account_files if account_files is not None else group_files
        if not max_bytes and not max_files:
            return None
        return cls(max_bytes or None, max_files or None)


@dataclass(frozen=True)
class Usage:
    bytes: int = 0
    files: int = 0


class Reservation:
    """One upload's claim on its account's quota, checked as its data arrives.

    ``keep`` and ``start`` describe the upload: the final size of the file
    is ``max(keep, start + received)`` (``STOR``: 0 and 0; ``APPE``: the old
    size twice; ``REST n``: the old size and ``n``).
    """

    def __init__(
        self,
        ledger: Ledger,
        account_pk: Any,
        limits: Limits,
        usage: Usage,
        old_size: int,
        existed: bool,
        keep: int,
        start: int,
    ) -> None:
        self.ledger = ledger
        self.account_pk = account_pk
        self.limits = limits
        #: The account's usage, as of the start plus what completed since.
        self.base = usage.bytes
        self.old_size = old_size if existed else 0
        self.existed = existed
        self.keep = keep
        self.start = start
        #: Bytes this upload adds to the usage so far (never below 0).
        self.charge = 0
        self.settled = False

    def allows(self, received: int) -> bool:
        """Record ``received`` bytes; whether the account stays within its byte limit."""
        max_bytes = self.limits.max_bytes
        charge = max(0, max(self.keep, self.start + received) - self.old_size)
        if max_bytes is None:
            self.charge = charge
            return True
        with self.ledger.lock:
            self.charge = charge
            others = sum(r.charge for r in self.ledger.active(self.account_pk) if r is not self)
            return self.base + others + charge <= max_bytes


class Ledger:
    """The uploads in flight in this process, per account."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._active: dict[Any, list[Reservation]] = {}

    def active(self, account_pk: Any) -> list[Reservation]:
        """The account's reservations (call with ``lock`` held)."""
        return self._active.get(account_pk, [])

    def reserve(
        self,
        account_pk: Any,
        limits: Limits,
        usage: Usage,
        *,
        old_size: int,
        existed: bool,
        resume: bool,
        start: int,
    ) -> Reservation | None:
        """A reservation for a new upload, or None if the account is at its limit.

        At the limit, an upload is refused when it can only add: a new
        file, an append, a resume. Replacing an existing file is let
        through (the new one may be smaller) and cut if it grows too much.
        """
        with self.lock:
            active = self._active.setdefault(account_pk, [])
            in_flight_bytes = sum(r.charge for r in active)
            in_flight_files = sum(1 for r in active if not r.existed)
            if (
                limits.max_files is not None
                and not existed
                and usage.files + in_flight_files >= limits.max_files
            ):
                return None
            grows_only = not existed or resume
            if (
                limits.max_bytes is not None
                and grows_only
                and usage.bytes + in_flight_bytes >= limits.max_bytes
            ):
                return None
            keep = old_size if (existed and resume) else 0
            reservation = Reservation(
                self, account_pk, limits, usage, old_size, existed, keep, start
            )
            active.append(reservation)
            return reservation

    def settle(self, reservation: Reservation, delta_bytes: int) -> None:
        """The upload ended, changing the usage by ``delta_bytes``: release its claim."""
        with self.lock:
            if reservation.settled:
                return
            reservation.settled = True
            active = self._active.get(reservation.account_pk, [])
            if reservation in active:
                active.remove(reservation)
            for other in active:
                other.base += delta_bytes
            if not active:
                self._active.pop(reservation.account_pk, None)

    def changed(self, account_pk: Any, delta_bytes: int) -> None:
        """The account's usage changed outside an upload (a delete): tell its uploads."""
        with self.lock:
            for other in self._active.get(account_pk, []):
                other.base += delta_bytes


#: The ledger of this process.
ledger = Ledger()


# --- usage in the database


def _model() -> Any:
    from ..models import FTPUserAccount

    return FTPUserAccount


def read_usage(account_pk: Any) -> tuple[Usage, bool]:
    """The stored usage of the account, and whether it was ever counted."""
    row = (
        _model()
        ._default_manager.filter(pk=account_pk)
        .values_list("used_bytes", "used_files", "usage_counted_at")
        .first()
    )
    if row is None:
        return Usage(), True
    return Usage(max(0, row[0]), max(0, row[1])), row[2] is not None


def add_usage(account_pk: Any, delta_bytes: int, delta_files: int) -> None:
    """Change the stored usage by the deltas, atomically, never below 0."""
    if not delta_bytes and not delta_files:
        return
    from django.db.models import F, Value
    from django.db.models.functions import Greatest

    _model()._default_manager.filter(pk=account_pk).update(
        used_bytes=Greatest(F("used_bytes") + delta_bytes, Value(0)),
        used_files=Greatest(F("used_files") + delta_files, Value(0)),
    )


def store_usage(account_pk: Any, usage: Usage) -> None:
    """Store a usage counted from the storage, with the time of counting."""
    from django.utils import timezone

    _model()._default_manager.filter(pk=account_pk).update(
        used_bytes=usage.bytes, used_files=usage.files, usage_counted_at=timezone.now()
    )


# --- counting from the storage


def _join(directory: str, name: str) -> str:
    # Local filesystems use the OS's paths, StorageFS POSIX ones everywhere.
    sep = "/" if "/" in directory or os.sep == "/" else os.sep
    return directory.rstrip(sep) + sep + name


def walk_files(fs: Any, root: str) -> Iterator[str]:
    """Every file below ``root`` in pyftpdlib filesystem ``fs`` (links not followed).

    Temporary files of atomic uploads are left out: they are uploads in
    flight, not usage.
    """
    from .uploads import is_temporary

    pending = [root]
    while pending:
        directory = pending.pop()
        for name in fs.listdir(directory):
            if is_temporary(name):
                continue
            path = _join(directory, name)
            if fs.islink(path):
                continue
            if fs.isdir(path):
                pending.append(path)
            elif fs.isfile(path):
                yield path


def count_usage(
    fs: Any, root: str, on_error: Callable[[str, Exception], None] | None = None
) -> Usage:
    """The bytes and files below ``root``, counted through ``fs``."""
    total = files = 0
    for path in walk_files(fs, root):
        try:
            total += int(fs.getsize(path))
        except Exception as exc:  # a file gone meanwhile, a storage error
            if on_error is not None:
                on_error(path, exc)
            continue
        files += 1
    return Usage(total, files)


def filesystem_for(home: str, username: str = "") -> Any:
    """The filesystem the server would give a session with home ``home``.

    ``FTPSERVER_FILESYSTEM`` (pyftpdlib's local filesystem when unset),
    built with a stand-in for the session it normally belongs to.
    """
    from types import SimpleNamespace

    from pyftpdlib.filesystems import AbstractedFS

    from ..conf import conf
    from ..utils import import_class

    fs_class = conf.FILESYSTEM
    if isinstance(fs_class, str):
        fs_class = import_class(fs_class)
    session = SimpleNamespace(
        username=username, use_gmt_times=True, data_channel=None, authorizer=None
    )
    return (fs_class or AbstractedFS)(home, session)


def recount(account: Any) -> Usage:
    """Count the account's usage from its home in the storage and store it."""
    fs = filesystem_for(account.get_home_dir(), account.get_username())
    usage = count_usage(
        fs, fs.root, lambda path, exc: logger.warning("Could not size %s: %s", path, exc)
    )
    store_usage(account.pk, usage)
    return usage


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``"500M"``, ``"10G"``, ``"1048576"``: a size in bytes (powers of 1024); ValueError if not."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)].strip()
    if not number.isdigit():
        raise ValueError(f"not a size: {text!r} (use bytes, or K, M, G, T)")
    return int(number) * _UNITS[unit]


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)
