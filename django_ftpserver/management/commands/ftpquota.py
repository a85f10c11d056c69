"""``manage.py ftpquota show|recalc [USERNAME]``: storage quotas and usage."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver import models
from django_ftpserver.policy import quotas


def accounts_named(username: str | None) -> Any:
    """The account of ``username``, or every account; ``CommandError`` for an unknown one."""
    accounts = models.FTPUserAccount.objects.select_related("user", "group").order_by("pk")
    if username is None:
        return accounts
    field = get_user_model().USERNAME_FIELD
    found = accounts.filter(**{f"user__{field}": username})
    if not found.exists():
        raise CommandError(f'FTP user account "{username}" does not exist.')
    return found


class Command(BaseCommand):
    help = "Show the quota and usage of FTP accounts, or count the usage again from the storage."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        show = actions.add_parser("show", help="quota and stored usage")
        show.add_argument("username", nargs="?", help="one account (default: all)")
        recalc = actions.add_parser("recalc", help="count the usage from the storage")
        recalc.add_argument("username", nargs="?", help="one account (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = accounts_named(options.get("username"))
        if options["action"] == "recalc":
            for account in accounts:
                try:
                    usage = quotas.recount(account)
                except Exception as exc:
                    raise CommandError(
                        f'could not count the usage of "{account.get_username()}" in '
                        f"{account.get_home_dir()}: {exc}"
                    ) from None
                self.stdout.write(
                    f"{account.get_username()}: {usage.bytes} bytes in {usage.files} files"
                )
            return
        if not accounts:
            self.stdout.write("No FTP user accounts found.")
            return
        self.stdout.write(
            f"{'Username':<20} {'Bytes used':>14} {'Quota':>10} {'Files':>8} {'Quota':>8}"
        )
        for account in accounts:
            limits = account.get_limits() or quotas.Limits()
            counted = account.usage_counted_at is not None
            self.stdout.write(
                f"{account.get_username():<20} "
                f"{account.used_bytes if counted else 'not counted':>14} "
                f"{quotas.format_size(limits.max_bytes) if limits.max_bytes else 'none':>10} "
                f"{account.used_files if counted else '-':>8} "
                f"{limits.max_files or 'none':>8}"
            )
