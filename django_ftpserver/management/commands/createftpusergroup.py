from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_ftpserver import models
from django_ftpserver.management.commands.ftppathrule import parse_rules, set_rules


def validate_permission(permission: str) -> str:
    """Return ``permission`` if it only has pyftpdlib letters, else raise ``CommandError``."""
    if not permission or set(permission) - set(models.ALL_PERMS):
        raise CommandError(
            f"invalid permission {permission!r}: use letters of {models.ALL_PERMS!r}"
        )
    return permission


class Command(BaseCommand):
    help = "Create an FTP user group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("home_dir", nargs="?")
        parser.add_argument("--permission", dest="permission", help="e.g. elradfmw (default)")
        parser.add_argument(
            "--path-rule",
            dest="path_rules",
            action="append",
            metavar="PATH=PERMISSION",
            help="permission for a path inside the home, e.g. /incoming=w (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if not name or len(name) > 30:
            raise CommandError(f"invalid group name {name!r}: 1 to 30 characters")
        if models.FTPUserGroup.objects.filter(name=name).exists():
            raise CommandError(f'FTP user group "{name}" already exists.')
        fields: dict[str, Any] = {"name": name, "home_dir": options.get("home_dir")}
        if options.get("permission"):
            fields["permission"] = validate_permission(options["permission"])
        rules = parse_rules(options.get("path_rules"))
        with transaction.atomic():
            group = models.FTPUserGroup.objects.create(**fields)
            set_rules(group, rules)
        self.stdout.write(f'FTP user group pk={group.pk}, "{name}" was created.')
