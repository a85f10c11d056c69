from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver import models


class Command(BaseCommand):
    help = "Delete a user's FTP account (the Django user is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        field = get_user_model().USERNAME_FIELD
        try:
            account = models.FTPUserAccount.objects.get(**{f"user__{field}": username})
        except models.FTPUserAccount.DoesNotExist:
            raise CommandError(f'FTP user account "{username}" does not exist.') from None
        pk = account.pk
        account.delete()
        self.stdout.write(f'FTP user account pk={pk}, "{username}" was deleted.')
