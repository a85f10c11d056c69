"""A small asyncio FTP control-connection client.

Hundreds of concurrent logins from threads and ``ftplib`` would measure the
client's GIL as much as the server; one event loop drives them all with
little overhead, and the same way for both servers.
"""

from __future__ import annotations

import asyncio
import time

TIMEOUT = 60.0


class FTPReplyError(Exception):
    pass


class Control:
    """One control connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Control:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        control = cls(reader, writer)
        await control.expect("220")
        return control

    async def reply(self) -> str:
        """Read one reply, multi-line ones included; return its last line."""
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
            if not raw:
                raise FTPReplyError("connection closed by the server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) >= 4 and line[:3].isdigit() and line[3] == " ":
                return line

    async def command(self, text: str) -> str:
        self.writer.write(text.encode() + b"\r\n")
        return await self.reply()

    async def expect(self, code: str, text: str | None = None) -> str:
        line = await (self.command(text) if text is not None else self.reply())
        if not line.startswith(code):
            raise FTPReplyError(f"{text!r}: expected {code}, got {line!r}")
        return line

    async def login(self, user: str, password: str) -> None:
        await self.expect("331", f"USER {user}")
        await self.expect("230", f"PASS {password}")

    async def rtt(self, text: str = "NOOP") -> float:
        start = time.perf_counter()
        await self.expect("2", text)
        return time.perf_counter() - start

    async def close(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reader.read(), 5)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self.writer.close()


async def logged_in(host: str, port: int, user: str, password: str) -> Control:
    control = await Control.open(host, port)
    await control.login(user, password)
    return control


async def open_many(
    host: str, port: int, user: str, password: str, count: int, concurrency: int = 50
) -> list[Control]:
    """``count`` logged-in sessions, opened ``concurrency`` at a time.

    Bounded so as not to overflow the listen backlog (a dropped SYN costs a
    one-second retransmission and would measure the kernel, not the server).
    """
    limit = asyncio.Semaphore(concurrency)

    async def one() -> Control:
        async with limit:
            return await logged_in(host, port, user, password)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(controls: list[Control]) -> None:
    await asyncio.gather(*(control.close() for control in controls))
