"""The authorizer: Django users with an ``FTPUserAccount`` may log in.

Cost model, the reason for the shape of this package:

* A login runs Django's ``authenticate()`` (a password hash: ~0.1-1 s of CPU
  with the default PBKDF2 hasher) and one query that loads the account with
  its user and group. It runs off the thread that serves the client's I/O,
  and hashlib releases the GIL while hashing, so logins use every core and
  never stall other sessions.
* A verified password is remembered in process memory (``PasswordCache``),
  so a client that logs in again and again, the usual pattern of cameras and
  scanners, costs one query instead of a hash. Concurrent logins with the
  same credentials share one hash instead of running one each.
* After login, nothing touches the database: the account, home and
  permissions are loaded once into an ``AccountSnapshot`` that the session
  keeps (``SessionAuthorizer``). Changes to an account apply from its next
  login.
* The queries and the hash of a login run on a few worker threads
  (``workers.DatabaseWorkers``, cores + 1 by default) that keep their
  connections while logins keep coming and close them when idle. Session
  threads never open a connection for a login, so idle sessions hold none,
  and a burst of logins uses as many connections as there are workers.
* A database error during a login (a restarted server, "server has gone
  away") is retried once on a new connection, then answered with a 530
  reply, never with a dropped client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.db import Error as DBError
from django.utils import timezone
from pyftpdlib.authorizers import AuthenticationFailed, AuthorizerError
from pyftpdlib.handlers import FTPHandler

from .. import dispatch, models, signals
from ..conf import conf
from .accounts import AccountLookup, AccountSnapshot
from .lastlogin import LastLoginRecorder, retry_db
from .passwords import PasswordCache
from .permissions import ftp_path_in_home
from .workers import DatabaseWorkers, default_size, on_worker

# Named as in 1.0, when all of it was ``authorizers.py``: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.authorizers")


class LoginFailed(AuthenticationFailed):
    """A refused password, with why (for metrics, never for the client).

    ``reason`` is ``"unknown_user"`` (no account with that username) or
    ``"bad_password"`` (a wrong password, or an inactive user); the reply
    says "Authentication failed." either way, so a client cannot tell
    which usernames exist.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("Authentication failed.")
        self.reason = reason


def _get_personate_user_class() -> type:
    if os.name == "nt":  # pragma: no cover
        from .. import _windows

        return _windows.WindowsPersonateUser
    from .. import _unix

    return _unix.UnixPersonateUser


