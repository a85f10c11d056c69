"""The FTP handlers: ``DjangoFTPHandler`` and ``DjangoTLS_FTPHandler``.

Each is pyftpdlib's handler with the app's behaviours mixed in
(``DjangoHandlerMixin``). Each behaviour lives in a module of its own under
``django_ftpserver.handler``, found by its name:

* ``handler.signalling``: the Django signals (``SignalEmitterMixin``; put it
  first in the bases of your own handler class to get the signals there);
* ``handler.replies``: the replies to bad or unusual commands;
* ``handler.commandline``: command lines that are not text, too long, or
  climbing above the home;
* ``handler.pathfacts``: MLSD/MLST facts that follow the path rules, and
  ``FEAT``;
* ``handler.loginguard``: where the lockout is enforced;
* ``handler.homes``: the home-directory check at login;
* ``handler.prechecks``: the pre-signals that may refuse an operation;
* ``handler.dataguard``: a final reply for every transfer;
* ``handler.dtp`` and ``handler.tlsdata``: the data channels;
* and, from other packages: the login loop and workers (``auth``), the
  connection limits and PROXY protocol (``connections``), the upload modes
  (``policy.uploads``).

This module stays the import path of django-ftpserver 1.0: every name it
offered before the split is still importable from here.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pyftpdlib.handlers import FTPHandler

# The imports marked noqa keep names importable from here that were before
# the split (tests/data/public_names.json).
from .auth.loginloop import LoginLoopMixin
from .auth.permissions import climbs_above_root  # noqa: F401
from .conf import conf  # noqa: F401
from .connections.limits import LoginLimitsMixin, note_refusal  # noqa: F401
from .connections.proxyprotocol import (  # noqa: F401
    ProxiedPassiveDTP,
    ProxyProtocolHandlerMixin,
    client_ip,
)
from .dispatch import signal_sender_of  # noqa: F401
from .handler.commandline import CommandLineGuardMixin
from .handler.dataguard import DataConnectionGuardMixin
from .handler.dtp import (  # noqa: F401
    DjangoDTPHandler,
    DjangoThrottledDTPHandler,
    DjangoTLS_DTPHandler,
    QuietPassiveDTP,
    ResetAwareDTPMixin,
    throttled_dtp_handler,
)
from .handler.homes import HomeDirMixin
from .handler.loginguard import LoginGuardMixin
from .handler.pathfacts import FilesystemFeaturesMixin, PathPermissionFactsMixin
from .handler.prechecks import PreSignalMixin
from .handler.replies import ClientRepliesMixin
from .handler.signalling import SignalEmitterMixin
from .policy.uploads import UploadDTPMixin, UploadMixin  # noqa: F401

logger = logging.getLogger(__name__)

try:
    from OpenSSL import SSL
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler  # noqa: F401

    from .handler.tlsdata import DataConnection  # noqa: F401

    HAS_TLS = True
except ImportError:  # pragma: no cover - pyOpenSSL is a dependency
    SSL = None
    TLS_DTPHandler = TLS_FTPHandler = None
    HAS_TLS = False


def _session_context(certs: list[Any], key: Any) -> Any:
    """A context with the server's certificate and a session id context of its own.

    Set on a connection (``set_context``) before its handshake, it binds the
    sessions made there: OpenSSL resumes them only on connections carrying
    the same context. Ticket keys stay those of the server's context.
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(certs[0])
    for extra in certs[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(key)
    context.set_session_id(os.urandom(16))
    return context


class DjangoHandlerMixin(
    LoginLoopMixin,
    ProxyProtocolHandlerMixin,
    LoginLimitsMixin,
    SignalEmitterMixin,
    ClientRepliesMixin,
    CommandLineGuardMixin,
    PathPermissionFactsMixin,
    LoginGuardMixin,
    HomeDirMixin,
    PreSignalMixin,
    UploadMixin,
    FilesystemFeaturesMixin,
    DataConnectionGuardMixin,
):
    """Everything the app adds to a pyftpdlib control handler, in order.

    The plain and the TLS handler are this on top of pyftpdlib's
    ``FTPHandler`` and ``TLS_FTPHandler``: one list of mixins, so that a
    behaviour added here reaches both.
    """

    passive_dtp = QuietPassiveDTP


class DjangoFTPHandler(DjangoHandlerMixin, FTPHandler):
    """FTP handler that sends the Django signals."""

    dtp_handler = DjangoDTPHandler


if HAS_TLS:

    class DjangoTLS_FTPHandler(DjangoHandlerMixin, TLS_FTPHandler):
        """FTPS (explicit TLS) handler that sends the Django signals.

        With ``tls_require_session_reuse`` (``FTPSERVER_TLS_REQUIRE_SESSION_REUSE``)
        a protected data connection is accepted only when it resumes the TLS
        session of its own control connection: someone else who connects to
        the passive port first (an attacker on the path, another client of
        the server) cannot take the transfer over. Each control connection
        gets a session id context of its own (a small ``SSL.Context`` sharing
        the server's certificate); OpenSSL resumes a session only within the
        context it was made in, so a session of another connection is not
        resumed and the data connection is refused with ``522``.
        """

        dtp_handler = DjangoTLS_DTPHandler

        #: Accept a protected data connection only if it resumes this session.
        tls_require_session_reuse = False
        session_reuse_refused_reply = (
            "522 Data connection refused: it must resume the TLS session of the control connection."
        )
        #: The context whose session id context binds this connection's sessions.
        session_context: Any = None

        def secure_connection(self, ssl_context: Any) -> None:
            super().secure_connection(ssl_context)
            if self.tls_require_session_reuse and isinstance(self.socket, SSL.Connection):
                self.session_context = _session_context(*self._session_material())
                self.socket.set_context(self.session_context)

        @classmethod
        def _session_material(cls) -> tuple[list[Any], Any]:
            """The certificate chain and key of ``certfile``/``keyfile``, parsed once."""
            material = cls.__dict__.get("_parsed_certificate")
            if material is None:
                from cryptography import x509
                from cryptography.hazmat.primitives.serialization import load_pem_private_key

                with open(cls.certfile, "rb") as f:
                    certs = x509.load_pem_x509_certificates(f.read())
                with open(cls.keyfile or cls.certfile, "rb") as f:
                    key = load_pem_private_key(f.read(), None)
                material = (certs, key)
                cls._parsed_certificate = material
            return material

        def ftp_AUTH(self, line: str) -> None:
            # Bytes the client sent behind ``AUTH TLS``, before the 234, were
            # read in clear with it: pyftpdlib ran them as commands, as if
            # they had come inside TLS (plain-text command injection), and
            # a pipelined ClientHello was lost, the session hanging until its
            # idle timeout. RFC 4217 has the client wait for the 234: such a
            # connection is closed, with one line in the log.
            super().ftp_AUTH(line)
            if self.ac_in_buffer and isinstance(self.socket, SSL.Connection):
                self.ac_in_buffer = b""
                logger.warning(
                    "FTP client %s:%s sent data behind AUTH TLS before the reply: closing",
                    self.remote_ip,
                    self.remote_port,
                )
                self.close()

        def ftp_PROT(self, line: str) -> None:
            # pyftpdlib accepts PROT C even when it will refuse every clear
            # data connection; say so at once (RFC 4217: 534, policy).
            if (
                line.strip().upper() == "C"
                and self.tls_data_required
                and self._ssl_established
                and self._pbsz
            ):
                self.respond("534 PROT C refused: TLS is required on the data channel.")
                return
            super().ftp_PROT(line)

else:  # pragma: no cover
    DjangoTLS_FTPHandler = None
