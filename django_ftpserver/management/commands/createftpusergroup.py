from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_ftpserver import models
from django_ftpserver.management.commands.ftppathrule import parse_rules, set_rules

HOME_DIR_MAX_LENGTH = models.FTPUserGroup._meta.get_field("home_dir").max_length


def validate_permission(permission: str) -> str:
    """Return ``permission`` if it has pyftpdlib letters, each once; else raise ``CommandError``.

    A repeated letter is refused too: it is a typo, and eleven letters or more
    do not fit the column (a database error instead of a message).
    """
    error = models.permission_error(permission)
    if error:
        raise CommandError(f"invalid permission {permission!r}: {error}")
    return permission


def validate_home_dir(home_dir: str | None) -> str | None:
    """Return ``home_dir`` if it fits the column, else raise ``CommandError``."""
    if home_dir is not None and len(home_dir) > HOME_DIR_MAX_LENGTH:
        raise CommandError(
            f"home directory too long ({len(home_dir)} characters, at most "
            f"{HOME_DIR_MAX_LENGTH}): {home_dir[:40]!r}..."
        )
    return home_dir


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
        fields: dict[str, Any] = {
            "name": name,
            "home_dir": validate_home_dir(options.get("home_dir")),
        }
        if options.get("permission"):
            fields["permission"] = validate_permission(options["permission"])
        rules = parse_rules(options.get("path_rules"))
        with transaction.atomic():
            group = models.FTPUserGroup.objects.create(**fields)
            set_rules(group, rules)
        self.stdout.write(f'FTP user group pk={group.pk}, "{name}" was created.')
