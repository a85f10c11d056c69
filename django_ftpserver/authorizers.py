"""The authorizer: Django users with an ``FTPUserAccount`` may log in.

Cost model, the reason for the shape of this module:

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
import hashlib
import hmac
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

from django.contrib.auth import authenticate, get_user_model
from django.db import Error as DBError
from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from pyftpdlib.authorizers import AuthenticationFailed, AuthorizerError
from pyftpdlib.handlers import FTPHandler

from . import dispatch, models, signals
from .auth.permissions import PathRules, ftp_path_in_home
from .auth.workers import DatabaseWorkers, default_size, on_worker
from .conf import conf
from .policy.quotas import Limits

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that a new connection may cure: the server restarted, the
#: connection was cut ("server has gone away"), a connection left broken.
RETRYABLE_DB_ERRORS = (OperationalError, InterfaceError)


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


@dataclass(frozen=True)
class AccountSnapshot:
    """What a session needs of an account, read once at login.

    ``rules`` holds the account's path rules and its group's (one query at
    login), so permission checks during the session run no SQL.
    """

    username: str
    user_pk: Any
    account_pk: Any
    home_dir: str
    permission: str
    rules: PathRules | None = None
    #: The account's quota (``quotas.Limits``), None when nothing limits it.
    limits: Limits | None = None

    @classmethod
    def from_account(cls, account: models.FTPUserAccount) -> AccountSnapshot:
        return cls(
            username=account.get_username(),
            user_pk=account.user_id,
            account_pk=account.pk,
            home_dir=account.get_home_dir(),
            permission=account.get_perms(),
            rules=account.get_path_rules(),
            limits=account.get_limits(),
        )

    def ftp_path(self, path: str) -> str | None:
        """Client-visible path of filesystem path ``path``; ``None`` outside the home."""
        return ftp_path_in_home(path, self.home_dir)

    def perms_for(self, path: str | None) -> str:
        """The letters that apply at filesystem path ``path`` (``""`` outside the home)."""
        if path is None or not self.rules:
            return self.permission
        ftp_path = self.ftp_path(path)
        return "" if ftp_path is None else self.rules.perms_for(ftp_path)

    def has_perm(self, perm: str, path: str | None = None) -> bool:
        """``perm`` at filesystem path ``path``, as pyftpdlib asks it.

        pyftpdlib passes paths under the home (it refuses others before
        asking); a path outside the home has no permission at all.
        """
        if path is None or not self.rules:
            return perm in self.permission
        ftp_path = self.ftp_path(path)
        return ftp_path is not None and self.rules.has_perm(perm, ftp_path)


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


def retry_db(func: Callable[..., T], *args: Any) -> T:
    """Run ``func``; after a connection error, once more on a new connection.

    Login workers keep their connections while logins keep coming; one
    broken under them (a database restart, "server has gone away", a
    server-side idle timeout) fails the first query, and the retry runs it
    again on a new connection. A second failure becomes ``AuthorizerError``:
    a 530 reply, logged here, instead of a dropped client.
    """
    try:
        return func(*args)
    except RETRYABLE_DB_ERRORS as exc:
        logger.warning("database error during login, retrying on a new connection: %s", exc)
        dispatch.release_connections()
    except DBError as exc:
        logger.error("database error during login", exc_info=True)
        raise AuthorizerError("Login unavailable, try again later.") from exc
    try:
        return func(*args)
    except DBError as exc:
        logger.error("database error during login", exc_info=True)
        raise AuthorizerError("Login unavailable, try again later.") from exc


class LastLoginRecorder:
    """Writes the ``last_login`` of logins, behind them, a batch per commit.

    A login does not wait for its time to be stored: the 230 reply goes out
    and the time is written ``delay`` seconds later, with those of the other
    logins that came meanwhile, in one transaction, by a login worker.
    Written before each reply, one by one, a burst of 100 logins queued
    behind 100 commits (one at a time on SQLite, each waiting for the file
    lock): 1.5 s, 50 times bare pyftpdlib's whole login; and a worker
    waiting for a commit is a worker not checking a password. ``flush()``
    writes what is pending and waits for it.
    """

    #: Seconds between a login and the write of its time (and of the
    #: logins that come meanwhile).
    delay = 0.05

    def __init__(self, model: type[models.FTPUserAccount]) -> None:
        self.model = model
        self._condition = threading.Condition()
        self._pending: dict[Any, Any] = {}
        self._writing = False
        self._timer: threading.Timer | None = None

    def record(self, account_pk: Any, when: Any, submit: Callable[..., Any]) -> None:
        """Have ``when`` stored as the last login of ``account_pk``, soon.

        ``submit(func)`` runs the writing elsewhere (the login workers),
        ``delay`` seconds from the first time recorded since the last write.
        """
        with self._condition:
            self._keep({account_pk: when})
            if self._writing:
                return  # a write is due: it takes this one too
            self._writing = True
            self._timer = threading.Timer(self.delay, self._due, (submit,))
            self._timer.daemon = True
            self._timer.start()

    def _keep(self, times: dict[Any, Any]) -> None:
        """Add ``times`` to the pending ones, the later time of an account winning."""
        for pk, when in times.items():
            previous = self._pending.get(pk)
            if previous is None or when > previous:
                self._pending[pk] = when

    def _drain(self) -> None:
        """Write batches until nothing is pending; a batch that failed stays pending."""
        while True:
            with self._condition:
                batch, self._pending = self._pending, {}
                if not batch:
                    self._writing = False
                    self._condition.notify_all()
                    return
            stored = False
            try:
                stored = self._store(batch)
            finally:
                if not stored:  # kept for the next write
                    with self._condition:
                        self._keep(batch)
                        self._writing = False
                        self._condition.notify_all()
            if not stored:
                return

    def _store(self, batch: dict[Any, Any]) -> bool:
        """Write ``batch``, once more on a new connection after a connection error."""
        for attempt in (1, 2):
            try:
                self._write(batch)
                return True
            except DBError as exc:
                if attempt == 1 and isinstance(exc, RETRYABLE_DB_ERRORS):
                    dispatch.release_connections()
                    continue
                # The logins succeeded; their times wait for the next write.
                logger.warning("last_login of %d account(s) not stored yet: %s", len(batch), exc)
        return False

    def _due(self, submit: Callable[..., Any]) -> None:
        with self._condition:
            if self._timer is None:
                return  # flush() took the write over
            self._timer = None
        submit(self._drain)

    def flush(self, timeout: float = 10.0) -> bool:
        """Store every recorded time now; False if that took over ``timeout``."""
        with self._condition:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            try:
                self._drain()
            finally:
                dispatch.release_connections()
        with self._condition:
            self._condition.wait_for(lambda: not self._writing, timeout)
            return not self._writing and not self._pending

    def _write(self, batch: dict[Any, Any]) -> None:
        manager = self.model._default_manager
        if len(batch) == 1:
            ((pk, when),) = batch.items()
            manager.filter(pk=pk).update(last_login=when)
            return
        with transaction.atomic(using=router.db_for_write(self.model)):
            for pk, when in batch.items():
                manager.filter(pk=pk).update(last_login=when)


class AccountLookup:
    """The queries of a cached login, compiled once per database.

    A cached login reads the account with its user and group, and whether
    any path rule concerns it (one query), then those rules if there are
    some (another). Compiling the
    account query (a join of account, user and group) costs
    Django's ORM about 0.3 ms of CPU under the GIL, more than all the rest
    of a cached login; a burst of 100 logins spent most of its time there.
    The SQL is built by the ORM once, for the model and user model in use,
    and then only executed. Rows come back as plain values, normalized with
    each field's ``to_python`` so that they compare equal to the values of
    model instances (the cache fingerprint is built from those at a miss).
    """

    # Stand-ins for the parameters when compiling: a username no one has,
    # primary keys no row has (our models' keys are integers).
    _USERNAME = "\x00django-ftpserver-username\x00"
    _ACCOUNT_PK = -2_147_483_641
    _GROUP_PK = -2_147_483_637

    def __init__(self, model: type[models.FTPUserAccount]) -> None:
        self.model = model
        self.user_model = get_user_model()
        username_field = self.user_model.USERNAME_FIELD
        self._has_is_active = any(
            f.name == "is_active" for f in self.user_model._meta.concrete_fields
        )
        self._names = [
            "pk",
            "user_id",
            "group_id",
            "home_dir",
            f"user__{username_field}",
            "user__password",
            "group__home_dir",
            "group__permission",
            "quota_bytes",
            "quota_files",
            "group__quota_bytes",
            "group__quota_files",
        ]
        if self._has_is_active:
            self._names.append("user__is_active")
        self._filter = f"user__{username_field}"
        self._compiled: dict[str, tuple[tuple[str, list[Any]] | None, ...]] = {}
        self._compiled_many: dict[tuple[str, int], tuple[str, list[Any]] | None] = {}
        meta = model._meta
        self._account_pk = meta.pk.to_python
        self._user_pk = meta.get_field("user").target_field.to_python
        self._group_pk = meta.get_field("group").target_field.to_python

    @staticmethod
    def _compiled_sql(queryset: Any, alias: str, *stand_ins: Any) -> tuple[str, list[Any]] | None:
        """SQL and parameters of ``queryset``; ``None`` unless each stand-in is there once."""
        sql, params = queryset.query.get_compiler(using=alias).as_sql()
        params = list(params)
        if any(params.count(stand_in) != 1 for stand_in in stand_ins):
            return None  # a backend that rewrites the values: use the ORM
        return sql, params

    def _accounts(self, alias: str, **filters: Any) -> Any:
        """The account rows matching ``filters``, as ``fetch`` reads them."""
        # Whether any path rule concerns the account, in the same query: the
        # rules themselves are read only when there are some.
        has_rules = Exists(
            models.FTPPathRule._default_manager.using(alias).filter(
                Q(account_id=OuterRef("pk")) | Q(group_id=OuterRef("group_id"))
            )
        )
        return (
            self.model._default_manager.using(alias)
            .filter(**filters)
            .annotate(_has_rules=has_rules)
            .values_list(*self._names, "_has_rules")
        )

    def _compile(self, alias: str) -> tuple[tuple[str, list[Any]] | None, ...]:
        account = self._compiled_sql(
            self._accounts(alias, **{self._filter: self._USERNAME}), alias, self._USERNAME
        )
        rules = self._compiled_sql(
            models.FTPPathRule._default_manager.using(alias)
            .filter(Q(account_id=self._ACCOUNT_PK) | Q(group_id=self._GROUP_PK))
            .values_list("account_id", "path", "permission"),
            alias,
            self._ACCOUNT_PK,
            self._GROUP_PK,
        )
        return account, rules

    @staticmethod
    def _execute(alias: str, compiled: tuple[str, list[Any]], values: dict[Any, Any]) -> list:
        sql, params = compiled
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, [values.get(param, param) for param in params])
            return cursor.fetchall()

    def _queries(self, alias: str) -> tuple[tuple[str, list[Any]] | None, ...]:
        if alias not in self._compiled:
            self._compiled[alias] = self._compile(alias)
        return self._compiled[alias]

    def fetch(self, username: str) -> dict[str, Any] | None:
        """The account row of ``username``, or ``None`` (none, or no fast path)."""
        alias = router.db_for_read(self.model)
        account, rules = self._queries(alias)
        if account is None or rules is None:
            return None
        rows = self._execute(alias, account, {self._USERNAME: username})
        if len(rows) != 1:
            return None
        return self._row(rows[0], alias)

    def _row(self, values: Any, alias: str) -> dict[str, Any]:
        row = dict(zip([*self._names, "_has_rules"], values, strict=True))
        row["pk"] = self._account_pk(row["pk"])
        row["user_id"] = self._user_pk(row["user_id"])
        row["group_id"] = self._group_pk(row["group_id"])
        row["user__is_active"] = bool(row.get("user__is_active", True))
        row["_alias"] = alias
        return row

    def fetch_many(self, usernames: list[str]) -> dict[str, dict[str, Any] | None]:
        """What ``fetch`` returns for each of ``usernames``, in one query.

        Usernames left out of the result are to be fetched one by one: all
        of them when a row matched a name it does not spell exactly (a
        case- or accent-insensitive collation), since ``fetch`` would then
        find several rows, or one spelled otherwise. The query is compiled
        once for each power-of-two count of names, the list padded with its
        last name.
        """
        names = list(dict.fromkeys(usernames))
        if len(names) == 1:
            return {names[0]: self.fetch(names[0])}
        alias = router.db_for_read(self.model)
        size = 1 << (len(names) - 1).bit_length()
        if (alias, size) not in self._compiled_many:
            stand_ins = [f"{self._USERNAME}{index}" for index in range(size)]
            self._compiled_many[alias, size] = self._compiled_sql(
                self._accounts(alias, **{f"{self._filter}__in": stand_ins}), alias, *stand_ins
            )
        compiled = self._compiled_many[alias, size]
        if compiled is None or None in self._queries(alias):
            return {}
        padded = names + names[-1:] * (size - len(names))
        params = {f"{self._USERNAME}{index}": name for index, name in enumerate(padded)}
        rows = [self._row(found, alias) for found in self._execute(alias, compiled, params)]
        by_name = {row[self._names[4]]: row for row in rows}
        if len(by_name) != len(rows) or not by_name.keys() <= set(names):
            return {}
        return {name: by_name.get(name) for name in names}

    def path_rules(self, row: dict[str, Any]) -> PathRules:
        """The account's and its group's path rules, as ``FTPUserAccount.get_path_rules``."""
        alias = row["_alias"]
        _, rules = self._compiled[alias]
        account_rules: dict[str, str] = {}
        group_rules: dict[str, str] = {}
        if not row["_has_rules"]:
            return PathRules(row["group__permission"], account_rules, group_rules)
        values = {self._ACCOUNT_PK: row["pk"], self._GROUP_PK: row["group_id"]}
        for account_id, path, permission in self._execute(alias, rules, values):
            (account_rules if account_id is not None else group_rules)[path] = permission
        return PathRules(row["group__permission"], account_rules, group_rules)

    def fingerprint(self, row: dict[str, Any]) -> tuple:
        """Equal to ``FTPAccountAuthorizer._fingerprint`` of the same account."""
        return (
            row["user_id"],
            row["user__password"],
            row["user__is_active"],
            row["pk"],
            row["group_id"],
        )

    def snapshot(self, row: dict[str, Any]) -> AccountSnapshot:
        """The snapshot, through the model's own methods, without a query.

        The methods run on a stand-in holding the row's values: three model
        instances would cost more than the query itself.
        """
        username = row[self._names[4]]

        def get_username() -> str:
            return username

        group = SimpleNamespace(
            pk=row["group_id"], home_dir=row["group__home_dir"], permission=row["group__permission"]
        )
        account = SimpleNamespace(
            pk=row["pk"],
            user_id=row["user_id"],
            group_id=row["group_id"],
            group=group,
            home_dir=row["home_dir"],
            user=SimpleNamespace(get_username=get_username),
            get_username=get_username,
        )
        model = models.FTPUserAccount
        return AccountSnapshot(
            username=username,
            user_pk=row["user_id"],
            account_pk=row["pk"],
            home_dir=model.get_home_dir(account),  # type: ignore[arg-type]
            permission=model.get_perms(account),  # type: ignore[arg-type]
            rules=self.path_rules(row),
            limits=Limits.resolve(
                row["quota_bytes"],
                row["quota_files"],
                row["group__quota_bytes"],
                row["group__quota_files"],
            ),
        )


def _get_personate_user_class() -> type:
    if os.name == "nt":  # pragma: no cover
        from . import _windows

        return _windows.WindowsPersonateUser
    from . import _unix

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