class FTPAccountAuthorizer:
    """pyftpdlib authorizer backed by Django's ``authenticate()``.

    A user may log in when ``authenticate()`` accepts the password and the
    user has an ``FTPUserAccount``. The methods taking a username query the
    database and serve callers outside a session; a logged-in session talks
    to its ``SessionAuthorizer`` instead, which answers from memory.
    """

    model = models.FTPUserAccount
    personate_user_class: type | None = None

    #: Most logins the fast lane checks together (see ``prefetched_accounts``).
    fast_lane_batch = 32

    #: Longest wait, in seconds, for a concurrent check of the same
    #: credentials before checking them independently.
    single_flight_timeout = 30.0

    def __init__(self, file_access_user: str | None = None) -> None:
        self.username_field = get_user_model().USERNAME_FIELD
        self.password_cache = PasswordCache()
        self.last_login_recorder = LastLoginRecorder(self.model)
        size = conf.AUTH_WORKERS or default_size()
        self.workers = DatabaseWorkers(max(1, size - 1))
        self.fast_lane = DatabaseWorkers(1, name="ftp-login-fast", batch_size=self.fast_lane_batch)
        self.account_lookup = AccountLookup(self.model)
        self._prefetched = threading.local()
        if file_access_user:
            personate_user_class = self.personate_user_class or _get_personate_user_class()
            self.personate_user = personate_user_class(file_access_user)
        else:
            self.personate_user = None

    # --- lookups (published API)

    def _filter_user_by(self, username: str) -> dict[str, str]:
        return {f"user__{self.username_field}": username}

    def has_user(self, username: str) -> bool:
        return self.model.objects.filter(**self._filter_user_by(username)).exists()

    def get_account(self, username: str) -> models.FTPUserAccount | None:
        try:
            return self.model.objects.select_related("user", "group").get(
                **self._filter_user_by(username)
            )
        except self.model.DoesNotExist:
            return None

    # --- login

    def _fingerprint(self, user: Any, account: models.FTPUserAccount) -> tuple:
        """What a cached check depends on; any change invalidates it."""
        return (
            user.pk,
            getattr(user, "password", None),
            getattr(user, "is_active", True),
            account.pk,
            account.group_id,
        )

    def authenticate(self, username: str, password: str) -> models.FTPUserAccount:
        """Return the account if ``password`` is right, else raise ``AuthenticationFailed``."""
        account = self.get_account(username)
        timeout = conf.AUTH_CACHE_TIMEOUT
        cache = self.password_cache
        key = None
        if account is not None and timeout > 0 and getattr(account.user, "is_active", True):
            key = cache.key(username, password)
            fingerprint = self._fingerprint(account.user, account)
            if cache.hit(key, fingerprint):
                return account
            in_flight = cache.claim(key)
            if in_flight is not None:
                # The same credentials are being checked on another thread:
                # wait for that hash instead of running another one.
                in_flight.wait(self.single_flight_timeout)
                if cache.hit(key, fingerprint):
                    return account
                key = None  # not ours to release; check independently
        try:
            # Always run the backends, even for a username without an
            # account, so the time taken does not tell which usernames exist.
            user = authenticate(**{self.username_field: username, "password": password})
            if user is None or account is None or user.pk != account.user_id:
                raise LoginFailed("unknown_user" if account is None else "bad_password")
            if key is not None:
                # The fingerprint of the user the backend verified: if the
                # password changed meanwhile, the entry never matches.
                cache.store(key, self._fingerprint(user, account), timeout)
            return account
        finally:
            if key is not None:
                cache.release(key)

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        """Check the password; on success give ``handler`` its session view.

        For the server's own logins (``handler`` is an FTP session) the check
        (queries and hash) runs on one of the ``workers``; the session's
        thread waits for it and opens no database connection. Called
        directly (a project's code, a test, ``handler`` None), it runs on
        the caller's thread and database connection, as in 1.0: a
        ``django.test.TestCase``'s data is only visible there.
        """
        try:
            if on_worker() or not isinstance(handler, FTPHandler):
                snapshot = self._login(username, password)
            else:
                snapshot = self.workers_for(username, password).run(self._login, username, password)
        except (AuthenticationFailed, AuthorizerError):
            raise
        except Exception as exc:
            # An authentication backend's bug: a 530 and a logged traceback,
            # not a dropped client.
            logger.exception("error while checking the login of %r", username)
            raise AuthorizerError("Login unavailable, try again later.") from exc
        if handler is not None:
            handler.authorizer = SessionAuthorizer(self, snapshot, handler)

    def workers_for(self, username: str, password: str) -> DatabaseWorkers:
        """The workers to check this login: the fast lane when it is likely cached.

        A cached check is a query and two HMACs, a fraction of a millisecond
        of Python holding the GIL: run on several threads at once, checks
        only wait for each other and for the sessions' threads (a burst of
        100 cached logins took a fifth longer on three workers than on
        one). So likely hits go to one thread of their own, and the others
        keep the cores for password hashes. Whether it is cached is only
        peeked at here; the check itself still verifies the entry and hashes
        when it does not hold (a password changed since).
        """
        if signals.ftp_pre_login.receivers:
            # Receivers of the login may be slow: not on the fast lane's one thread.
            return self.workers
        if conf.AUTH_CACHE_TIMEOUT > 0 and self.password_cache.peek(
            self.password_cache.key(username, password)
        ):
            return self.fast_lane
        return self.workers

    def _login(self, username: str, password: str) -> AccountSnapshot:
        snapshot = retry_db(self._cached_login, username, password)
        if snapshot is not None:
            return snapshot
        return AccountSnapshot.from_account(retry_db(self.authenticate, username, password))

    def _cached_login_applies(self) -> bool:
        """False for a subclass that changed how accounts are found, or with the cache off."""
        cls = type(self)
        return not (
            conf.AUTH_CACHE_TIMEOUT <= 0
            or cls.get_account is not FTPAccountAuthorizer.get_account
            or cls.authenticate is not FTPAccountAuthorizer.authenticate
            or cls._fingerprint is not FTPAccountAuthorizer._fingerprint
            or self.model is not models.FTPUserAccount
        )

    def _cached_login(self, username: str, password: str) -> AccountSnapshot | None:
        """The snapshot if the password is in the cache, checked with the fast query.

        ``None`` sends the login through ``authenticate()``: a miss, no
        account, or a subclass that changed how accounts are found.
        """
        if not self._cached_login_applies():
            return None
        prefetched = getattr(self._prefetched, "rows", None) or {}
        if username in prefetched:
            row = prefetched[username]
        else:
            row = self.account_lookup.fetch(username)
        if row is None or not row["user__is_active"]:
            return None
        key = self.password_cache.key(username, password)
        if not self.password_cache.hit(key, self.account_lookup.fingerprint(row)):
            return None
        return self.account_lookup.snapshot(row)

    @contextlib.contextmanager
    def prefetched_accounts(self, usernames: list[str]) -> Iterator[None]:
        """Within the block, this thread's cached logins of ``usernames`` share one query.

        For logins that arrived together (the server runs a batch of them
        on the fast lane): they were all received before the query runs, so
        a password changed or an account removed before any of them arrived
        is seen, as with a query each. Any failure here only leaves each
        login to its own query.
        """
        rows: dict[str, Any] = {}
        if len(usernames) > 1 and self._cached_login_applies():
            try:
                rows = self.account_lookup.fetch_many(usernames)
            except DBError as exc:
                logger.warning("database error while reading %d accounts: %s", len(usernames), exc)
            except Exception:
                logger.exception("error while reading %d accounts", len(usernames))
        self._prefetched.rows = rows
        try:
            yield
        finally:
            self._prefetched.rows = None

    def record_login(self, snapshot: AccountSnapshot) -> None:
        """Have the login time of ``snapshot``'s account stored, by a worker, soon."""
        self.last_login_recorder.record(snapshot.account_pk, timezone.now(), self.workers.submit)

    def close(self) -> None:
        """Store pending login times, stop the workers, close their connections."""
        self.last_login_recorder.flush()
        self.workers.close()
        self.fast_lane.close()

    def get_home_dir(self, username: str) -> str:
        account = self.get_account(username)
        return account.get_home_dir() if account else ""

    def get_msg_login(self, username: str) -> str:
        """Welcome message; also records the login time on the account."""
        account = self.get_account(username)
        if account is not None:
            account.update_last_login()
            account.save(update_fields=["last_login"])
        return "welcome."

    def get_msg_quit(self, username: str) -> str:
        return "good bye."

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        account = self.get_account(username)
        return bool(account and account.has_perm(perm, path))

    def get_perms(self, username: str) -> str:
        account = self.get_account(username)
        return account.get_perms() if account else ""

    # --- file access as another system user

    def impersonate_user(self, username: str, password: str) -> None:
        if self.personate_user:
            self.personate_user.impersonate_user(username, password)

    def terminate_impersonation(self, username: str) -> None:
        if self.personate_user:
            self.personate_user.terminate_impersonation(username)


