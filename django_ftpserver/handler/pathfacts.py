"""What a session tells the client about its paths and its filesystem.

The MLSD/MLST ``perm`` facts follow the account's path rules, and ``FEAT``
advertises ``MFMT`` only where the filesystem can set times: both are
answers a client acts on, so they must say what the server will allow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.handlers.ftp.producers import BufferedIteratorProducer
from pyftpdlib.utils import strerror

# One logger for the whole handler, named as in 1.0: LOGGING settings name it.
logger = logging.getLogger("django_ftpserver.handlers")


class PathPermissionFactsMixin:
    """MLSD/MLST ``perm`` facts that follow the account's path rules.

    pyftpdlib computes the facts from the account's one permission string;
    with path rules, each entry gets the letters of its own path, so a
    client shows ``/reports`` as read-only. Without rules (or with another
    authorizer) the facts are pyftpdlib's, from the one permission string.
    """

    def _perms_for(self) -> Any:
        perms_for = getattr(self.authorizer, "perms_for", None)
        snapshot = getattr(self.authorizer, "snapshot", None)
        if perms_for is None or snapshot is None or not snapshot.rules:
            return None
        return perms_for

    def ftp_MLSD(self, path: str) -> Any:
        # ClientRepliesMixin answered a path that is not a directory. The
        # listing is made here, not by pyftpdlib's ftp_MLSD: that one looks
        # at isdir() once more and answers 501 for a directory another
        # session removed since (rclone deletes from several connections
        # while others list); here that is listdir()'s "not found", 550.
        try:
            listing = self.run_as_current_user(self.fs.listdir, path)
        except (OSError, FilesystemError) as err:
            self.respond(f"550 {strerror(err)}.")
            return None
        facts = self._current_facts
        perms_for = self._perms_for()
        if perms_for is None:
            perms = self.authorizer.get_perms(self.username)
            iterator = self.fs.format_mlsx(path, listing, perms, facts)
        else:

            def lines() -> Iterator[bytes]:
                for name in listing:
                    perms = perms_for(os.path.join(path, name))
                    yield from self.fs.format_mlsx(path, [name], perms, facts)

            iterator = lines()
        self.push_dtp_data(BufferedIteratorProducer(iterator), isproducer=True, cmd="MLSD")
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
