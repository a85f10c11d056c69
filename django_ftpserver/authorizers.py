"""The authorizer: Django users with an ``FTPUserAccount`` may log in.

Cost model, the reason for the shape of this module:

* A login runs Django's ``authenticate()`` (a password hash: ~0.1-1 s of CPU
  with the default PBKDF2 hasher) and one query that loads the account with
  its user and group. Sessions run on their own threads, and hashlib releases
  the GIL while hashing, so logins use every core and never stall other
  sessions.
* A verified password is remembered in process memory (``PasswordCache``),
  so a client that logs in again and again, the usual pattern of cameras and
  scanners, costs one query instead of a hash.
* After login, nothing touches the database: the account, home and
  permissions are loaded once into an ``AccountSnapshot`` that the session
  keeps (``SessionAuthorizer``). Changes to an account apply from its next
  login.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.utils import timezone
from pyftpdlib.authorizers import AuthenticationFailed

from . import models
from .conf import conf
from .permissions import PathRules, ftp_path_in_home


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

    @classmethod
    def from_account(cls, account: models.FTPUserAccount) -> AccountSnapshot:
        return cls(
            username=account.get_username(),
            user_pk=account.user_id,
            account_pk=account.pk,
            home_dir=account.get_home_dir(),
            permission=account.get_perms(),
            rules=account.get_path_rules(),
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


class PasswordCache:
    """Remembers passwords that were verified, never the passwords themselves.

    An entry is keyed by the username and an HMAC of the password under a
    random key made per process, and holds a fingerprint of what the check
    depended on: the user's stored password hash, ``is_active`` and the FTP
    account. A hit counts only while that fingerprint is unchanged, so a
    changed password, a deactivated user or a deleted account is refused at
    the very next login. Failed checks are never stored.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._key = os.urandom(32)
        self._entries: OrderedDict[tuple[str, bytes], tuple[tuple, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def _digest(self, password: str) -> bytes:
        return hmac.new(
            self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()

    def hit(self, username: str, password: str, fingerprint: tuple) -> bool:
        key = (username, self._digest(password))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            stored, expires = entry
            if expires < time.monotonic() or not hmac.compare_digest(
                repr(stored).encode(), repr(fingerprint).encode()
            ):
                del self._entries[key]
                return False
            return True

    def store(self, username: str, password: str, fingerprint: tuple, timeout: float) -> None:
        key = (username, self._digest(password))
        with self._lock:
            self._entries[key] = (fingerprint, time.monotonic() + timeout)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


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

    def __init__(self, file_access_user: str | None = None) -> None:
        self.username_field = get_user_model().USERNAME_FIELD
        self.password_cache = PasswordCache()
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

    def _fingerprint(self, account: models.FTPUserAccount) -> tuple:
        user = account.user
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
        if account is not None and timeout > 0 and getattr(account.user, "is_active", True):
            fingerprint = self._fingerprint(account)
            if self.password_cache.hit(username, password, fingerprint):
                return account
        # Always run the backends, even for a username without an account,
        # so the time taken does not tell which usernames exist.
        user = authenticate(**{self.username_field: username, "password": password})
        if user is None or account is None or user.pk != account.user_id:
            raise AuthenticationFailed("Authentication failed.")
        if timeout > 0:
            self.password_cache.store(username, password, self._fingerprint(account), timeout)
        return account

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        """Check the password; on success give ``handler`` its session view."""
        account = self.authenticate(username, password)
        snapshot = AccountSnapshot.from_account(account)
        if handler is not None:
            handler.authorizer = SessionAuthorizer(self, snapshot, handler)

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
        if type(self.base).get_msg_login is not FTPAccountAuthorizer.get_msg_login:
            return self.base.get_msg_login(username)  # a project's own message
        self.base.model.objects.filter(pk=self.snapshot.account_pk).update(
            last_login=timezone.now()
        )
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

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
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
        return self.snapshot.perms_for(path)
