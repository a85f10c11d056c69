from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_ftpserver import models
from django_ftpserver.management.commands.createftpusergroup import (
    add_quota_arguments,
    quota_fields,
    validate_home_dir,
)
from django_ftpserver.management.commands.ftppathrule import parse_rules, set_rules


class Command(BaseCommand):
    help = "Give an existing Django user an FTP account in a group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("group")
        parser.add_argument("home_dir", nargs="?")
        parser.add_argument(
            "--path-rule",
            dest="path_rules",
            action="append",
            metavar="PATH=PERMISSION",
            help="the account's own permission for a path, e.g. /reports=elr (repeatable)",
        )
        add_quota_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        username, group_name = options["username"], options["group"]
        home_dir = validate_home_dir(options.get("home_dir"))
        User = get_user_model()
        if models.FTPUserAccount.objects.filter(
            **{f"user__{User.USERNAME_FIELD}": username}
        ).exists():
            raise CommandError(f'FTP user account "{username}" already exists.')
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f'User "{username}" does not exist.') from None
        try:
            group = models.FTPUserGroup.objects.get(name=group_name)
        except models.FTPUserGroup.DoesNotExist:
            raise CommandError(f'FTP user group "{group_name}" does not exist.') from None
        quota = quota_fields(options)
        rules = parse_rules(options.get("path_rules"))
        with transaction.atomic():
            account = models.FTPUserAccount.objects.create(
                user=user, group=group, home_dir=home_dir, **quota
            )
            set_rules(account, rules)
        self.stdout.write(f'FTP user account pk={account.pk}, "{username}" was created.')