class SessionAuthorizer:
    """One logged-in session's view of the authorizer: answers from memory.

    pyftpdlib asks its authorizer about permissions on every command; here
    those answers come from the ``AccountSnapshot`` read at login, so
    ordinary commands run no SQL. Anything else is passed to the shared
    authorizer.
    """

    def __init__(
        self,
        authorizer: FTPAccountAuthorizer,
        snapshot: AccountSnapshot,
        handler: Any = None,
    ) -> None:
        self.base = authorizer
        self.snapshot = snapshot
        # The handler owns this object: a weak reference avoids a cycle.
        self._handler = weakref.ref(handler) if handler is not None else None
        self._real_home: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        self.base.validate_authentication(username, password, handler)

    def get_home_dir(self, username: str) -> str:
        return self.snapshot.home_dir

    def get_msg_login(self, username: str) -> str:
        """Record the login time; pyftpdlib calls this last, before the 230 reply.

        A failure to record the time is logged; it does not refuse a
        verified login.
        """
        if type(self.base).get_msg_login is not FTPAccountAuthorizer.get_msg_login:
            try:
                return self.base.get_msg_login(username)  # a project's own message
            finally:
                dispatch.release_connections()
        self.base.record_login(self.snapshot)
        return "welcome."

    def _resolved_ftp_path(self, path: str) -> str | None:
        """Client-visible path of ``path`` with symlinks resolved, or ``None``.

        A symlink inside the home can lead from a writable place into a
        read-only one; rules then apply to both the path as written and
        the place it leads to. Returns ``None`` when resolving changes
        nothing or the filesystem cannot resolve.
        """
        handler = self._handler() if self._handler else None
        fs = getattr(handler, "fs", None)
        if fs is None:
            return None
        try:
            resolved = fs.realpath(path)
            if resolved == path:
                return None
            if self._real_home is None:
                self._real_home = fs.realpath(self.snapshot.home_dir)
        except (OSError, ValueError):
            return None
        return ftp_path_in_home(resolved, self._real_home) or ""

    def _home_path(self, path: str | None) -> str | None:
        """Filesystem path ``path`` as a path under the account's ``home_dir``.

        pyftpdlib's filesystem is rooted at the home itself; ``StorageFS``
        is rooted at the storage, where home ``alice`` is ``/alice``, so its
        paths go through its own ``fs2ftp()`` to the client's path, which
        the home's rules are written in.
        """
        handler = self._handler() if self._handler else None
        fs = getattr(handler, "fs", None)
        root = getattr(fs, "root", None)
        home = self.snapshot.home_dir
        if path is None or root is None or root == home or not fs.validpath(path):
            return path
        ftp_path = fs.fs2ftp(path).lstrip("/")
        return os.path.join(home, ftp_path) if ftp_path else home

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        path = self._home_path(path)
        snapshot = self.snapshot
        if not snapshot.has_perm(perm, path):
            return False
        if path is not None and snapshot.rules:
            resolved = self._resolved_ftp_path(path)
            if resolved is not None:
                # "" = resolves outside the home: pyftpdlib refuses that too.
                return bool(resolved) and snapshot.rules.has_perm(perm, resolved)
        return True

    def get_perms(self, username: str) -> str:
        return self.snapshot.permission

    def perms_for(self, path: str | None) -> str:
        """The letters that apply at filesystem path ``path`` (for MLSD/MLST facts)."""
        return self.snapshot.perms_for(self._home_path(path))
