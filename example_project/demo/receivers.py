"""Receivers for django_ftpserver's signals: an access log, an audit table, a policy.

Connected by importing this module in ``DemoConfig.ready()``. They run on the
FTP session's own thread. The after-signals (``ftp_login``,
``ftp_file_received``...) are sent once the operation succeeded; an
exception there is logged by django_ftpserver and never breaks the FTP
session. ``ftp_pre_upload`` is sent before an upload: raising
``PermissionDenied`` there refuses it. Every receiver takes ``**kwargs``:
signals may gain arguments.
"""

import logging
import posixpath

from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from django_ftpserver.models import FTPUserAccount
from django_ftpserver.signals import (
    ftp_file_deleted,
    ftp_file_received,
    ftp_file_sent,
    ftp_login,
    ftp_login_failed,
    ftp_logout,
    ftp_pre_upload,
    ftp_quota_exceeded,
)

from .models import FTPAuditLog

logger = logging.getLogger("ftp.access")

#: The group whose accounts may upload only these file types.
PARTNERS_GROUP = "partners"
PARTNER_EXTENSIONS = (".csv", ".txt")


def audit_refusal(username, remote_ip, path, reason):
    logger.warning("FTP refused: user=%s, ip=%s, path=%s: %s", username, remote_ip, path, reason)
    FTPAuditLog.objects.create(
        event_type=FTPAuditLog.EventType.REFUSED,
        username=username,
        remote_ip=remote_ip,
        path=path or "",
        reason=reason,
    )


@receiver(ftp_pre_upload)
def partners_upload_csv_only(sender, username, ftp_path, path, remote_ip, **kwargs):
    """Accounts of the "partners" group may upload .csv and .txt files only."""
    extension = posixpath.splitext(ftp_path or "")[1].lower()
    if extension in PARTNER_EXTENSIONS:
        return
    if FTPUserAccount.objects.filter(user__username=username, group__name=PARTNERS_GROUP).exists():
        reason = f"Partners upload {' and '.join(PARTNER_EXTENSIONS)} files only."
        audit_refusal(username, remote_ip, path, reason)
        raise PermissionDenied(reason)


@receiver(ftp_quota_exceeded)
def audit_quota_exceeded(sender, username, path, remote_ip, **kwargs):
    audit_refusal(username, remote_ip, path, "Quota exceeded.")


@receiver(ftp_login)
def log_login(sender, username, remote_ip, **kwargs):
    logger.info("FTP login: user=%s, ip=%s", username, remote_ip)
    FTPAuditLog.objects.create(
        event_type=FTPAuditLog.EventType.LOGIN, username=username, remote_ip=remote_ip
    )


@receiver(ftp_logout)
def log_logout(sender, username, remote_ip, **kwargs):
    logger.info("FTP logout: user=%s, ip=%s", username, remote_ip)


@receiver(ftp_login_failed)
def log_login_failed(sender, username, remote_ip, **kwargs):
    # The signal never carries the password.
    logger.warning("FTP login failed: user=%s, ip=%s", username, remote_ip)


@receiver(ftp_file_received)
def audit_upload(sender, username, path, remote_ip, **kwargs):
    logger.info("FTP upload: user=%s, ip=%s, path=%s", username, remote_ip, path)
    FTPAuditLog.objects.create(
        event_type=FTPAuditLog.EventType.UPLOAD,
        username=username,
        remote_ip=remote_ip,
        path=path,
    )


@receiver(ftp_file_sent)
def audit_download(sender, username, path, remote_ip, **kwargs):
    logger.info("FTP download: user=%s, ip=%s, path=%s", username, remote_ip, path)
    FTPAuditLog.objects.create(
        event_type=FTPAuditLog.EventType.DOWNLOAD,
        username=username,
        remote_ip=remote_ip,
        path=path,
    )


@receiver(ftp_file_deleted)
def audit_delete(sender, username, path, remote_ip, **kwargs):
    logger.info("FTP delete: user=%s, ip=%s, path=%s", username, remote_ip, path)
    FTPAuditLog.objects.create(
        event_type=FTPAuditLog.EventType.DELETE,
        username=username,
        remote_ip=remote_ip,
        path=path,
    )
