from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_ftpserver import models


class Command(BaseCommand):
    help = "List FTP user groups."

    def handle(self, *args: Any, **options: Any) -> None:
        groups = models.FTPUserGroup.objects.order_by("pk")
        if not groups.exists():
            self.stdout.write("No FTP user groups found.")
            return
        self.stdout.write("FTP User Groups:")
        self.stdout.write("-" * 80)
        self.stdout.write(f"{'ID':<6} {'Name':<30} {'Permission':<10} Home Dir")
        self.stdout.write("-" * 80)
        for group in groups:
            self.stdout.write(
                f"{group.pk:<6} {group.name:<30} {group.permission:<10} {group.home_dir or ''}"
            )
