"""The signals sent for FTP events: definitions only.

Receivers live in the project (``@receiver(ftp_login)`` in an app's
``receivers.py``, imported from ``AppConfig.ready()``). Every signal is sent
with keyword arguments only; receivers must accept ``**kwargs`` because
arguments may be added (``ftp_path`` was). See ``docs/signals.rst`` for what
each one guarantees.
"""

from django.dispatch import Signal

# Server lifecycle. kwargs: server, host, port
ftp_server_started = Signal()
ftp_server_stopped = Signal()

# kwargs: handler, remote_ip, remote_port
ftp_client_connected = Signal()
# kwargs: handler, username (None if the client never logged in), remote_ip
ftp_client_disconnected = Signal()

# Authentication. kwargs: handler, username, remote_ip
ftp_login = Signal()
ftp_login_failed = Signal()  # never carries the password
ftp_logout = Signal()
# Sent once when failed logins lock an address out (see auth/lockout.py); the
# username is the one of the failure that reached the limit.
# kwargs: handler, remote_ip, username
ftp_client_locked_out = Signal()

# Transfers. kwargs: handler, username, path, ftp_path, remote_ip
ftp_file_received = Signal()
ftp_file_sent = Signal()
ftp_file_received_incomplete = Signal()
ftp_file_sent_incomplete = Signal()

# File operations, sent only when the operation succeeded.
# kwargs: handler, username, path, ftp_path, remote_ip
ftp_file_deleted = Signal()
# kwargs: handler, username, path_from, path_to, ftp_path_from, ftp_path_to, remote_ip
ftp_file_renamed = Signal()
# kwargs: handler, username, path, ftp_path, remote_ip
ftp_directory_created = Signal()
ftp_directory_deleted = Signal()

# Sent when an upload was cut for crossing the account's quota (552); its
# partial file was removed. kwargs: handler, username, path, ftp_path, remote_ip
ftp_quota_exceeded = Signal()

# Before the operation: a receiver that raises PermissionDenied("reason")
# refuses it (550 reason; 530 for a login); any other exception refuses too.
# See policy/presignals.py.
# kwargs: handler, username, remote_ip
ftp_pre_login = Signal()
# kwargs: handler, username, path, ftp_path, remote_ip,
#         mode ("STOR", "APPE" or "STOU"), offset (the REST position, 0 if none)
ftp_pre_upload = Signal()
# kwargs: handler, username, path, ftp_path, remote_ip, offset
ftp_pre_download = Signal()
# kwargs: handler, username, path, ftp_path, remote_ip
ftp_pre_delete = Signal()
ftp_pre_mkdir = Signal()
ftp_pre_rmdir = Signal()
# kwargs: handler, username, path_from, path_to, ftp_path_from, ftp_path_to, remote_ip
ftp_pre_rename = Signal()
