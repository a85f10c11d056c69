"""Every transfer gets a final reply, however early its data connection fails.

A queued transfer whose data connection was reset before pyftpdlib could
serve it, or that has no data connection to wait for, is answered here;
see ``DataConnectionGuardMixin``.
"""

from __future__ import annotations

import logging
from typing import Any

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


class DataConnectionGuardMixin:
    """Every transfer gets a final reply, however early its data connection fails.

    pyftpdlib answers a transfer command with ``150`` and queues the
    transfer until the data connection is there. If that connection is reset
    before pyftpdlib could serve it (a client crashing right after
    connecting, or after sending its first bytes), pyftpdlib drops it, and
    the queued transfer waits for good: no reply, no signal, until the idle
    timeout. Here it is answered ``426`` and reported incomplete at once. A
    transfer queued with no data connection to wait for (none open, no
    ``PASV`` or ``PORT`` pending: the one it had was reset before the
    command came) is answered ``425`` at once.
    """

    data_lost_reply = "426 Data connection reset by peer; transfer aborted."
    #: A reply for the next transfer, from a data connection refused before it came.
    _data_refusal: str | None = None
    no_data_connection_reply = "425 No data connection: send PASV or PORT first."

    def _data_connection_pending(self) -> bool:
        if self.data_channel is not None:
            return True
        return any(
            waiting is not None and not waiting._closed
            for waiting in (self._dtp_acceptor, self._dtp_connector)
        )

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        super().process_command(cmd, *args, **kwargs)
        queued = getattr(self, "_in_dtp_queue", None) or getattr(self, "_out_dtp_queue", None)
        if queued is not None and not self._closed and not self._data_connection_pending():
            reply, self._data_refusal = self._data_refusal, None
            self._fail_queued_transfer(reply or self.no_data_connection_reply)

    def data_connection_lost(self) -> None:
        """The data connection was reset before it could be served."""
        self._dtp_acceptor = None  # closed already: no other connection comes
        self._fail_queued_transfer(self.data_lost_reply)

    def _fail_queued_transfer(self, reply: str) -> None:
        if self._in_dtp_queue is not None:
            file, cmd = self._in_dtp_queue
            self._in_dtp_queue = None
            file.close()
            name = file.name
            upload = getattr(self, "_upload", None)
            if upload is not None and upload.file is file:  # see policy.uploads.UploadMixin
                self.finish_upload(upload, False)
                name = upload.target
            self.respond(reply, logfun=logger.info)
            self.log_transfer(cmd, name, True, False, 0.0, 0)
            self.on_incomplete_file_received(name)
        elif self._out_dtp_queue is not None:
            _data, _isproducer, file, cmd = self._out_dtp_queue
            self._out_dtp_queue = None
            self.respond(reply, logfun=logger.info)
            if file is not None:
                file.close()
                self.log_transfer(cmd, file.name, False, False, 0.0, 0)
                self.on_incomplete_file_sent(file.name)
