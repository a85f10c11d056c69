"""Replies and arguments as real FTP clients expect them.

pyftpdlib-facing core, no Django here. ``ClientRepliesMixin`` sits in
``handlers.DjangoHandlerMixin``; put it before pyftpdlib's ``FTPHandler`` in
the bases of a handler of your own to get the same behaviour.

Not found is 550
    Sync clients (rclone and everything built on Go's ``jlaffaye/ftp``,
    FileZilla, WinSCP) read only ``550`` as "this path does not exist": they
    list a target folder before creating it, and create nested folders one
    level at a time after a failed listing. pyftpdlib answers ``MLSD`` of a
    missing directory with ``501``, which those clients take for a fatal
    error, and ``STOU`` into a missing directory with the transient ``450``.
    Here both are ``550``; ``MLSD`` of a path that exists but is not a
    directory keeps RFC 3659's ``501``. Every other command taking a path
    already answers ``550`` for a missing one (tested command by command in
    ``tests/test_replies.py``).

``ls``-style options
    Many clients send ``LIST -la``, ``LIST -a sub`` or ``NLST -a`` (lftp,
    old FileZilla, shell scripts around ``ftp``), as vsftpd and ProFTPD
    accept. pyftpdlib accepts only the four exact arguments ``-a``, ``-l``,
    ``-al`` and ``-la`` to ``LIST`` and takes anything else for a path.
    Here, for ``LIST``, ``NLST`` and ``STAT``, leading words made of a dash
    and letters or digits only (``-la``, ``-a``, ``-1``, ``-R``...) are
    options and are ignored: the listing format does not change (``LIST``
    is always long and shows hidden files, ``NLST`` names only). ``--``
    ends the options. A file whose name looks like an option stays
    reachable: ``LIST ./-x``, ``LIST -- -x`` or its absolute path. A name
    with anything but letters and digits after the dash (``-x.txt``,
    ``-my file``) is a path as it stands.

``CWD`` without the process's working directory
    pyftpdlib's ``CWD`` checks a local directory by ``os.chdir()``-ing the
    whole process into it, then changes back. With a session per thread,
    two ``CWD`` commands at once (rclone's checkers, ``lftp mirror --parallel``)
    leave the process in one of the clients' directories; once that is
    deleted, every later ``CWD`` fails in ``os.getcwd()`` and its session
    is dropped, and relative paths anywhere in the process point into a
    user's home. Here ``CWD`` on a local filesystem checks the directory
    with ``stat()``/``access()`` as the session's user and never changes
    the process's directory; a filesystem with its own ``chdir()``
    (``StorageFS``) is asked directly.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.utils import strerror

__all__ = ["ClientRepliesMixin", "split_list_options"]

#: An ``ls`` option word: a dash and letters or digits (``-la``, ``-1``, ``-R``).
_OPTION = re.compile(r"-[A-Za-z0-9]+\Z")

#: Commands whose argument may start with ``ls`` options.
LISTING_COMMANDS = frozenset({"LIST", "NLST", "STAT"})


def split_list_options(arg: str) -> tuple[list[str], str]:
    """Split ``ls``-style options off the front of a listing argument.

    Returns ``(options, path)``: ``"-la sub dir"`` gives ``(["-la"], "sub
    dir")``, ``"-- -x"`` gives ``([], "-x")``, ``"-x.txt"`` gives ``([],
    "-x.txt")``. The path keeps its inner spaces as sent.
    """
    options: list[str] = []
    rest = arg
    while rest.startswith("-"):
        word, _, tail = rest.partition(" ")
        if word == "--":
            return options, tail.lstrip(" ")
        if not _OPTION.match(word):
            break
        options.append(word)
        rest = tail.lstrip(" ")
    return options, rest


class ClientRepliesMixin:
    """Not-found replies and listing arguments that clients can act on."""

    def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
        if cmd in LISTING_COMMANDS and arg.startswith("-") and self.authenticated:
            options, path = split_list_options(arg)
            if path != arg:
                if cmd == "STAT" and not path:
                    path = "."  # STAT with options lists the current directory
                arg = path
                line = f"{cmd} {arg}" if arg else cmd
        return super().pre_process_command(line, cmd, arg)

    def ftp_MLSD(self, path: str) -> Any:
        # Existence first, then the kind: a directory that another session
        # creates between the two checks (rclone creates parents from several
        # connections at once while listing them) is then listed, never taken
        # for a file. One removed between them is still "not found".
        if not self.fs.lexists(path):
            self.respond("550 No such file or directory.")
            return None
        if not self.fs.isdir(path):
            if not self.fs.lexists(path):
                self.respond("550 No such file or directory.")
            else:
                # RFC 3659: MLSD names a directory; a file is a syntax error.
                self.respond("501 Not a directory.")
            return None
        return super().ftp_MLSD(path)

    def ftp_STOU(self, line: str) -> Any:
        if line:
            basedir = os.path.split(self.fs.ftp2fs(line))[0]
            if not self.fs.isdir(basedir):
                self.respond("550 No such file or directory.")
                return None
        return super().ftp_STOU(line)

    def ftp_CWD(self, path: str) -> Any:
        try:
            self.run_as_current_user(self._change_directory, path)
        except (OSError, FilesystemError) as err:
            self.respond(f"550 {strerror(err)}.")
            return None
        self.respond(f'250 "{self.fs.cwd}" is the current directory.')
        return path

    def _change_directory(self, path: str) -> None:
        """``fs.chdir(path)``, without ``os.chdir()`` for pyftpdlib's own ``chdir``."""
        if type(self.fs).chdir is not AbstractedFS.chdir:
            self.fs.chdir(path)
            return
        # What os.chdir() would refuse, as the user the session runs as.
        if not stat.S_ISDIR(os.stat(path).st_mode):  # ENOENT, EACCES on the way
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        effective = os.access in os.supports_effective_ids
        if not os.access(path, os.X_OK, effective_ids=effective):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        self.fs.cwd = self.fs.fs2ftp(path)
