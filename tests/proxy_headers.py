"""Real PROXY protocol headers, v1 and v2, and FTP clients that send one first."""

from __future__ import annotations

import ftplib
import ipaddress
import socket
import struct
from typing import Any

from django_ftpserver.connections.proxyprotocol import V2_SIGNATURE


def v1(source: tuple[str, int], destination: tuple[str, int] = ("192.0.2.1", 21)) -> bytes:
    """A v1 header as HAProxy's ``send-proxy`` writes it."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2(
    source: tuple[str, int] | None = None,
    destination: tuple[str, int] = ("192.0.2.1", 21),
    *,
    command: int = 0x1,
    family_protocol: int | None = None,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 header as HAProxy's ``send-proxy-v2`` writes it (``command`` 0 is LOCAL)."""
    if addresses is None:
        if source is None:
            addresses = b""
        else:
            src = ipaddress.ip_address(source[0])
            dst = ipaddress.ip_address(destination[0])
            if src.version != dst.version:
                dst = ipaddress.ip_address("::ffff:" + str(dst) if src.version == 6 else "0.0.0.0")
            addresses = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    if family_protocol is None:
        if source is None:
            family_protocol = 0x00
        else:
            family_protocol = 0x11 if ipaddress.ip_address(source[0]).version == 4 else 0x21
    body = addresses + tlvs
    return (
        V2_SIGNATURE
        + bytes([0x20 | command, family_protocol])
        + struct.pack("!H", len(body))
        + body
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def connect_raw(
    host: str, port: int, source: str | None = None, timeout: float = 10
) -> socket.socket:
    sock = socket.create_connection(
        (host, port), timeout=timeout, source_address=(source, 0) if source else None
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def proxied_ftp(
    host: str,
    port: int,
    header: bytes,
    *,
    data_source: str | None = None,
    timeout: float = 10,
    ftp_class: type[ftplib.FTP] | None = None,
    **ftp_options: Any,
) -> ftplib.FTP:
    """An ``ftplib.FTP`` whose control connection starts with ``header``.

    Its data connections come from ``data_source`` (the client's own
    address when the header names one of the loopback addresses).
    """
    sock = connect_raw(host, port, timeout=timeout)
    sock.sendall(header)
    ftp = (ftp_class or ftplib.FTP)(timeout=timeout, **ftp_options)
    ftp.host, ftp.port = host, port
    ftp.sock = sock
    ftp.af = sock.family
    ftp.file = sock.makefile("r", encoding=ftp.encoding)
    if data_source:
        ftp.source_address = (data_source, 0)
    ftp.welcome = ftp.getresp()
    return ftp
