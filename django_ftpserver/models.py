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

from .auth import permissions
from .auth.permissions import ALL_PERMS, READ_PERMS, WRITE_PERMS  # noqa: F401  (published here)
from .policy import quotas


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


class QuotaFields(models.Model):
    """The quota fields, the same on a group and on an account.

    Empty (``None``) means something different on each: no limit on a
    group, the group's quota on an account (see :meth:`FTPUserAccount.get_limits`).
    So each model words the help texts with :meth:`word_quota_help`, called
    right after its class; the fields' type, label and options live here once.
    """

    quota_bytes = models.PositiveBigIntegerField(_("Quota (bytes)"), null=True, blank=True)
    quota_files = models.PositiveIntegerField(_("Quota (files)"), null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def word_quota_help(cls, quota_bytes: str, quota_files: str) -> None:
        """Set this model's help texts of the quota fields (each model has its own copy)."""
        cls._meta.get_field("quota_bytes").help_text = quota_bytes
        cls._meta.get_field("quota_files").help_text = quota_files


class FTPUserGroup(QuotaFields):
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


FTPUserGroup.word_quota_help(
    _("Most bytes each account of the group may store. Empty or 0: no limit."),
    _("Most files each account of the group may store. Empty or 0: no limit."),
)


class FTPUserAccount(QuotaFields):
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
    used_bytes = models.BigIntegerField(_("Bytes used"), default=0, editable=False)
    used_files = models.IntegerField(_("Files used"), default=0, editable=False)
    usage_counted_at = models.DateTimeField(
        _("Usage counted"),
        null=True,
        editable=False,
        help_text=_("When the usage was last counted from the storage; empty: never."),
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
        """The group's permission: what applies where no path rule matches."""
        return self.group.permission

    def get_limits(self) -> quotas.Limits | None:
        """The quota that applies: the account's values, else its group's; None: no limit."""
        return quotas.Limits.resolve(
            self.quota_bytes,
            self.quota_files,
            self.group.quota_bytes if self.group_id else None,
            self.group.quota_files if self.group_id else None,
        )

    def get_path_rules(self) -> permissions.PathRules:
        """This account's path rules and its group's, in one query."""
        account_rules: dict[str, str] = {}
        group_rules: dict[str, str] = {}
        rules = FTPPathRule.objects.filter(
            models.Q(account_id=self.pk) | models.Q(group_id=self.group_id)
        ).values_list("account_id", "path", "permission")
        for account_id, path, permission in rules:
            (account_rules if account_id is not None else group_rules)[path] = permission
        return permissions.PathRules(self.get_perms(), account_rules, group_rules)

    def to_ftp_path(self, path: str) -> str:
        """``path`` as the client sees it.

        A filesystem path under the home (what pyftpdlib passes) is mapped
        to the client-visible path; anything else is taken as a
        client-visible path already (``"/incoming/a.txt"``).
        """
        mapped = permissions.ftp_path_in_home(path, self.get_home_dir())
        return mapped if mapped is not None else "/" + path.lstrip("/")

    def has_perm(self, perm: str, path: str | None = None) -> bool:
        """Whether ``perm`` (one pyftpdlib letter) is allowed at ``path``.

        Without a path, the group's permission answers. With one, the path
        rules do (see :mod:`django_ftpserver.auth.permissions`). This runs
        queries; a logged-in session answers from the snapshot it loaded.
        """
        if path is None:
            return perm in self.get_perms()
        return self.get_path_rules().has_perm(perm, self.to_ftp_path(path))


def validate_rule_path(value: str) -> None:
    try:
        permissions.normalize_rule_path(value)
    except permissions.InvalidRule as exc:
        raise ValidationError(str(exc), code="invalid_path") from None


def validate_rule_permission(value: str) -> None:
    try:
        permissions.validate_permission_letters(value)
    except permissions.InvalidRule as exc:
        raise ValidationError(str(exc), code="invalid_permission") from None


#: A path rule has exactly one owner.
ONE_OWNER = models.Q(group__isnull=False, account__isnull=True) | models.Q(
    group__isnull=True, account__isnull=False
)


FTPUserAccount.word_quota_help(
    _("Most bytes this account may store. Empty: the group's; 0: no limit."),
    _("Most files this account may store. Empty: the group's; 0: no limit."),
)


class FTPPathRule(models.Model):
    """A permission for a path inside the home, owned by a group or by an account.

    Exactly one of ``group`` and ``account`` is set. For a path, the rule
    with the longest matching path wins; at the same path an account's rule
    beats its group's. See :mod:`django_ftpserver.auth.permissions`.
    """

    group = models.ForeignKey(
        FTPUserGroup,
        verbose_name=_("FTP user group"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="path_rules",
    )
    account = models.ForeignKey(
        FTPUserAccount,
        verbose_name=_("FTP user account"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="path_rules",
    )
    path = models.CharField(
        _("Path"),
        max_length=permissions.MAX_RULE_PATH_LENGTH,
        validators=[validate_rule_path],
        help_text=_(
            "A path inside the home as the FTP client sees it, e.g. /incoming. "
            "The rule covers everything below it."
        ),
    )
    permission = models.CharField(
        _("Permission"),
        max_length=10,
        blank=True,
        validators=[validate_rule_permission],
        help_text=_(
            "pyftpdlib letters for this path: e=cd, l=list, r=download, a=append, "
            "d=delete, f=rename, m=mkdir, w=upload, M=chmod, T=set mtime. "
            "Empty: nothing is allowed."
        ),
    )

    class Meta:
        verbose_name = _("FTP path rule")
        verbose_name_plural = _("FTP path rules")
        ordering = ("path",)
        constraints = [
            models.CheckConstraint(
                condition=ONE_OWNER,
                name="django_ftpserver_pathrule_one_owner",
                violation_error_message=_("A path rule belongs to a group or to an account."),
            ),
            models.UniqueConstraint(
                fields=["group", "path"], name="django_ftpserver_pathrule_group_path"
            ),
            models.UniqueConstraint(
                fields=["account", "path"], name="django_ftpserver_pathrule_account_path"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path}={self.permission}"

    @property
    def owner(self) -> FTPUserGroup | FTPUserAccount | None:
        return self.account if self.account_id is not None else self.group

    def clean(self) -> None:
        super().clean()
        if self.path:
            try:
                self.path = permissions.normalize_rule_path(self.path)
            except permissions.InvalidRule as exc:
                raise ValidationError({"path": str(exc)}) from None

    def save(self, *args, **kwargs) -> None:
        # Stored normalized whatever the entry point, so lookups by path match.
        self.path = permissions.normalize_rule_path(self.path)
        super().save(*args, **kwargs)


class FTPSession(models.Model):
    """Not a table: the admin's "FTP sessions" page and who may use it.

    The sessions themselves live in the cache (``ops.sessions``); this
    model only gives the page its place in the app's admin section and its
    two permissions: ``view_ftpsession`` (list every server's sessions)
    and ``disconnect_ftpsession`` (end one).
    """

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("disconnect_ftpsession", "Can disconnect FTP sessions")]
        verbose_name = _("FTP session")
        verbose_name_plural = _("FTP sessions")
