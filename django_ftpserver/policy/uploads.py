"""Uploads that are atomic, and uploads that stay within a quota.

Both live at the handler level and use only the ``AbstractedFS`` API
(``open``, ``rename``, ``remove``, ``getsize``, ``listdir``...), so they
work the same on local disk and on any ``StorageFS``.

**Atomic uploads** (``FTPSERVER_UPLOAD_MODE = "atomic"``). The data goes to
a temporary file in the target's folder (``.ftp-upload-<random>.part``,
left out of every listing) and is moved over the target only once the
transfer completed: the target never holds a partial file, an existing
file stays untouched until the new one is complete, and the receivers of
``ftp_file_received`` see the final file. Resuming (``REST`` + ``STOR``,
``APPE``) first copies the existing file into the temporary one. ``STOU``
writes into its new unique file, which is removed if the upload fails.

A filesystem whose files are atomic already says so with
``writes_atomically = True`` (``StorageFS`` on S3: a multipart upload
completes, or a ``PutObject`` lands, all at once, and an upload cut off is
aborted without touching the object). Atomic mode then writes straight to
the target: the same guarantees, without a temporary object and a
server-side copy of every upload. ``writes_atomically`` promises that
``open(path, "wb")`` replaces ``path`` only when the file is closed after a
complete transfer, and leaves it as it was otherwise.

**Quotas** (``policy/quotas.py``). An upload of an account with a limit holds a
reservation in the process's ledger: each read of the data channel checks
that the account's usage, plus what every upload of the account in this
process has received so far, stays within the limit; the one crossing it
is cut with ``552 Exceeded storage allocation.`` and its partial file is
removed.

Why the data channel takes part: pyftpdlib replies to the transfer
(``226``) before it calls ``on_file_received``. The move into place and the
quota's accounting must happen before that reply, so that a client that
got ``226`` finds the file where it asked for it; ``UploadDTPMixin`` does
them when the channel closes, then gives pyftpdlib the target's name, so
logs and signals name the file the client named.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.utils import strerror

from .. import signals
from ..conf import conf
from . import quotas

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.uploads")

#: Temporary files of atomic uploads are named ``<PREFIX><random><SUFFIX>``.
TEMPORARY_PREFIX = ".ftp-upload-"
TEMPORARY_SUFFIX = ".part"

QUOTA_EXCEEDED_REPLY = "552 Exceeded storage allocation."

_COPY_CHUNK = 1024 * 1024


def is_temporary(name: str) -> bool:
    """Whether file name ``name`` is the temporary file of an atomic upload."""
    return name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX)


def temporary_path(target: str) -> str:
    """A fresh temporary path in ``target``'s folder.

    Joined with the separator ``target`` uses: local filesystems use the
    OS's paths, ``StorageFS`` POSIX ones on every platform.
    """
    sep = "/" if "/" in target or os.sep == "/" else os.sep
    head = target.rsplit(sep, 1)[0]
    return f"{head}{sep}{TEMPORARY_PREFIX}{secrets.token_hex(8)}{TEMPORARY_SUFFIX}"


class _Closed:
    """What the data channel holds once ``UploadDTPMixin`` dealt with the file."""

    closed = True

    def __init__(self, name: str) -> None:
        self.name = name

    def close(self) -> None:
        pass


@dataclass
class Upload:
    """One upload in progress."""

    #: The path the client named.
    target: str
    #: Where the data is written: ``target``, or a temporary file beside it.
    path: str
    #: ``STOR``, ``APPE`` or ``STOU``.
    command: str
    #: Whether ``target`` existed before, and its size then.
    existed: bool = False
    old_size: int = 0
    #: APPE, or STOR after REST: the upload keeps the file's content.
    resume: bool = False
    #: The quota reservation (``quotas.Reservation``) when the account has limits.
    reservation: Any = None
    #: Set when the transfer crossed the quota.
    exceeded: bool = False
    #: The handler's file object for this upload, once opened.
    file: Any = field(default=None, repr=False)

    @property
    def atomic(self) -> bool:
        return self.path != self.target


def hide_temporary_files(fs: Any) -> None:
    """Leave the temporary files of atomic uploads out of ``fs``'s listings.

    Done on the instance, over whatever ``listdir`` it has (a storage patch
    binds its own there), so that it works with any filesystem class.
    """
    if getattr(fs, "_hides_temporary_files", False):
        return
    listdir = fs.listdir

    def visible(path: str) -> list[str]:
        return [name for name in listdir(path) if not is_temporary(name)]

    fs.listdir = visible
    if hasattr(fs, "listdirinfo"):
        listdirinfo = fs.listdirinfo

        def visible_info(path: str) -> list[str]:
            return [name for name in listdirinfo(path) if not is_temporary(name)]

        fs.listdirinfo = visible_info
    fs._hides_temporary_files = True


class UploadDTPMixin:
    """Data channel side: cut an upload over quota; finish an upload before its reply."""

    def handle_read_event(self) -> None:
        super().handle_read_event()
        if not self.receive or self._closed:
            return
        upload = getattr(self.cmd_channel, "_upload", None)
        reservation = upload.reservation if upload is not None else None
        if reservation is not None and not reservation.allows(self.tot_bytes_received):
            upload.exceeded = True
            self.transfer_finished = False
            self._resp = (QUOTA_EXCEEDED_REPLY, logger.info)
            self.close()

    def close(self) -> None:
        upload = getattr(self.cmd_channel, "_upload", None)
        file = self.file_obj
        if (
            self._closed
            or not self.receive
            or upload is None
            or file is None
            or upload.file is not file
        ):
            super().close()
            return
        if not file.closed:
            # Before anything else: a storage stores the file when it is
            # closed, and may turn the transfer into a failure then.
            try:
                file.close()
            except Exception as exc:
                logger.warning("Could not write %s: %s", upload.path, exc)
                self.transfer_finished = False
                self._resp = ("451 Could not write the file; transfer aborted.", logger.warning)
        problem = self.cmd_channel.finish_upload(upload, bool(self.transfer_finished))
        if problem:
            self.transfer_finished = False
            self._resp = (f"451 {problem}; transfer aborted.", logger.warning)
        self.file_obj = _Closed(upload.target)
        super().close()


class UploadMixin:
    """Control handler side of atomic uploads and quotas.

    Place it after ``PreSignalMixin`` in the bases: the receivers of
    ``ftp_pre_upload`` are asked first, and see the path the client named.
    """

    #: The upload waiting for, or using, the data channel.
    _upload: Upload | None = None

    # --- what applies to this session

    def _atomic(self) -> bool:
        return conf.UPLOAD_MODE == "atomic"

    def _needs_temporary_file(self) -> bool:
        """Atomic mode on a filesystem whose writes are not atomic by themselves."""
        return self._atomic() and not getattr(self.fs, "writes_atomically", False)

    def _limits(self) -> Any:
        """The account's ``quotas.Limits``, or None (no limit, or another authorizer)."""
        snapshot = getattr(self.authorizer, "snapshot", None)
        return getattr(snapshot, "limits", None)

    def handle_auth_success(self, home: str, password: str, msg_login: str) -> None:
        super().handle_auth_success(home, password, msg_login)
        if self.fs is not None and self._atomic():
            hide_temporary_files(self.fs)

    # --- helpers over the filesystem API

    def _size_of(self, path: str) -> int | None:
        """The size of file ``path``, or None if there is no file there."""
        try:
            if not self.fs.isfile(path):
                return None
            return int(self.run_as_current_user(self.fs.getsize, path))
        except (OSError, FilesystemError):
            return None

    def _remove_quietly(self, path: str) -> None:
        try:
            if self.fs.lexists(path):
                self.run_as_current_user(self.fs.remove, path)
        except (OSError, FilesystemError) as exc:
            logger.warning("Could not remove %s: %s", path, exc)

    def _copy_into(self, source: str, destination: Any) -> None:
        """Write the content of file ``source`` into the open file ``destination``."""
        with self.run_as_current_user(self.fs.open, source, "rb") as src:
            while chunk := src.read(_COPY_CHUNK):
                destination.write(chunk)

    # --- starting an upload

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        atomic = self._atomic()
        limits = self._limits()
        if not atomic and limits is None:
            return super().ftp_STOR(file, mode)
        self._drop_upload()
        command = "APPE" if "a" in mode else "STOR"
        resume = "a" in mode or bool(self._restart_position)
        old_size = self._size_of(file)
        upload = Upload(
            target=file,
            path=temporary_path(file) if self._needs_temporary_file() else file,
            command=command,
            existed=old_size is not None,
            old_size=old_size or 0,
            resume=resume,
        )
        if limits is not None:
            refusal = self._reserve(upload, limits, resume)
            if refusal:
                self._restart_position = 0
                self.respond(refusal)
                return None
        rest = self._restart_position
        prefill = upload.atomic and resume and upload.existed
        if upload.atomic and rest:
            # The REST position applies to the target; the temporary file
            # is opened empty and filled up to it below.
            self._restart_position = 0
            if not upload.existed:
                self._discard(upload)
                self.respond("550 No such file or directory.")
                return None
            if rest > upload.old_size:
                self._discard(upload)
                self.respond(f"554 REST position ({rest}) > file size ({upload.old_size})")
                return None
        self._upload = upload
        result = super().ftp_STOR(upload.path, "a" if "a" in mode else "w")
        if result is None:  # refused: the file could not be opened
            self._discard(upload)
            return None
        upload.file = self._file_of_transfer()
        if prefill:
            # Nothing was read from the data connection yet (this thread
            # serves it): the file gets the existing content first.
            try:
                self._copy_into(file, upload.file)
                if rest:
                    upload.file.seek(rest)
            except (OSError, FilesystemError) as err:
                logger.warning("Could not copy %s to resume it: %s", file, err)
                self._cancel_transfer(f"550 {strerror(err)}.")
                return None
        return file

    def ftp_STOU(self, line: str) -> Any:
        atomic = self._atomic()
        limits = self._limits()
        if not atomic and limits is None:
            return super().ftp_STOU(line)
        self._drop_upload()
        # A new unique file: written in place, removed again if it fails.
        upload = Upload(target="", path="", command="STOU")
        if limits is not None and not self._restart_position:
            refusal = self._reserve(upload, limits, resume=False)
            if refusal:
                self.respond(refusal)
                return None
        result = super().ftp_STOU(line)
        file = self._file_of_transfer()
        if result is None or file is None:
            if upload.reservation is not None:
                quotas.ledger.settle(upload.reservation, 0)
            return result
        upload.target = upload.path = file.name
        upload.file = file
        self._upload = upload
        return result

    def _file_of_transfer(self) -> Any:
        if self.data_channel is not None and self.data_channel.receive:
            return self.data_channel.file_obj
        if self._in_dtp_queue is not None:
            return self._in_dtp_queue[0]
        return None

    def _cancel_transfer(self, reply: str) -> None:
        """End a transfer that was announced (150) but must not run."""
        if self.data_channel is not None:
            self.data_channel.transfer_finished = False
            self.data_channel._resp = (reply, logger.info)
            self.data_channel.close()
        else:
            file, _ = self._in_dtp_queue
            self._in_dtp_queue = None
            file.close()
            self.finish_upload(self._upload, False)
            self.respond(reply)

    # --- quotas (see quotas.py)

    def _account_pk(self) -> Any:
        return getattr(getattr(self.authorizer, "snapshot", None), "account_pk", None)

    def _usage(self) -> quotas.Usage:
        """The account's stored usage; counted from its home first if it never was."""
        account_pk = self._account_pk()
        usage, counted = quotas.read_usage(account_pk)
        if not counted:
            root = self.fs.root
            usage = quotas.count_usage(self.fs, root)
            quotas.store_usage(account_pk, usage)
            logger.info(
                "FTP usage of %r counted from %s: %d bytes in %d files",
                self.username,
                root,
                usage.bytes,
                usage.files,
            )
        return usage

    def _reserve(self, upload: Upload, limits: Any, resume: bool) -> str | None:
        """Hold a reservation for ``upload``; the reply refusing it, or None."""
        if upload.resume:
            start = upload.old_size if upload.command == "APPE" else self._restart_position
        else:
            start = 0
        try:
            usage = self._usage()
        except Exception:
            logger.exception("FTP quota of %r could not be read; upload refused", self.username)
            return "451 Quota unavailable, try again later."
        reservation = quotas.ledger.reserve(
            self._account_pk(),
            limits,
            usage,
            old_size=upload.old_size,
            existed=upload.existed,
            resume=resume,
            start=start,
        )
        if reservation is None:
            logger.info("FTP upload of %r to %s refused: at quota", self.username, upload.target)
            return QUOTA_EXCEEDED_REPLY
        upload.reservation = reservation
        return None

    def _usage_changed(self, delta_bytes: int, delta_files: int) -> None:
        account_pk = self._account_pk()
        quotas.ledger.changed(account_pk, delta_bytes)
        self._add_usage(account_pk, delta_bytes, delta_files)

    def _add_usage(self, account_pk: Any, delta_bytes: int, delta_files: int) -> None:
        """Write the usage change; a failure is logged, never the client's problem.

        The file operation has happened by now, so refusing it is no longer
        possible: the stored usage is only off until ``ftpquota recalc``.
        """
        try:
            quotas.add_usage(account_pk, delta_bytes, delta_files)
        except Exception:
            logger.exception(
                "FTP usage of %r not updated (%+d bytes, %+d files); run ftpquota recalc",
                self.username,
                delta_bytes,
                delta_files,
            )

    def ftp_DELE(self, path: str) -> Any:
        if self._limits() is None:
            return super().ftp_DELE(path)
        size = self._size_of(path)
        result = super().ftp_DELE(path)
        if result is not None and size is not None:
            self._usage_changed(-size, -1)
        return result

    def ftp_RNTO(self, path: str) -> Any:
        src = self._rnfr
        if self._limits() is None or not src or src == path:
            return super().ftp_RNTO(path)
        replaced = self._size_of(path)  # a file the rename replaces frees its space
        result = super().ftp_RNTO(path)
        if result is not None and replaced is not None:
            self._usage_changed(-replaced, -1)
        return result

    # --- the end of an upload

    def finish_upload(self, upload: Upload, finished: bool) -> str | None:
        """Called by the data channel once the file is closed, before the reply.

        Moves an atomic upload into place, removes what a failed one left,
        settles the quota. Returns why a finished transfer failed after
        all (the move was refused), or None.
        """
        if self._upload is upload:
            self._upload = None
        problem = None
        if finished and upload.atomic:
            try:
                self.run_as_current_user(self.fs.rename, upload.path, upload.target)
            except (OSError, FilesystemError) as err:
                logger.warning("Could not move %s to %s: %s", upload.path, upload.target, err)
                problem = f"Could not store the file: {strerror(err)}"
                finished = False
        if not finished:
            # What a failed upload wrote is removed where nothing of the
            # file before it is lost: a temporary file, a new STOU file, a
            # STOR over the quota (it truncated the file). An append or a
            # resume cut in standard mode keeps what arrived. A filesystem
            # that writes atomically wrote nothing: the old file is intact.
            if not getattr(self.fs, "writes_atomically", False) and (
                upload.atomic
                or (upload.command == "STOU" and (self._atomic() or upload.exceeded))
                or (upload.exceeded and not upload.resume)
            ):
                self._remove_quietly(upload.path)
            if upload.exceeded:
                self._quota_exceeded(upload)
        self._settle(upload, finished)
        return problem

    def _settle(self, upload: Upload, finished: bool) -> None:
        """Account for what ``upload`` left at its target, whatever happened to it."""
        reservation = upload.reservation
        if reservation is None or reservation.settled:
            return
        size = self._size_of(upload.target)
        delta_bytes = (size or 0) - (upload.old_size if upload.existed else 0)
        delta_files = int(size is not None) - int(upload.existed)
        quotas.ledger.settle(reservation, delta_bytes)
        self._add_usage(reservation.account_pk, delta_bytes, delta_files)

    def _quota_exceeded(self, upload: Upload) -> None:
        logger.info("FTP upload of %r to %s cut: quota exceeded", self.username, upload.target)
        self._emit(
            signals.ftp_quota_exceeded,
            "quota exceeded",
            username=self.username,
            path=upload.target,
            ftp_path=self._ftp_path(upload.target),
            remote_ip=self.remote_ip,
        )

    def _discard(self, upload: Upload) -> None:
        """Forget an upload that never started; remove its temporary file."""
        if self._upload is upload:
            self._upload = None
        if upload.atomic:
            self._remove_quietly(upload.path)
        self._settle(upload, False)

    def _drop_upload(self) -> None:
        """Forget an upload whose data connection never came (or never will)."""
        upload = self._upload
        if upload is None:
            return
        channel = getattr(self, "data_channel", None)
        if channel is not None and upload.file is not None and channel.file_obj is upload.file:
            return  # its channel is open: it finishes there
        self._upload = None
        if upload.file is not None and not upload.file.closed:
            with contextlib.suppress(Exception):
                upload.file.close()
        self.finish_upload(upload, False)

    def ftp_ABOR(self, line: str) -> Any:
        result = super().ftp_ABOR(line)
        if self._upload is not None and self._in_dtp_queue is None and self.data_channel is None:
            self._drop_upload()
        return result

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._upload is not None and self.fs is not None:
                self._drop_upload()
