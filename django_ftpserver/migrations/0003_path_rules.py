# Per-path permissions for groups and accounts (FTPPathRule).

import django.db.models.deletion
from django.db import migrations, models

import django_ftpserver.models


class Migration(migrations.Migration):
    dependencies = [
        ("django_ftpserver", "0002_permission_letters"),
    ]

    operations = [
        migrations.CreateModel(
            name="FTPPathRule",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "path",
                    models.CharField(
                        help_text="A path inside the home as the FTP client sees it, e.g. /incoming. The rule covers everything below it.",
                        max_length=255,
                        validators=[django_ftpserver.models.validate_rule_path],
                        verbose_name="Path",
                    ),
                ),
                (
                    "permission",
                    models.CharField(
                        blank=True,
                        help_text="pyftpdlib letters for this path: e=cd, l=list, r=download, a=append, d=delete, f=rename, m=mkdir, w=upload, M=chmod, T=set mtime. Empty: nothing is allowed.",
                        max_length=10,
                        validators=[django_ftpserver.models.validate_rule_permission],
                        verbose_name="Permission",
                    ),
                ),
                (
                    "account",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="path_rules",
                        to="django_ftpserver.ftpuseraccount",
                        verbose_name="FTP user account",
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="path_rules",
                        to="django_ftpserver.ftpusergroup",
                        verbose_name="FTP user group",
                    ),
                ),
            ],
            options={
                "verbose_name": "FTP path rule",
                "verbose_name_plural": "FTP path rules",
                "ordering": ("path",),
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("account__isnull", True), ("group__isnull", False)),
                            models.Q(("account__isnull", False), ("group__isnull", True)),
                            _connector="OR",
                        ),
                        name="django_ftpserver_pathrule_one_owner",
                        violation_error_message="A path rule belongs to a group or to an account.",
                    ),
                    models.UniqueConstraint(
                        fields=("group", "path"), name="django_ftpserver_pathrule_group_path"
                    ),
                    models.UniqueConstraint(
                        fields=("account", "path"), name="django_ftpserver_pathrule_account_path"
                    ),
                ],
            },
        ),
    ]
