"""Run file operations as ``FTPSERVER_FILE_ACCESS_USER`` (Unix).

``seteuid`` changes the whole process, and sessions run on threads. The
switch is therefore reference-counted: the first file operation to start
switches to the file access user, the last one to finish switches back, so
a session finishing its operation never pulls the rights from under another
session's operation.
"""

from __future__ import annotations

import os
import threading

from django.core.exceptions import ImproperlyConfigured

try:
    import pwd
except ImportError as exc:  # pragma: no cover
    raise ImproperlyConfigured(
        "FTPSERVER_FILE_ACCESS_USER needs the pwd module (Unix only)."
    ) from exc

_lock = threading.Lock()
_depth = 0


class UnixPersonateUser:
    def __init__(self, file_access_user: str) -> None:
        try:
            entry = pwd.getpwnam(file_access_user)
        except KeyError:
            raise ImproperlyConfigured(
                f"FTPSERVER_FILE_ACCESS_USER: no system user {file_access_user!r}"
            ) from None
        self.file_access_user = file_access_user
        self.file_uid, self.file_gid = entry.pw_uid, entry.pw_gid
        self.uid, self.gid = os.getuid(), os.getgid()

    def impersonate_user(self, username: str, password: str) -> None:
        global _depth
        with _lock:
            if _depth == 0:
                os.setegid(self.file_gid)
                os.seteuid(self.file_uid)
            _depth += 1

    def terminate_impersonation(self, username: str) -> None:
        global _depth
        with _lock:
            _depth = max(0, _depth - 1)
            if _depth == 0:
                os.seteuid(self.uid)
                os.setegid(self.gid)
