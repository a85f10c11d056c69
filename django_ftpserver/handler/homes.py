"""The home-directory check at login, and its creation when configured.

A session whose home cannot serve it is refused at login with a clear
``530`` and a line in the log, rather than let in to fail on every command.
"""

from __future__ import annotations

import logging
import os

from pyftpdlib.filesystems import AbstractedFS, UnixFilesystem

from ..conf import conf

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


class HomeDirMixin:
    """Check the home directory at login; create it when configured to.

    A home that is missing (and ``FTPSERVER_CREATE_HOME_DIRS`` is off, or
    creating it failed), not a directory or not readable refuses the login
    with a clear 530 and an error in the log naming the user and the path,
    instead of a session where every command fails. A home that is not
    writable is logged as a warning for an account with write permissions;
    the login works and writes get pyftpdlib's 550.

    Checked only for filesystems on local disk (pyftpdlib's own); a custom
    ``abstracted_fs`` decides itself, unless ``check_home_dir`` is set.
    """

    #: None: check when ``abstracted_fs`` is one of pyftpdlib's local filesystems.
    check_home_dir: bool | None = None

    home_unavailable_reply = "530 Your home directory is not available; contact the administrator."

    _WRITE_PERMS = frozenset("adfmwMT")

    def _checks_home(self) -> bool:
        if self.check_home_dir is not None:
            return self.check_home_dir
        return self.abstracted_fs in (AbstractedFS, UnixFilesystem)

    def _home_problem(self, home: str) -> str | None:
        """Why ``home`` cannot serve this session, or None; creates it if configured."""
        # Checked with the effective ids: those of the file access user.
        effective = os.access in os.supports_effective_ids

        def can(mode: int) -> bool:
            return os.access(home, mode, effective_ids=effective)

        if not os.path.isdir(home):
            if os.path.lexists(home):
                return "is not a directory"
            if not conf.CREATE_HOME_DIRS:
                return "does not exist (FTPSERVER_CREATE_HOME_DIRS is off)"
            try:
                os.makedirs(home, exist_ok=True)
            except OSError as exc:
                return f"does not exist and cannot be created: {exc.strerror or exc}"
            logger.info("FTP home directory %s created for %r", home, self.username)
        if not can(os.R_OK | os.X_OK):
            return "is not readable"
        if not can(os.W_OK):
            try:
                perms = set(self.authorizer.get_perms(self.username))
            except Exception:
                perms = set()
            if perms & self._WRITE_PERMS:
                logger.warning(
                    "FTP home directory %s of %r is not writable; its writes will fail",
                    home,
                    self.username,
                )
        return None

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        if self._checks_home():
            self.authorizer.impersonate_user(self.username, password)
            try:
                problem = self._home_problem(home)
            except Exception as exc:  # a path the OS refuses outright (NUL byte...)
                problem = f"cannot be checked: {exc}"
            finally:
                self.authorizer.terminate_impersonation(self.username)
            if problem:
                logger.error(
                    "FTP login of %r refused: home directory %s %s", self.username, home, problem
                )
                self.username = ""
                # Drop the session view the authorizer gave this login.
                self.__dict__.pop("authorizer", None)
                self.respond(self.home_unavailable_reply)
                return
        super().handle_auth_success(home, password, msg_login)
