"""pyftpdlib handlers that send the Django signals of ``signals.py``.

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

Every event is also logged on this module's logger at DEBUG level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from django.dispatch import Signal
from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS, UnixFilesystem
from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler
from pyftpdlib.handlers.ftp.producers import BufferedIteratorProducer
from pyftpdlib.ioloop import _ERRNOS_DISCONNECTED
from pyftpdlib.utils import strerror

from . import dispatch, signals
from .auth import lockout
from .auth.loginloop import LoginLoopMixin
from .auth.permissions import climbs_above_root
from .conf import conf
from .connections.limits import LoginLimitsMixin, note_refusal
from .connections.proxyprotocol import ProxiedPassiveDTP, ProxyProtocolHandlerMixin, client_ip
from .dispatch import signal_sender_of
from .handler.prechecks import PreSignalMixin
from .handler.replies import ClientRepliesMixin
from .policy.uploads import UploadDTPMixin, UploadMixin

logger = logging.getLogger(__name__)

try:
    from OpenSSL import SSL
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

    from .handler.tlsdata import DataConnection

    HAS_TLS = True
except ImportError:  # pragma: no cover - pyOpenSSL is a dependency
    SSL = None
    TLS_DTPHandler = TLS_FTPHandler = None
    HAS_TLS = False


def _connection_was_reset(channel: Any) -> bool:
    """Tell whether the peer reset ``channel``'s connection.

    pyftpdlib turns a reset into ``handle_close()``, called from inside the
    ``except`` block that caught the error, exactly as it does for a clean
    end of file. The error being handled tells the two apart; a pending
    socket error covers a reset that the poller reported without a read.
    """
    error = sys.exc_info()[1]
    if SSL is not None and isinstance(error, SSL.ZeroReturnError):
        # A TLS close_notify: the peer ended the stream on purpose. A reset
        # may follow it (a client closing with unread session tickets).
        return False
    if isinstance(error, OSError) and error.errno in _ERRNOS_DISCONNECTED:
        return True
    if SSL is not None and isinstance(error, SSL.SysCallError):
        return bool(error.args) and error.args[0] in _ERRNOS_DISCONNECTED
    if getattr(channel.socket, "peer_reset", False):  # seen by a read that returned data
        return True
    try:
        return channel.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
    except (OSError, AttributeError):
        return False


def _session_reused(connection: Any) -> bool:
    """Whether the TLS ``connection`` resumed a session instead of making a new one."""
    if SSL is None or not isinstance(connection, SSL.Connection):
        return False
    return bool(SSL._lib.SSL_session_reused(connection._ssl))


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


class ResetAwareDTPMixin:
    """Data channel mixin: an upload whose connection was reset is incomplete.

    In stream mode the end of an upload is the client closing the data
    connection. pyftpdlib cannot tell that from a client that crashed, whose
    kernel resets the connection, and reports both as a complete file.
    """

    def __init__(self, sock: Any, cmd_channel: Any) -> None:
        super().__init__(sock, cmd_channel)
        if not self.connected:
            # Reset between the kernel's accept and ours: pyftpdlib drops
            # the channel and the transfer waiting for it is never answered.
            lost = getattr(cmd_channel, "data_connection_lost", None)
            if lost is not None:
                lost()

    def handle_close(self) -> None:
        if self.receive and not self._closed and _connection_was_reset(self):
            self.transfer_finished = False
            self._resp = ("426 Connection reset by peer; transfer aborted.", logger.info)
            self.close()
            return
        super().handle_close()


class DjangoDTPHandler(ResetAwareDTPMixin, UploadDTPMixin, DTPHandler):
    """Plain data channel of ``DjangoFTPHandler``.

    Reads and ``sendfile()``s 256 KB at a time instead of pyftpdlib's 64 KB:
    a quarter of the loop turns per byte. On loopback, STOR went from par
    to 1.5 times bare pyftpdlib's throughput, RETR from 0.9 to 1.2.
    """

    ac_in_buffer_size = 262144
    ac_out_buffer_size = 262144


class QuietPassiveDTP(ProxiedPassiveDTP):
    """Passive data listener that refuses foreign addresses without a word to the session.

    pyftpdlib refuses a data connection from an address other than the
    client's (RFC 2577: someone else racing for the passive port), but
    answers it with an unrequested ``425`` on the client's control
    connection, which shifts every reply the client gets after it by one.
    Here the intruder's connection is closed, the listener keeps waiting
    for the client, and a warning is logged (at most once a minute).
    Behind a trusted proxy, the address compared is the one its PROXY
    header names (``ProxiedPassiveDTP``).
    """

    def handle_accepted(self, sock: Any, addr: Any) -> None:
        if getattr(self.cmd_channel.server, "proxy_protocol", None):
            super().handle_accepted(sock, addr)  # a trusted proxy's header first
        else:
            self._check_and_accept(sock, addr)

    def _check_and_accept(self, sock: Any, addr: Any) -> None:
        channel = self.cmd_channel
        if (
            channel.connected
            and not channel.permit_foreign_addresses
            and client_ip(addr[0]) != client_ip(channel.remote_ip)
        ):
            with contextlib.suppress(OSError):
                sock.close()
            note_refusal(
                channel.server,
                "foreign_data_connection",
                "FTP data connection from %s:%s refused: the session's client is %s",
                addr[0],
                addr[1],
                channel.remote_ip,
            )
            return
        super()._check_and_accept(sock, addr)


class DjangoThrottledDTPHandler(ResetAwareDTPMixin, UploadDTPMixin, ThrottledDTPHandler):
    """Bandwidth-limited data channel (``read_limit``/``write_limit``)."""


def throttled_dtp_handler(base: type, read_limit: int = 0, write_limit: int = 0) -> type:
    """A subclass of data channel ``base`` limited to so many bytes per second.

    ``read_limit`` applies to uploads, ``write_limit`` to downloads, each per
    transfer; 0 means no limit. A ``base`` that is not throttled yet (the
    plain or TLS data channel) gets pyftpdlib's throttling mixed in above it.
    """
    bases = (base,) if issubclass(base, ThrottledDTPHandler) else (DjangoThrottledDTPHandler, base)
    attrs: dict[str, Any] = {"read_limit": int(read_limit), "write_limit": int(write_limit)}
    # pyftpdlib sleeps once a second's worth went through; a read or write
    # buffer larger than that lets a whole small file through in one go.
    if read_limit:
        attrs["ac_in_buffer_size"] = max(1, min(base.ac_in_buffer_size, int(read_limit)))
    if write_limit:
        attrs["ac_out_buffer_size"] = max(1, min(base.ac_out_buffer_size, int(write_limit)))
    throttled = type(f"Throttled{base.__name__}", bases, attrs)
    throttled.__module__ = base.__module__
    return throttled


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


class CommandLineGuardMixin:
    """Refuse command lines that are not text, instead of guessing.

    pyftpdlib decodes with ``errors="replace"``: an invalid UTF-8 name
    becomes U+FFFD and ``MKD \\xff`` creates a directory nobody asked for;
    a NUL byte reaches ``os`` calls, raises ``ValueError`` and drops the
    session; a bare CR or LF inside a line ends up in file names and logs.
    Here all of them get ``501`` and the session goes on.

    A path that climbs above the home (``RETR ../../etc/passwd``,
    ``CWD /..``) gets ``550``; pyftpdlib would clamp it to the home and
    serve, or overwrite, a file the client did not name.

    pyftpdlib also answers ``500 Command too long.`` every 2048 bytes of an
    over-long line and then runs its tail as a command: here an over-long
    line gets one ``500`` and is discarded up to its end.
    """

    #: Longest command line accepted, in bytes (pyftpdlib's own limit).
    max_command_length = 2048

    _discarding_line = False

    def collect_incoming_data(self, data: bytes) -> None:
        if self._discarding_line:
            return
        self._in_buffer.append(data)
        self._in_buffer_len += len(data)
        if self._in_buffer_len > self.max_command_length:
            self._in_buffer = []
            self._in_buffer_len = 0
            self._discarding_line = True

    def found_terminator(self) -> None:
        if self._discarding_line:
            self._discarding_line = False
            self.respond_w_warning("500 Command too long.")
            return
        line = b"".join(self._in_buffer)
        problem = None
        if b"\x00" in line:
            problem = "501 NUL byte in command."
        elif b"\n" in line or b"\r" in line:  # log injection, smuggled commands
            problem = "501 Line break inside the command."
        else:
            try:
                line.decode(self.encoding)
            except UnicodeDecodeError:
                problem = "501 Command is not valid UTF-8."
        if problem is not None:
            self._in_buffer = []
            self._in_buffer_len = 0
            self.respond_w_warning(problem)
            return
        super().found_terminator()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
        if self.authenticated and self.fs is not None:
            name, path = cmd, arg
            if cmd == "SITE" and arg:
                name = f"SITE {arg.split(' ')[0].upper()}"
                path = line[len(name) + 1 :]
            if name in ("SITE CHMOD", "MFMT"):
                path = path.split(" ", 1)[1] if " " in path else ""
            elif name in ("CDUP", "XCUP"):
                path = ".."
            spec = self.proto_cmds.get(name)
            if spec and spec["perm"] and path and climbs_above_root(self.fs.cwd, path):
                self.respond_w_warning("550 Path goes above the home directory.")
                return None
        return super().pre_process_command(line, cmd, arg)


class PathPermissionFactsMixin:
    """MLSD/MLST ``perm`` facts that follow the account's path rules.

    pyftpdlib computes the facts from the account's one permission string;
    with path rules, each entry gets the letters of its own path, so a
    client shows ``/reports`` as read-only. Without rules (or with another
    authorizer) pyftpdlib's own code runs.
    """

    def _perms_for(self) -> Any:
        perms_for = getattr(self.authorizer, "perms_for", None)
        snapshot = getattr(self.authorizer, "snapshot", None)
        if perms_for is None or snapshot is None or not snapshot.rules:
            return None
        return perms_for

    def ftp_MLSD(self, path: str) -> Any:
        perms_for = self._perms_for()
        if perms_for is None:
            return super().ftp_MLSD(path)
        # ClientRepliesMixin answered a path that is not a directory.
        try:
            listing = self.run_as_current_user(self.fs.listdir, path)
        except (OSError, FilesystemError) as err:
            self.respond(f"550 {strerror(err)}.")
            return None
        facts = self._current_facts

        def lines() -> Iterator[bytes]:
            for name in listing:
                perms = perms_for(os.path.join(path, name))
                yield from self.fs.format_mlsx(path, [name], perms, facts)

        self.push_dtp_data(BufferedIteratorProducer(lines()), isproducer=True, cmd="MLSD")
        return path

    def ftp_MLST(self, path: str) -> Any:
        perms_for = self._perms_for()
        if perms_for is None:
            return super().ftp_MLST(path)
        line = self.fs.fs2ftp(path)
        basedir, basename = os.path.split(path)
        try:
            data = b"".join(
                self.run_as_current_user(
                    self.fs.format_mlsx,
                    basedir,
                    [basename],
                    perms_for(path),
                    self._current_facts,
                    ignore_err=False,
                )
            )
        except (OSError, FilesystemError) as err:
            self.respond(f"550 {strerror(err)}.")
            return None
        text = data.decode(self.encoding, self.unicode_errors)
        self.push(f'250-Listing "{line}":\r\n')
        self.push(" " + text.split(" ")[0] + f" {line}\r\n")
        self.respond("250 End MLST.")
        return path


class LoginGuardMixin:
    """Brute-force protection at login.

    * A client whose address is locked out (``lockout.py``) is refused at
      ``PASS`` before its password is looked at, so guessing costs the
      server no hashing, and is disconnected.
    * A refused password counts against the address at once. pyftpdlib
      calls ``on_login_failed`` only after ``auth_failed_timeout`` (3 s),
      and not at all when the server stops meanwhile, so counting there
      would let a client skip the count by making the server wait.
    * ``max_login_attempts`` holds for pipelined commands. pyftpdlib counts
      a connection's attempts in that delayed callback too, while it goes
      on reading the commands already received: a client sending many
      ``USER``/``PASS`` pairs in one go had every password checked. Here a
      connection's failures count at once, and a ``PASS`` past the limit is
      refused unchecked.

    A lockout cache that fails is logged and lets the login go on: an
    unreachable cache must not lock every user out.
    """

    locked_out_reply = "530 Too many failed logins from your address; try again later."
    too_many_attempts_reply = "530 Too many failed logins on this connection."

    #: Failed logins on this connection, counted when they happen.
    _failed_logins = 0
    #: The failures of this username from this address, as the last PASS found them.
    _own_failures: int | None = None

    def _lockout_call(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except Exception:
            logger.exception("FTP lockout cache failed; login checks go on without it")
            return None

    def ftp_PASS(self, line: str) -> Any:
        if self.authenticated or not self.username:
            return super().ftp_PASS(line)  # pyftpdlib's 503 replies
        if self._failed_logins >= self.max_login_attempts:
            self.username = ""
            self.respond(self.too_many_attempts_reply)
            return None  # the pending failure's callback disconnects
        state = self._lockout_call(lockout.check, self.remote_ip, self.username)
        self._own_failures = state[1] if state else None
        if state and state[0]:
            logger.info(
                "FTP login of %r from %s refused: address locked out", self.username, self.remote_ip
            )
            self.username = ""
            self.respond(self.locked_out_reply)
            self.close_when_done()
            return None
        return super().ftp_PASS(line)

    def handle_auth_failed(self, msg: str, password: str) -> None:
        username = self.username
        self._failed_logins += 1
        super().handle_auth_failed(msg, password)
        locked = self._lockout_call(lockout.record_failure, self.remote_ip, username)
        if locked is not None:
            logger.warning(
                "FTP address %s locked out for %d s after %d failed logins (last as %r)",
                locked.address,
                round(locked.until - locked.locked_at),
                locked.failures,
                username,
            )
            self._emit(
                signals.ftp_client_locked_out,
                "client locked out",
                remote_ip=self.remote_ip,
                username=username,
            )

    def add_channel(self, map: Any = None, events: Any = None) -> None:
        # pyftpdlib's delayed reply to a failed login re-registers the
        # socket first and only then checks whether the session was closed
        # meanwhile: a client that sent ``PASS wrong`` and ``QUIT`` in one
        # packet got its session closed before the reply was due, and the
        # callback raised EBADF (a traceback in the log), or worse,
        # registered a descriptor number the kernel had given to another
        # connection since. A closed session registers nothing; the rest of
        # the callback (no reply, ``ftp_login_failed``) still runs.
        if self._closed:
            return
        super().add_channel(map, events)

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        # Before the 230 goes out. The password was right even if the login
        # is refused further on (home directory): the typos stop counting.
        self._lockout_call(
            lockout.record_success, self.remote_ip, self.username, self._own_failures
        )
        self._failed_logins = 0
        super().handle_auth_success(home, password, msg_login)


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


class FilesystemFeaturesMixin:
    """``FEAT`` lists ``MFMT`` only where the session's filesystem can set times.

    Object storages cannot (S3 sets an object's time itself): a client that
    sees ``MFMT`` advertised sets the time after every upload and takes the
    ``550`` as a failed upload (rclone does). Before login the filesystem is
    not known yet and pyftpdlib's list is kept.
    """

    def ftp_FEAT(self, line: str) -> Any:
        if getattr(self.fs, "can_set_times", True):
            return super().ftp_FEAT(line)
        self.proto_cmds = {k: v for k, v in type(self).proto_cmds.items() if k != "MFMT"}
        try:
            return super().ftp_FEAT(line)
        finally:
            del self.proto_cmds


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
            if upload is not None and upload.file is file:  # see uploads.UploadMixin
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

    class DjangoTLS_DTPHandler(TLS_DTPHandler, DjangoDTPHandler):
        """TLS data channel; the reset check sits below the TLS layer.

        Sending waits for the TLS handshake, and empty chunks are never sent.
        pyftpdlib starts sending as soon as data is queued: an empty listing
        becomes an empty ``SSL_write`` in the middle of the handshake, which
        OpenSSL reports as an unexpected EOF, and the channel is closed
        without a TLS shutdown (ftplib: "shutdown while in init"; the busier
        the machine, the more often). Here the queued data goes out once the
        handshake has completed, then a clean TLS shutdown follows; while
        waiting, the channel polls for reading only, instead of spinning on
        a socket that is always writable.
        """

        def secure_connection(self, ssl_context: Any) -> None:
            # pyftpdlib's, with ``tlsdata.DataConnection`` instead of an
            # ``SSL.Connection`` on the socket: see there why.
            if self._closed:  # reset before it was served (see __init__)
                return
            self._ssl_requested = True
            try:
                self.socket = DataConnection(ssl_context, self.socket)
            except OSError:  # the client connected and left at once
                self.close()
                return
            session_context = getattr(self.cmd_channel, "session_context", None)
            if session_context is not None:
                self.socket.set_context(session_context)
            self.socket.set_accept_state()
            self._ssl_accepting = True

        def _refuse_fresh_session(self) -> None:
            reply = self.cmd_channel.session_reuse_refused_reply
            self.cmd_channel.log(
                "data connection refused: it did not resume the control connection's TLS session",
                logfun=logger.warning,
            )
            if self._initialized:
                self.transfer_finished = False
                self._resp = (reply, logger.info)
            else:  # no command yet: its reply will say it
                self.cmd_channel._data_refusal = reply
            self._error = True  # no TLS shutdown: nothing more goes to this peer
            self.close()

        def close(self) -> None:
            if not self._closed and self._ssl_accepting and self._initialized and not self._resp:
                # The connection failed inside the handshake (reset, or
                # closed): pyftpdlib closes without a word, and the transfer
                # command it had answered with 125/150 would wait for good.
                self.transfer_finished = False
                self._resp = (
                    "426 Data connection lost during the TLS handshake; transfer aborted.",
                    logger.info,
                )
            super().close()

        def handle_read_event(self) -> None:
            super().handle_read_event()
            sock = self.socket
            if getattr(sock, "close_notify_pending", False) and not self._closed:
                # Read with the last data: no further event will tell.
                sock.close_notify_pending = False
                self.handle_close()

        def initiate_send(self) -> None:
            if self._ssl_accepting:
                self._wanted_io_events = self.ioloop.READ
                self.modify_ioloop_events(self.ioloop.READ)
                return  # handle_ssl_established() sends
            fifo = self.producer_fifo
            while fifo and isinstance(fifo[0], bytes) and not fifo[0]:
                fifo.popleft()
            super().initiate_send()

        def handle_ssl_established(self) -> None:
            required = getattr(self.cmd_channel, "tls_require_session_reuse", False)
            if required and not _session_reused(self.socket):
                self._refuse_fresh_session()
                return
            super().handle_ssl_established()
            if self.producer_fifo:
                self._wanted_io_events = self.ioloop.WRITE
                self.modify_ioloop_events(self.ioloop.WRITE)
                self.initiate_send()

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
    DjangoTLS_DTPHandler = None
    DjangoTLS_FTPHandler = None
