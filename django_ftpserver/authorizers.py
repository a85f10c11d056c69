"""The authorizer: Django users with an ``FTPUserAccount`` may log in.

The code lives in ``django_ftpserver.auth``, one concern per module:

* ``auth.authorizer``: ``FTPAccountAuthorizer`` (and why it is shaped the
  way it is), ``SessionAuthorizer``, ``LoginFailed``;
* ``auth.accounts``: ``AccountLookup`` and ``AccountSnapshot``;
* ``auth.passwords``: ``PasswordCache``;
* ``auth.lastlogin``: ``LastLoginRecorder`` and ``retry_db``;
* ``auth.lockout``, ``auth.workers``, ``auth.loginloop``, ``auth.permissions``.

This module stays the import path of django-ftpserver 1.0: every name it
offered before the split is still importable from here
(``tests/data/public_names.json``).
"""

from .auth.accounts import AccountLookup, AccountSnapshot
from .auth.authorizer import FTPAccountAuthorizer, LoginFailed, SessionAuthorizer
from .auth.lastlogin import RETRYABLE_DB_ERRORS, LastLoginRecorder, retry_db
from .auth.passwords import CacheKey, PasswordCache
from .auth.permissions import PathRules, ftp_path_in_home
from .auth.workers import DatabaseWorkers, default_size, on_worker
from .conf import conf
from .policy.quotas import Limits

__all__ = [
    "RETRYABLE_DB_ERRORS",
    "AccountLookup",
    "AccountSnapshot",
    "CacheKey",
    "DatabaseWorkers",
    "FTPAccountAuthorizer",
    "LastLoginRecorder",
    "Limits",
    "LoginFailed",
    "PasswordCache",
    "PathRules",
    "SessionAuthorizer",
    "conf",
    "default_size",
    "ftp_path_in_home",
    "on_worker",
    "retry_db",
]
