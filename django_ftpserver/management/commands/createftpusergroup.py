from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_ftpserver import models
from django_ftpserver.management.commands.ftppathrule import parse_rules, set_rules
from django_ftpserver.policy import quotas

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


def add_quota_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--quota-bytes",
        metavar="SIZE",
        help="most bytes stored per account, e.g. 500M or 10G (0: no limit)",
    )
    parser.add_argument(
        "--quota-files", metavar="N", help="most files stored per account (0: no limit)"
    )


def quota_fields(options: dict[str, Any]) -> dict[str, int]:
    """The quota fields given with ``--quota-bytes``/``--quota-files``; ``CommandError`` if bad."""
    fields: dict[str, int] = {}
    if options.get("quota_bytes") is not None:
        try:
            fields["quota_bytes"] = quotas.parse_size(options["quota_bytes"])
        except ValueError as exc:
            raise CommandError(f"invalid --quota-bytes: {exc}") from None
        if fields["quota_bytes"] >= 2**63:
            raise CommandError(f"invalid --quota-bytes {options['quota_bytes']!r}: too large")
    if options.get("quota_files") is not None:
        text = options["quota_files"]
        if not text.isdigit() or int(text) >= 2**31:
            raise CommandError(f"invalid --quota-files {text!r}: give a whole number below 2**31")
        fields["quota_files"] = int(text)
    return fields


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
        add_quota_arguments(parser)

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
        fields.update(quota_fields(options))
        rules = parse_rules(options.get("path_rules"))
        with transaction.atomic():
            group = models.FTPUserGroup.objects.create(**fields)
            set_rules(group, rules)
        self.stdout.write(f'FTP user group pk={group.pk}, "{name}" was created.')
