"""The app's ``AppConfig``: 1.0's AutoField ids, and the system checks registered at start."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoFtpserverConfig(AppConfig):
    name = "django_ftpserver"
    verbose_name = _("FTP server")
    # The published 0001_initial created AutoField ids; keep them.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
