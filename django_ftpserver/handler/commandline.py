"""The command-line guard: what a command line must be before it is run.

Bytes that are not text, NUL bytes, line breaks inside a line, over-long
lines and paths that climb above the home are refused here, with a reply,
before pyftpdlib parses the command; see ``CommandLineGuardMixin``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..auth.permissions import climbs_above_root

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


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
