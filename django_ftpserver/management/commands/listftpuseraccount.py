from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_ftpserver import models


class Command(BaseCommand):
    help = "List FTP user accounts."

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = models.FTPUserAccount.objects.select_related("user", "group").order_by("pk")
        if not accounts.exists():
            self.stdout.write("No FTP user accounts found.")
            return
        self.stdout.write("FTP User Accounts:")
        self.stdout.write("-" * 80)
        self.stdout.write(f"{'ID':<6} {'Username':<20} {'Group':<20} Home Dir")
        self.stdout.write("-" * 80)
        for account in accounts:
            self.stdout.write(
                f"{account.pk:<6} {account.get_username():<20} {account.group.name:<20} "
                f"{account.home_dir or ''}"
            )
