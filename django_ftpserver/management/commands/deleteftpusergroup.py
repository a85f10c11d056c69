from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver import models


class Command(BaseCommand):
    help = "Delete an FTP user group that no account uses."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        try:
            group = models.FTPUserGroup.objects.get(name=name)
        except models.FTPUserGroup.DoesNotExist:
            raise CommandError(f'FTP user group "{name}" does not exist.') from None
        count = models.FTPUserAccount.objects.filter(group=group).count()
        if count:
            raise CommandError(
                f'FTP user group "{name}" has {count} user account(s). Delete them first.'
            )
        pk = group.pk
        group.delete()
        self.stdout.write(f'FTP user group pk={pk}, "{name}" was deleted.')
