"""Receivers for django_ftpserver's signals: an access log and an audit table.

Connected by importing this module in ``DemoConfig.ready()``. They run on the
FTP session's own thread, after the operation succeeded; an exception here
is logged by django_ftpserver and never breaks the FTP session. Every
receiver takes ``**kwargs``: signals may gain arguments.
"""

import logging

from django.dispatch import receiver

from django_ftpserver.signals import (
    ftp_file_deleted,
    ftp_file_received,
    ftp_file_sent,
    ftp_login,
    ftp_login_failed,
    ftp_logout,
)

from .models import FTPAuditLog

logger = logging.getLogger("ftp.access")


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
