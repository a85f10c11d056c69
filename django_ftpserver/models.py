"""FTP groups and accounts, in the tables of django-ftpserver 1.0.

A database migrated by that package keeps working unchanged: same app label,
same table names, same columns (``0001_initial`` creates the same schema).
Schema changes go into later migrations.
"""

from __future__ import annotations

import os
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

#: Every permission letter pyftpdlib knows (see ``pyftpdlib.authorizers``).
READ_PERMS = "elr"
WRITE_PERMS = "adfmwMT"
ALL_PERMS = READ_PERMS + WRITE_PERMS


def permission_error(permission: str) -> str | None:
    """Why ``permission`` is not a set of pyftpdlib letters, or ``None`` if it is."""
    if not permission:
        return "give at least one letter"
    unknown = "".join(sorted(set(permission) - set(ALL_PERMS)))
    if unknown:
        return f"unknown letters {unknown!r}, use letters of {ALL_PERMS!r}"
    if len(set(permission)) != len(permission):
        return "give each letter once"
    return None


class FTPUserGroup(models.Model):
    """A set of FTP accounts sharing permissions and a home directory."""

    name = models.CharField(_("Group name"), max_length=30, unique=True)
    permission = models.CharField(
        _("Permission"),
        # 8 in django-ftpserver 1.0, too short for all ten letters (M, T).
        max_length=10,
        default="elradfmw",
        help_text=_(
            "pyftpdlib permission letters: e=cd, l=list, r=download, a=append, "
            "d=delete, f=rename, m=mkdir, w=upload, M=chmod, T=set mtime."
        ),
    )
    home_dir = models.CharField(
        _("Home directory"),
        max_length=1024,
        null=True,
        blank=True,
        help_text=_("'{username}' is replaced by the account's username."),
    )

    class Meta:
        verbose_name = _("FTP user group")
        verbose_name_plural = _("FTP user groups")

    def __str__(self) -> str:
        return str(self.name)

    def clean(self) -> None:
        # A check in clean(), not a field validator: no migration, and the
        # admin form still refuses letters pyftpdlib would reject at login.
        error = permission_error(self.permission)
        if error:
            raise ValidationError({"permission": error})


class FTPUserAccount(models.Model):
    """The FTP side of a Django user: its group, home and last FTP login."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("User"), on_delete=models.CASCADE
    )
    group = models.ForeignKey(
        FTPUserGroup, verbose_name=_("FTP user group"), on_delete=models.CASCADE
    )
    last_login = models.DateTimeField(_("Last login"), editable=False, null=True)
    home_dir = models.CharField(
        _("Home directory"),
        max_length=1024,
        null=True,
        blank=True,
        help_text=_("Overrides the group's home. '{username}' is replaced."),
    )

    class Meta:
        verbose_name = _("FTP user account")
        verbose_name_plural = _("FTP user accounts")

    def __str__(self) -> str:
        return self.get_username()

    def get_username(self) -> str:
        try:
            user = self.user
        except ObjectDoesNotExist:
            return ""
        return user.get_username() if user else ""

    def update_last_login(self, value: datetime | None = None) -> None:
        """Set ``last_login`` (now by default); the caller saves."""
        self.last_login = value or timezone.now()

    def get_home_dir(self) -> str:
        """The account's home, else the group's, else ``<parent of ~>/{username}``."""
        if self.home_dir:
            directory = self.home_dir
        elif self.group_id and self.group.home_dir:
            directory = self.group.home_dir
        else:
            directory = os.path.join(os.path.dirname(os.path.expanduser("~")), "{username}")
        return directory.replace("{username}", self.get_username())

    def get_perms(self) -> str:
        return self.group.permission

    def has_perm(self, perm: str, path: str | None = None) -> bool:
        return perm in self.get_perms()
