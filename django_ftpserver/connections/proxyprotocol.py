"""The PROXY protocol (v1 text, v2 binary), as HAProxy and cloud balancers send it.

Behind a TCP load balancer every connection comes from the balancer's
address. With ``send-proxy`` (v1) or ``send-proxy-v2`` (v2) the balancer
writes one header before anything else on the connection, naming the
client's own address: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

This module is plain pyftpdlib-facing code, no Django:

* ``header_length`` and ``parse`` read a header;
* ``TrustedProxies`` says which peers may send one (only those: anyone
  else could claim any address);
* ``HeaderReader`` reads a header from a new connection on a pyftpdlib
  loop, without blocking it and without ever consuming a byte past the
  header (it peeks, then takes exactly the header's bytes);
* ``ProxiedSocket`` is the connection with the client's address as its
  peer, so pyftpdlib, its logs and everything built on ``remote_ip`` see
  the client.

A connection from a trusted peer must start with a header: an FTP client
says nothing before the server's 220 greeting, so a trusted peer that sends
nothing is a balancer not configured to send one, and waiting for a header
that never comes until ``timeout`` and then closing is the only answer that
does not silently put every client under the balancer's address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.proxyprotocol")

V1_PREFIX = b"PROXY "
#: The longest v1 header, CRLF included (the protocol's own limit).
V1_MAX_LENGTH = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16

_V2_FAMILIES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}


class ProxyProtocolError(ValueError):
    """Not a valid PROXY protocol header; the message says what is wrong."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header.

    ``source`` is the client's (address, port), ``destination`` the address
    it connected to; both ``None`` when the header names no client: a v2
    ``LOCAL`` command (the balancer's own health check), a v1 ``UNKNOWN``
    or a v2 ``UNSPEC``/``UNIX`` family. The protocol says to serve those
    with the connection's real addresses.
    """

    version: int
    command: str  # "PROXY" or "LOCAL"
    family: str  # "TCP4", "TCP6", "UNKNOWN", "UNSPEC", "UNIX"
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    length: int = 0


def client_ip(address: str) -> str:
    """``address`` as pyftpdlib compares it: an IPv4-mapped IPv6 address as IPv4.

    A balancer listening on ``::`` names an IPv4 client ``::ffff:192.0.2.7``;
    the same client reaching a passive port directly is ``192.0.2.7``.
    """
    text = str(address).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return str(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def header_length(data: bytes) -> int | None:
    """The length of the header ``data`` starts with; ``None`` while incomplete.

    Raises ``ProxyProtocolError`` as soon as ``data`` cannot be the start
    of a header. Every byte before the returned length belongs to the
    header; with ``None``, every byte of ``data`` does.
    """
    if not data:
        return None
    head = data[: len(V2_SIGNATURE)]
    if head == V2_SIGNATURE[: len(head)]:
        if len(data) < V2_FIXED_LENGTH:
            return None
        return V2_FIXED_LENGTH + struct.unpack("!H", data[14:16])[0]
    head = data[: len(V1_PREFIX)]
    if head != V1_PREFIX[: len(head)]:
        raise ProxyProtocolError(f"not a PROXY protocol header (starts with {data[:16]!r})")
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end >= 0:
        return end + 2
    if len(data) >= V1_MAX_LENGTH:
        raise ProxyProtocolError(f"v1 header longer than {V1_MAX_LENGTH} bytes")
    return None


def _port(text: str) -> int:
    if not (text.isdigit() and text.isascii()) or len(text) > 5 or int(text) > 65535:
        raise ProxyProtocolError(f"v1 header: bad port {text!r}")
    return int(text)


def _parse_v1(header: bytes) -> ProxyHeader:
    try:
        line = header[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("v1 header is not ASCII") from None
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, "PROXY", "UNKNOWN", length=len(header))
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(
            f"v1 header: expected 'PROXY TCP4|TCP6 src dst sport dport': {line[:120]!r}"
        )
    version = 4 if parts[1] == "TCP4" else 6
    addresses = []
    for text in parts[2:4]:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise ProxyProtocolError(f"v1 header: bad address {text!r}") from None
        if ip.version != version:
            raise ProxyProtocolError(f"v1 header: {text!r} is not an {parts[1]} address")
        addresses.append(client_ip(str(ip)))
    return ProxyHeader(
        1,
        "PROXY",
        parts[1],
        (addresses[0], _port(parts[4])),
        (addresses[1], _port(parts[5])),
        len(header),
    )


def _parse_v2(header: bytes) -> ProxyHeader:
    version_command, family_protocol = header[12], header[13]
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"v2 header: unknown version {version_command >> 4}")
    command = version_command & 0x0F
    if command == 0x0:
        return ProxyHeader(2, "LOCAL", "UNSPEC", length=len(header))
    if command != 0x1:
        raise ProxyProtocolError(f"v2 header: unknown command {command}")
    family = _V2_FAMILIES.get(family_protocol >> 4)
    if family is None:
        raise ProxyProtocolError(f"v2 header: unknown address family {family_protocol >> 4}")
    if family in ("UNSPEC", "UNIX"):  # no IP address to take
        return ProxyHeader(2, "PROXY", family, length=len(header))
    if family_protocol & 0x0F != 0x1:
        raise ProxyProtocolError("v2 header: not a TCP (stream) connection")
    body = header[V2_FIXED_LENGTH:]
    size = 4 if family == "INET" else 16
    if len(body) < 2 * size + 4:
        raise ProxyProtocolError(
            f"v2 header: {len(body)} bytes of addresses, too short for {family}"
        )
    source = ipaddress.ip_address(body[:size])
    destination = ipaddress.ip_address(body[size : 2 * size])
    source_port, destination_port = struct.unpack("!HH", body[2 * size : 2 * size + 4])
    return ProxyHeader(
        2,
        "PROXY",
        "TCP4" if family == "INET" else "TCP6",
        (client_ip(str(source)), source_port),
        (client_ip(str(destination)), destination_port),
        len(header),
    )


def parse(header: bytes) -> ProxyHeader:
    """Parse one complete header (exactly ``header_length(header)`` bytes)."""
    if header_length(header) != len(header):
        raise ProxyProtocolError("incomplete PROXY protocol header")
    if header.startswith(V2_SIGNATURE):
        return _parse_v2(header)
    return _parse_v1(header)


def looks_like_header(data: bytes) -> bool:
    """Whether the first bytes a connection sent look like a PROXY header.

    For a connection that is not from a trusted proxy: its header is refused.
    """
    if data.startswith(V1_PREFIX):
        return True
    head = data[: len(V2_SIGNATURE)]
    return len(head) >= 5 and head == V2_SIGNATURE[: len(head)]


class TrustedProxies:
    """The addresses and networks allowed to send a PROXY header."""

    def __init__(self, entries: Iterable[str]) -> None:
        """Raise ``ValueError`` naming the first entry that is not an address or network."""
        networks = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(f"not an address or network: {entry!r}")
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=True))
            except ValueError as exc:
                raise ValueError(f"not an address or network: {entry!r} ({exc})") from None
        self.networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]!r})"

    def __contains__(self, address: object) -> bool:
        key = str(address)
        try:
            return self._cache[key]
        except KeyError:
            pass
        try:
            ip = ipaddress.ip_address(client_ip(key))
        except ValueError:
            trusted = False
        else:
            trusted = any(ip in network for network in self.networks)
        if len(self._cache) < 4096:  # balancers are few; never grow without bound
            self._cache[key] = trusted
        return trusted


class ProxiedSocket(socket.socket):
    """A connected socket whose peer is the client a PROXY header named.

    ``getpeername()`` answers the client's address, so pyftpdlib's handler
    (which asks it once, for ``remote_ip``), its logs and TLS see the
    client; ``proxy_peername`` keeps the balancer's.
    """

    proxy_peername: Any = None
    client_address: tuple[str, int] = ("", 0)

    @classmethod
    def wrap(cls, sock: socket.socket, client: tuple[str, int]) -> ProxiedSocket:
        """Move ``sock``'s descriptor into a new ``ProxiedSocket`` (``sock`` is detached)."""
        peer = sock.getpeername()
        timeout = sock.gettimeout()
        proxied = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        proxied.settimeout(timeout)
        proxied.proxy_peername = peer
        proxied.client_address = (client[0], client[1])
        return proxied

    def getpeername(self) -> Any:
        if self.family == socket.AF_INET6:
            return (*self.client_address, 0, 0)
        return self.client_address


class HeaderReader:
    """Read a PROXY header from a new connection, on a pyftpdlib loop.

    Registered on ``ioloop`` in place of the FTP handler, which does not
    exist yet: nothing is sent to the peer (the balancer sends its header
    before expecting the server's greeting). Exactly one of the callbacks
    runs: ``on_header(header)`` once the whole header arrived, or
    ``on_failure(reason)`` when the peer sent something else, closed the
    connection, or sent no complete header within ``timeout`` seconds (the
    socket is closed then). Data after the header stays unread in the socket.
    ``on_failure`` is told whether the peer sent anything at all. Nothing
    happens before ``start()``.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: Any,
        ioloop: Any,
        timeout: float,
        on_header: Callable[[ProxyHeader], None],
        on_failure: Callable[[str, bool], None],
    ) -> None:
        self.socket = sock
        self.peer = peer
        self.ioloop = ioloop
        self._on_header = on_header
        self._on_failure = on_failure
        self._buffer = b""
        self._length: int | None = None
        self._closed = True  # not on the loop yet
        self._done = False
        self._timeout = timeout
        self._timer: Any = None
        self._fileno = sock.fileno()

    def start(self) -> None:
        """Read what arrived already (usually the whole header), else wait on the loop.

        A balancer sends its header with the first packet after the
        handshake: reading at once saves the loop turn a wait would cost.
        """
        self.socket.setblocking(False)
        self._closed = False
        self.ioloop.register(self._fileno, self, self.ioloop.READ)
        self._timer = self.ioloop.call_later(
            self._timeout, self._timed_out, _errback=self.handle_error
        )
        try:
            self.handle_read_event()
        except Exception:
            self.handle_error()

    # --- what pyftpdlib's loop calls

    def readable(self) -> bool:
        return not self._done

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        if self._done:
            return
        want = (self._length or V1_MAX_LENGTH + 1) - len(self._buffer)
        try:
            peeked = self.socket.recv(want, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"connection error before the PROXY header: {exc.strerror or exc}")
            return
        if not peeked:
            self.handle_close()
            return
        try:
            length = header_length(self._buffer + peeked)
        except ProxyProtocolError as exc:
            self._fail(str(exc))
            return
        take = len(peeked) if length is None else min(len(peeked), length - len(self._buffer))
        self._buffer += self.socket.recv(take)
        self._length = length
        if length is None or len(self._buffer) < length:
            return  # the rest comes in a later packet
        try:
            header = parse(self._buffer)
        except ProxyProtocolError as exc:
            self._fail(str(exc))
            return
        self._finish()
        self._on_header(header)

    def handle_write_event(self) -> None:
        pass

    def handle_expt_event(self) -> None:
        pass

    def handle_close(self) -> None:
        if self._buffer:
            self._fail("connection closed inside the PROXY header")
        else:
            # Connected and left without a byte: a plain TCP health check.
            self._fail("connection closed before sending anything")

    def handle_error(self) -> None:
        logger.exception("FTP PROXY header from %s: unexpected error", self.peer)
        self._done = True
        self._finish()
        self._close_socket()

    def close(self) -> None:
        """Give up (server shutdown, the data connection no longer wanted)."""
        if not self._done:
            self._done = True
            self._finish()
            self._close_socket()

    # --- internals

    def _timed_out(self) -> None:
        if not self._done:
            self._fail("no complete PROXY header in time")

    def _finish(self) -> None:
        """Leave the loop; the socket stays open for whoever takes it next."""
        self._done = True
        if self._timer is not None and not self._timer.cancelled:
            self._timer.cancel()
        if not self._closed:
            self._closed = True
            self.ioloop.unregister(self._fileno)

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()

    def _fail(self, reason: str) -> None:
        self._finish()
        self._close_socket()
        self._on_failure(reason, bool(self._buffer))


class ProxiedPassiveDTP(PassiveDTP):
    """Passive data listener that checks data connections against the client's address.

    pyftpdlib refuses a data connection whose peer is not the control
    connection's (another host stealing the transfer). Behind a balancer
    the control connection's address is the client's, from its PROXY
    header; a data connection then comes either

    * from the client itself (passive ports reached directly, or through a
      NAT or balancer that keeps the source address): compared as is, an
      IPv4-mapped address (``::ffff:192.0.2.7``) as the IPv4 one;
    * from a trusted proxy (passive ports forwarded by the balancer): its
      own PROXY header must name the control connection's client. A data
      connection from the balancer without a header, or with one that
      names no client (``LOCAL``, ``UNKNOWN``), cannot be told apart from
      another client's and is refused with 425.

    Every connection from a trusted proxy starts with a header, data
    connections included, even when the session's client is the proxy's
    own address (curl's ``--haproxy-protocol`` sends one on both).

    Without trusted proxies configured, pyftpdlib's own check runs.
    """

    def __init__(self, cmd_channel: Any, extmode: bool = False) -> None:
        self._readers: list[HeaderReader] = []
        super().__init__(cmd_channel, extmode)

    def handle_accepted(self, sock: Any, addr: Any) -> None:
        trusted = getattr(self.cmd_channel.server, "proxy_protocol", None)
        if not trusted:
            super().handle_accepted(sock, addr)
            return
        if addr[0] in trusted:
            self._read_header(sock, addr)
            return
        self._check_and_accept(sock, addr)

    def _check_and_accept(self, sock: Any, addr: Any) -> None:
        expected = self.cmd_channel.remote_ip
        if client_ip(addr[0]) == client_ip(expected):
            addr = (expected, *addr[1:])  # one spelling for pyftpdlib's comparison
        super().handle_accepted(sock, addr)

    def _refuse(self, sock: Any, reason: str) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        if self.cmd_channel.connected:
            self.cmd_channel.respond_w_warning(f"425 Rejected data connection: {reason}.")

    def _read_header(self, sock: Any, addr: Any) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        timeout = getattr(self.cmd_channel.server, "proxy_header_timeout", 5.0)

        def on_header(header: ProxyHeader) -> None:
            self._forget(reader)
            if self._closed:  # the transfer was given up meanwhile
                with contextlib.suppress(OSError):
                    sock.close()
                return
            if header.source is None:
                self._refuse(sock, f"the PROXY header from {peer} names no client")
                return
            try:
                proxied = ProxiedSocket.wrap(sock, header.source)
            except OSError:
                return
            self._check_and_accept(proxied, header.source)

        def on_failure(reason: str, sent_something: bool) -> None:
            self._forget(reader)
            if not self._closed:
                self._refuse(sock, f"no valid PROXY header from {peer} ({reason})")

        reader = HeaderReader(sock, peer, self.ioloop, timeout, on_header, on_failure)
        self._readers.append(reader)
        reader.start()

    def _forget(self, reader: HeaderReader) -> None:
        with contextlib.suppress(ValueError):
            self._readers.remove(reader)

    def close(self) -> None:
        for reader in list(self._readers):
            reader.close()
        self._readers.clear()
        super().close()


class ProxyProtocolHandlerMixin:
    """Control handler mixin: the PROXY protocol's parts after the accept.

    * Data connections are checked by ``ProxiedPassiveDTP``.
    * A connection that is not from a trusted proxy and starts with a PROXY
      header gets one ``500`` line and is closed, with a warning naming the
      address: it is a balancer whose address is missing from
      ``FTPSERVER_PROXY_PROTOCOL_TRUSTED`` (or someone claiming another
      address). Left to the FTP parser, the header would be answered as
      unknown commands.
    """

    passive_dtp = ProxiedPassiveDTP

    proxy_header_refused_reply = (
        "500 PROXY protocol header refused: this address is not a trusted proxy."
    )

    _first_bytes_checked = False

    def recv(self, buffer_size: int) -> bytes:
        data = super().recv(buffer_size)
        if self._first_bytes_checked or not data:
            return data
        self._first_bytes_checked = True
        if not looks_like_header(data):
            return data
        logger.warning(
            "FTP PROXY protocol header from %s refused: the address is not in "
            "FTPSERVER_PROXY_PROTOCOL_TRUSTED",
            self.remote_ip,
        )
        self.respond(self.proxy_header_refused_reply)
        self.close_when_done()
        return b""
