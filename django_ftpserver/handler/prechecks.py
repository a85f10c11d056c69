"""The handler side of the pre-operation signals (``ftp_pre_*``).

``PreSignalMixin`` asks the receivers (see ``policy.presignals``) before the
operation runs, after pyftpdlib's own permission check: a refused command
gets ``550 reason`` and changes nothing, and since the reply is not the
success reply, no after-signal is sent for it either.

The login is asked after the password was verified and before anything of
the login happens (no ``last_login`` written, no 230, no ``ftp_login``).
With the app's authorizer that is on a login worker, where database access
is expected; logins are then not sent to the fast lane, whose single
thread a slow receiver would hold up for every cached login.

A signal without receivers costs one attribute read per command.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from pyftpdlib.authorizers import AuthenticationFailed, AuthorizerError
from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.utils import strerror

from .. import signals
from ..dispatch import signal_sender_of
from ..policy import presignals as policy
from ..policy.presignals import Refusal

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.prechecks")


class PreSignalMixin:
    """Send the ``ftp_pre_*`` signals from a pyftpdlib control handler; obey refusals."""

    # --- asking

    def _ask(self, signal: Any, **kwargs: Any) -> Refusal | None:
        try:
            policy.ask(
                signal,
                signal_sender_of(self),
                handler=self,
                username=self.username,
                remote_ip=self.remote_ip,
                **kwargs,
            )
        except Refusal as refusal:
            return refusal
        return None

    def _client_path(self, path: str) -> str | None:
        try:
            return self.fs.fs2ftp(path)
        except Exception:
            return None

    def _ask_path(self, signal: Any, path: str, **kwargs: Any) -> Refusal | None:
        return self._ask(signal, path=path, ftp_path=self._client_path(path), **kwargs)

    def _refuse(self, refusal: Refusal, what: str, path: Any = None) -> None:
        logger.info(
            "FTP %s of %r from %s refused%s: %s",
            what,
            self.username,
            self.remote_ip,
            f" ({path})" if path else "",
            refusal.reason,
        )
        self.respond(f"550 {refusal.reason}")

    # --- login

    def ftp_PASS(self, line: str) -> Any:
        if (
            self.authenticated
            or not self.username
            or not policy.has_receivers(signals.ftp_pre_login)
        ):
            return super().ftp_PASS(line)
        # pyftpdlib's ftp_PASS, with the receivers asked between the
        # password check and the welcome (which records the login).
        try:
            self.authorizer.validate_authentication(self.username, line, self)
            home = self.authorizer.get_home_dir(self.username)
        except (AuthenticationFailed, AuthorizerError) as err:
            self.handle_auth_failed(str(err), line)
            return None
        refusal = self._ask(signals.ftp_pre_login)
        if refusal is not None:
            # The password was right: not a failed login for the lockout.
            logger.info(
                "FTP login of %r from %s refused: %s",
                self.username,
                self.remote_ip,
                refusal.reason,
            )
            self.username = ""
            self.__dict__.pop("authorizer", None)  # the session view of this login
            self.respond(f"530 {refusal.reason}")
            return None
        try:
            msg_login = self.authorizer.get_msg_login(self.username)
        except (AuthenticationFailed, AuthorizerError) as err:
            self.handle_auth_failed(str(err), line)
            return None
        self.handle_auth_success(home, line, msg_login)
        return None

    # --- transfers

    def ftp_RETR(self, file: str) -> Any:
        if policy.has_receivers(signals.ftp_pre_download):
            refusal = self._ask_path(signals.ftp_pre_download, file, offset=self._restart_position)
            if refusal is not None:
                self._restart_position = 0
                self._refuse(refusal, "download", file)
                return None
        return super().ftp_RETR(file)

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        # APPE comes here too, with mode "a".
        if policy.has_receivers(signals.ftp_pre_upload):
            refusal = self._ask_path(
                signals.ftp_pre_upload,
                file,
                mode="APPE" if "a" in mode else "STOR",
                offset=self._restart_position,
            )
            if refusal is not None:
                self._restart_position = 0
                self._refuse(refusal, "upload", file)
                return None
        return super().ftp_STOR(file, mode)

    def ftp_STOU(self, line: str) -> Any:
        if self._restart_position or not policy.has_receivers(signals.ftp_pre_upload):
            return super().ftp_STOU(line)
        # pyftpdlib's ftp_STOU, asking once the unique name is known: the
        # file exists (empty) from mkstemp on, and is removed if refused.
        if line:
            basedir, prefix = os.path.split(self.fs.ftp2fs(line))
            prefix += "."
        else:
            basedir = self.fs.ftp2fs(self.fs.cwd)
            prefix = "ftpd."
        try:
            fd = self.run_as_current_user(self.fs.mkstemp, prefix=prefix, dir=basedir)
        except (OSError, FilesystemError) as err:
            if getattr(err, "errno", -1) == errno.EEXIST:
                why = "No usable unique file name found"
            else:
                why = strerror(err)
            self.respond(f"450 {why}.")
            return None

        def discard() -> None:
            try:
                fd.close()
                self.run_as_current_user(self.fs.remove, fd.name)
            except (OSError, FilesystemError):
                pass

        try:
            if not self.authorizer.has_perm(self.username, "w", fd.name):
                discard()
                self.respond("550 Not enough privileges.")
                return None
            refusal = self._ask_path(signals.ftp_pre_upload, fd.name, mode="STOU", offset=0)
            if refusal is not None:
                discard()
                self._refuse(refusal, "upload", fd.name)
                return None
            filename = os.path.basename(fd.name)
            if self.data_channel is not None:
                self.respond(f"125 FILE: {filename}")
                self.data_channel.file_obj = fd
                self.data_channel.enable_receiving(self._current_type, "STOU")
            else:
                self.respond(f"150 FILE: {filename}")
                self._in_dtp_queue = (fd, "STOU")
            return filename
        except Exception:
            fd.close()
            raise

    # --- file operations

    def ftp_DELE(self, path: str) -> Any:
        if policy.has_receivers(signals.ftp_pre_delete):
            refusal = self._ask_path(signals.ftp_pre_delete, path)
            if refusal is not None:
                self._refuse(refusal, "delete", path)
                return None
        return super().ftp_DELE(path)

    def ftp_MKD(self, path: str) -> Any:
        if policy.has_receivers(signals.ftp_pre_mkdir):
            refusal = self._ask_path(signals.ftp_pre_mkdir, path)
            if refusal is not None:
                self._refuse(refusal, "mkdir", path)
                return None
        return super().ftp_MKD(path)

    def ftp_RMD(self, path: str) -> Any:
        if policy.has_receivers(signals.ftp_pre_rmdir):
            refusal = self._ask_path(signals.ftp_pre_rmdir, path)
            if refusal is not None:
                self._refuse(refusal, "rmdir", path)
                return None
        return super().ftp_RMD(path)

    def ftp_RNTO(self, path: str) -> Any:
        path_from = self._rnfr
        if path_from and policy.has_receivers(signals.ftp_pre_rename):
            refusal = self._ask(
                signals.ftp_pre_rename,
                path_from=path_from,
                path_to=path,
                ftp_path_from=self._client_path(path_from),
                ftp_path_to=self._client_path(path),
            )
            if refusal is not None:
                self._rnfr = None
                self._refuse(refusal, "rename", f"{path_from} -> {path}")
                return None
        return super().ftp_RNTO(path)
