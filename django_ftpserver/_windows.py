"""Run file operations as ``FTPSERVER_FILE_ACCESS_USER`` (Windows, pywin32).

Kept at django-ftpserver 1.0's module path. Impersonation on Windows is per
thread, which suits the thread-per-session server: each session's file
operations run under the logged-on user on that session's thread only.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:
    import win32con
    import win32security
except ImportError as exc:  # pragma: no cover - Windows only
    raise ImproperlyConfigured(
        "FTPSERVER_FILE_ACCESS_USER on Windows needs pywin32: "
        "pip install 'django-ftpserver[windows]'"
    ) from exc


class WindowsPersonateUser:  # pragma: no cover - Windows only
    def __init__(self, file_access_user: str) -> None:
        self.file_access_user = file_access_user

    def impersonate_user(self, username: str, password: str) -> None:
        handle = win32security.LogonUser(
            username,
            None,
            password,
            win32con.LOGON32_LOGON_INTERACTIVE,
            win32con.LOGON32_PROVIDER_DEFAULT,
        )
        win32security.ImpersonateLoggedOnUser(handle)
        handle.Close()

    def terminate_impersonation(self, username: str) -> None:
        win32security.RevertToSelf()
