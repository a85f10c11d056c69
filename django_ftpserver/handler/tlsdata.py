"""The TLS transport of FTPS data connections.

Why data connections do not run OpenSSL on the socket directly: TLS 1.3
servers send their session tickets *after* the handshake, as the first
records of the connection. A client that only uploads never reads its data
connection, so the tickets stay unread in its socket; when it closes the
socket, the kernel sees unread data and resets the connection instead of
closing it, which throws away whatever the client had not sent yet. Go's
``crypto/tls`` (rclone, every Go FTP client) does exactly that: with TLS 1.3,
most of rclone's FTPS uploads arrived truncated. TLS 1.2 sends its tickets
inside the handshake, which the client reads; it is not affected.

OpenSSL can be told to send no tickets (``SSL_set_num_tickets``), but
pyOpenSSL does not expose that call, and the tickets are needed anyway by a
client that downloads and resumes its sessions. So the server keeps them:
``DataConnection`` runs OpenSSL over memory buffers and holds back the bytes
the end of a TLS 1.3 handshake produces (the tickets) until the server
sends something else on that connection (file data, a listing, its
``close_notify``). They then go out first, in order. An upload is answered
with nothing before its end, so the client's socket is empty when it closes,
and the close is a clean one.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

from OpenSSL import SSL

#: Ciphertext read from the socket at most at once, besides a read's own size.
_READ_SIZE = 262144
#: Ciphertext taken from OpenSSL at most at once, to send.
_WRITE_SIZE = 262144

#: The header of a TLS record: type, version, length (2 bytes).
_HEADER_SIZE = 5

_ffi = SSL._ffi
_lib = SSL._lib


def _syscall_error(exc: OSError) -> SSL.SysCallError:
    """The ``SysCallError`` pyOpenSSL raises for ``exc`` on a socket of its own."""
    code = exc.errno or -1
    return SSL.SysCallError(code, errno.errorcode.get(code, str(exc)))


class DataConnection(SSL.Connection):
    """A server-side ``SSL.Connection`` over ``sock`` that holds back TLS 1.3 tickets.

    It behaves as ``SSL.Connection(context, sock)`` does for pyftpdlib's
    non-blocking TLS code (the same methods, the same exceptions for
    "retry", for a closed or reset peer), but OpenSSL reads and writes
    memory buffers that this class moves to and from the socket.
    """

    def __init__(self, context: SSL.Context, sock: socket.socket) -> None:
        super().__init__(context, None)
        self._sock = sock
        # Ciphertext the socket did not take yet: the released tickets,
        # then ``_out_view[_out_start:_out_end]`` (see ``_flush``).
        self._prefix = bytearray()
        self._out_buffer: Any = None
        self._out_view = memoryview(b"")
        self._out_start = self._out_end = 0
        self._held = b""  # the session tickets, until something else is sent
        self._sock_error: OSError | None = None
        self._sock_eof = False
        self._record = bytearray()  # a handshake record read in part
        #: The peer's close_notify came in a read that returned data too:
        #: the socket may stay silent now, so the caller must act on it.
        self.close_notify_pending = False

    def __getattr__(self, name: str) -> Any:
        # Socket methods (getsockopt, getpeername...) are the socket's.
        if name == "_sock":
            raise AttributeError(name)
        return getattr(self._sock, name)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def sock_shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    @property
    def peer_reset(self) -> bool:
        """Whether reading the socket failed (a reset, usually).

        The socket reports its error once; this remembers it for a read
        that had data to return first.
        """
        return self._sock_error is not None

    @property
    def tickets_held(self) -> bool:
        """Whether session tickets still wait for the first thing sent."""
        return bool(self._held)

    # --- moving bytes between OpenSSL and the socket

    def _recv(self, limit: int) -> bytes | None:
        """Up to ``limit`` bytes from the socket; None when it has none now or ever.

        The end of the stream and a socket error are remembered (the
        socket reports each once) for :meth:`_raise_socket_state`, and no
        read is tried after either.
        """
        if self._sock_eof or self._sock_error is not None:
            return None
        try:
            data = self._sock.recv(limit)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._sock_error = exc
            return None
        if not data:
            self._sock_eof = True
            return None
        return data

    def _fill(self, limit: int) -> bool:
        """Give OpenSSL what the socket has (up to ``limit`` bytes); True if any."""
        data = self._recv(limit)
        if data is None:
            return False
        self.bio_write(data)
        return True

    def _fill_record(self) -> bool:
        """Give OpenSSL the socket's next TLS record, and nothing after it; True if any.

        For the handshake. A client may send its first data, even its
        ``close_notify``, right behind its last handshake record (ftplib's
        short uploads do), so they can all wait in the socket at once. Read
        in one go, the records after the handshake would sit in OpenSSL's
        memory buffer with nothing left in the socket to wake the poller:
        the upload would never be read, the client would wait for the
        server's ``close_notify``, and the STOR would never be answered.
        Read record by record (as OpenSSL reads a socket of its own), the
        handshake ends with the rest still in the socket, readable.
        """
        record = self._record
        if len(record) < _HEADER_SIZE:
            want = _HEADER_SIZE - len(record)
        else:
            want = _HEADER_SIZE + int.from_bytes(record[3:5], "big") - len(record)
        data = self._recv(want)
        if data is None:
            return False
        record += data
        if len(record) < _HEADER_SIZE:
            return True
        complete = len(record) == _HEADER_SIZE + int.from_bytes(record[3:5], "big")
        if complete or record[0] & 0x80:  # (or no TLS record: OpenSSL's to refuse)
            self.bio_write(bytes(record))
            record.clear()
        return True

    def _flush(self) -> bool:
        """Send what OpenSSL wrote; True when all of it went. Raises for a gone peer.

        The hot path of a download: OpenSSL's ciphertext is read into one
        buffer the connection keeps (no bytes object per chunk, no queue
        to append to and cut from) and sent from a view of it, up to 256 KB
        at a time, like the plain data channel's ``sendfile()``.
        """
        sock = self._sock
        try:
            while True:
                if self._prefix:  # the tickets, released: they go first
                    sent = sock.send(self._prefix)
                    del self._prefix[:sent]
                    if self._prefix:
                        return False
                if self._out_start < self._out_end:
                    self._out_start += sock.send(self._out_view[self._out_start : self._out_end])
                    if self._out_start < self._out_end:
                        return False
                if self._out_buffer is None:
                    self._out_buffer = _ffi.new("char[]", _WRITE_SIZE)
                    self._out_view = memoryview(_ffi.buffer(self._out_buffer))
                count = _lib.BIO_read(self._from_ssl, self._out_buffer, _WRITE_SIZE)
                if count <= 0:  # nothing more (a memory BIO has no other failure)
                    return True
                if self._held:
                    self._prefix += self._held
                    self._held = b""
                self._out_start, self._out_end = 0, count
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise _syscall_error(exc) from exc

    def _raise_socket_state(self) -> None:
        """Raise what pyOpenSSL would for a socket that ended or failed."""
        if self._sock_error is not None:
            raise _syscall_error(self._sock_error)
        if self._sock_eof:
            raise SSL.SysCallError(-1, "Unexpected EOF")

    # --- what pyftpdlib calls

    def do_handshake(self) -> None:
        if not self._flush():
            raise SSL.WantWriteError()
        while True:
            try:
                super().do_handshake()
            except SSL.WantReadError:
                if not self._flush():
                    raise SSL.WantWriteError() from None
                if self._fill_record():
                    continue
                self._raise_socket_state()
                raise
            except SSL.Error:
                with contextlib.suppress(SSL.Error):  # the alert, for the client
                    self._flush()
                raise
            break
        if self.get_protocol_version_name() == "TLSv1.3":
            # All that the last step wrote: the session tickets.
            tickets = bytearray()
            while True:
                try:
                    chunk = self.bio_read(_READ_SIZE)
                except SSL.WantReadError:
                    break
                if not chunk:
                    break
                tickets += chunk
            self._held = bytes(tickets)
        else:
            self._flush()

    def recv(self, bufsiz: int, flags: int | None = None) -> bytes:
        # Everything OpenSSL can decrypt is returned, so nothing waits in
        # memory while the poller sleeps on an empty socket; the socket is
        # read for about ``bufsiz`` bytes per call.
        if flags is not None and flags & socket.MSG_PEEK:
            return super().recv(bufsiz, flags)
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                data = super().recv(bufsiz)
            except SSL.WantReadError:
                self._flush_quietly()  # a reply OpenSSL owes (key update)
                if total < bufsiz and self._fill(bufsiz):
                    continue
                if chunks:
                    break
                self._raise_socket_state()
                raise
            except SSL.ZeroReturnError:
                if chunks:
                    self.close_notify_pending = True
                    break
                raise
            chunks.append(data)
            total += len(data)
        return b"".join(chunks)

    read = recv

    def _flush_quietly(self) -> None:
        with contextlib.suppress(SSL.Error):
            self._flush()

    def send(self, buf: Any, flags: int = 0) -> int:
        if not self._flush():
            raise SSL.WantWriteError()
        sent = super().send(buf)
        self._flush()
        return sent

    write = send

    def sendall(self, buf: Any, flags: int = 0) -> int:
        raise NotImplementedError("non-blocking connection: use send()")

    def shutdown(self) -> bool:
        done = super().shutdown()
        # The close_notify goes after the tickets if they are still held:
        # the peer decrypts records in order.
        self._flush()
        return done
