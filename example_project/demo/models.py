from django.db import models


class FTPAuditLog(models.Model):
    """One FTP event worth keeping: a login, an upload, a download, a delete, a refusal."""

    class EventType(models.TextChoices):
        LOGIN = "login", "Login"
        UPLOAD = "upload", "Upload"
        DOWNLOAD = "download", "Download"
        DELETE = "delete", "Delete"
        REFUSED = "refused", "Refused"

    event_type = models.CharField(max_length=20, choices=EventType.choices)
    username = models.CharField(max_length=150)
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    #: The file's real path on the server's filesystem (the signal's ``path``).
    path = models.CharField(max_length=1024, blank=True)
    #: Why the operation was refused (refusals only).
    reason = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = "FTP audit log entry"
        verbose_name_plural = "FTP audit log"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.username} {self.event_type} {self.path}"
