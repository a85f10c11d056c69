"""Sending the Django signals of ``signals.py`` from an FTP session.

``SignalEmitterMixin`` does the sending; put it first in the bases of your
own handler class to get the signals there too. The guarantees, each one a
defect of django-ftpserver 1.0 fixed here:

* a signal is sent only when its operation succeeded (the FTP reply is
  checked, a failed DELE/MKD/RMD/RNTO sends nothing);
* ``path`` is the real filesystem path, converted once (pyftpdlib hands the
  ``ftp_*`` methods converted paths already); the client-visible path comes
  as ``ftp_path`` (``ftp_path_from``/``ftp_path_to`` for renames);
* a receiver that raises is logged and never changes the FTP reply;
* ``ftp_login_failed`` never carries the password;
* an upload cut off by ABOR or by a reset data connection is
  ``ftp_file_received_incomplete``, never ``ftp_file_received``;
* ``ftp_client_disconnected`` carries the username only for a client that
  logged in.

Every event is also logged on the ``django_ftpserver.handlers`` logger at
DEBUG level.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .. import dispatch, signals
from ..dispatch import signal_sender_of

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


class SignalEmitterMixin:
    """Send the signals of ``django_ftpserver.signals`` from an FTP handler.

    Put it first in the bases: ``class MyHandler(SignalEmitterMixin,
    FTPHandler)``. Signals are sent with ``sender`` set to
    ``signal_sender`` when configured (``utils.make_server`` sets it to the
    class named in the settings), else to the handler's class.
    """

    #: The ``sender`` of every signal; ``None`` means ``type(self)``.
    signal_sender: type | None = None

    # --- sending

    def _emit(self, signal: Signal, event: str, **kwargs: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            details = ", ".join(f"{key}={value}" for key, value in kwargs.items())
            logger.debug("FTP %s: %s", event, details)
        dispatch.send(signal, sender=signal_sender_of(self), handler=self, **kwargs)

    def _ftp_path(self, path: str | None) -> str | None:
        """The client-visible path of filesystem path ``path``."""
        if path is None or self.fs is None:
            return None
        try:
            return self.fs.fs2ftp(path)
        except Exception:  # a filesystem that cannot map it back
            return None

    def _succeeded(self, *codes: str) -> bool:
        return self._last_response[:3] in codes

    # --- connection and session

    def on_connect(self) -> None:
        super().on_connect()
        self._emit(
            signals.ftp_client_connected,
            "client connected",
            remote_ip=self.remote_ip,
            remote_port=self.remote_port,
        )

    def on_disconnect(self) -> None:
        username = self.username if (self.authenticated and self.username) else None
        self._emit(
            signals.ftp_client_disconnected,
            "client disconnected",
            username=username,
            remote_ip=self.remote_ip,
        )
        super().on_disconnect()

    def on_login(self, username: str) -> None:
        super().on_login(username)
        self._emit(signals.ftp_login, "login", username=username, remote_ip=self.remote_ip)

    def on_login_failed(self, username: str, password: str) -> None:
        super().on_login_failed(username, password)
        self._emit(
            signals.ftp_login_failed, "login failed", username=username, remote_ip=self.remote_ip
        )

    def on_logout(self, username: str) -> None:
        super().on_logout(username)
        self._emit(signals.ftp_logout, "logout", username=username, remote_ip=self.remote_ip)

    # --- transfers

    def _emit_transfer(self, signal: Signal, event: str, file: str) -> None:
        self._emit(
            signal,
            event,
            username=self.username,
            path=file,
            ftp_path=self._ftp_path(file),
            remote_ip=self.remote_ip,
        )

    def on_file_received(self, file: str) -> None:
        super().on_file_received(file)
        self._emit_transfer(signals.ftp_file_received, "file received", file)

    def on_file_sent(self, file: str) -> None:
        super().on_file_sent(file)
        self._emit_transfer(signals.ftp_file_sent, "file sent", file)

    def on_incomplete_file_received(self, file: str) -> None:
        super().on_incomplete_file_received(file)
        self._emit_transfer(signals.ftp_file_received_incomplete, "file received incomplete", file)

    def on_incomplete_file_sent(self, file: str) -> None:
        super().on_incomplete_file_sent(file)
        self._emit_transfer(signals.ftp_file_sent_incomplete, "file sent incomplete", file)

    # --- file operations: pyftpdlib passes filesystem paths already

    def _emit_path(self, signal: Signal, event: str, path: str) -> None:
        self._emit(
            signal,
            event,
            username=self.username,
            path=path,
            ftp_path=self._ftp_path(path),
            remote_ip=self.remote_ip,
        )

    def ftp_DELE(self, path: str) -> Any:
        self._last_response = ""
        result = super().ftp_DELE(path)
        if self._succeeded("250"):
            self._emit_path(signals.ftp_file_deleted, "file deleted", path)
        return result

    def ftp_MKD(self, path: str) -> Any:
        self._last_response = ""
        result = super().ftp_MKD(path)
        if self._succeeded("257"):
            self._emit_path(signals.ftp_directory_created, "directory created", path)
        return result

    def ftp_RMD(self, path: str) -> Any:
        self._last_response = ""
        result = super().ftp_RMD(path)
        if self._succeeded("250"):
            self._emit_path(signals.ftp_directory_deleted, "directory deleted", path)
        return result

    def ftp_RNTO(self, path: str) -> Any:
        path_from = self._rnfr
        self._last_response = ""
        result = super().ftp_RNTO(path)
        if path_from and self._succeeded("250"):
            self._emit(
                signals.ftp_file_renamed,
                "file renamed",
                username=self.username,
                path_from=path_from,
                path_to=path,
                ftp_path_from=self._ftp_path(path_from),
                ftp_path_to=self._ftp_path(path),
                remote_ip=self.remote_ip,
            )
        return result
