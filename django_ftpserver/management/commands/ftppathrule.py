"""``manage.py ftppathrule add|remove|list|show``: per-path permissions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver import models
from django_ftpserver.auth import permissions


def get_owner(options: dict[str, Any]) -> models.FTPUserGroup | models.FTPUserAccount | None:
    """The group or account named by ``--group``/``--account``; ``CommandError`` if unknown."""
    if options.get("group"):
        name = options["group"]
        try:
            return models.FTPUserGroup.objects.get(name=name)
        except models.FTPUserGroup.DoesNotExist:
            raise CommandError(f'FTP user group "{name}" does not exist.') from None
    if options.get("account"):
        username = options["account"]
        field = get_user_model().USERNAME_FIELD
        try:
            return models.FTPUserAccount.objects.select_related("user", "group").get(
                **{f"user__{field}": username}
            )
        except models.FTPUserAccount.DoesNotExist:
            raise CommandError(f'FTP user account "{username}" does not exist.') from None
    return None


def owner_filter(owner: models.FTPUserGroup | models.FTPUserAccount) -> dict[str, Any]:
    if isinstance(owner, models.FTPUserAccount):
        return {"account": owner}
    return {"group": owner}


def describe(owner: models.FTPUserGroup | models.FTPUserAccount) -> str:
    if isinstance(owner, models.FTPUserAccount):
        return f'account "{owner.get_username()}"'
    return f'group "{owner.name}"'


def set_rules(
    owner: models.FTPUserGroup | models.FTPUserAccount, rules: list[tuple[str, str]]
) -> list[tuple[models.FTPPathRule, bool]]:
    """Create or update ``(path, permission)`` rules of ``owner``; paths already normalized."""
    return [
        models.FTPPathRule.objects.update_or_create(
            **owner_filter(owner), path=path, defaults={"permission": permission}
        )
        for path, permission in rules
    ]


def parse_rules(texts: list[str] | None) -> list[tuple[str, str]]:
    """Parse repeated ``--path-rule PATH=PERMISSION`` options; ``CommandError`` if bad."""
    try:
        return [permissions.parse_rule(text) for text in texts or []]
    except permissions.InvalidRule as exc:
        raise CommandError(str(exc)) from None


def add_owner_arguments(parser: CommandParser, required: bool) -> None:
    owner = parser.add_mutually_exclusive_group(required=required)
    owner.add_argument("--group", help="name of the FTP user group")
    owner.add_argument("--account", help="username of the FTP user account")


class Command(BaseCommand):
    help = (
        "Add, remove, list or explain per-path permissions of FTP groups and accounts. "
        "The longest matching path wins; at the same path, an account's rule beats its group's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="add a rule, or change the permission of one")
        add_owner_arguments(add, required=True)
        add.add_argument("path", help="path inside the home, as clients see it: /incoming")
        add.add_argument("permission", help="pyftpdlib letters, e.g. w or elr ('' = nothing)")
        remove = actions.add_parser("remove", help="remove a rule")
        add_owner_arguments(remove, required=True)
        remove.add_argument("path")
        listing = actions.add_parser("list", help="list rules (all, or of a group or account)")
        add_owner_arguments(listing, required=False)
        show = actions.add_parser("show", help="the permission an account has at a path")
        show.add_argument("--account", required=True, help="username of the FTP user account")
        show.add_argument("path")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['action']}")(options)

    def _path(self, text: str) -> str:
        try:
            return permissions.normalize_rule_path(text)
        except permissions.InvalidRule as exc:
            raise CommandError(str(exc)) from None

    def handle_add(self, options: dict[str, Any]) -> None:
        path = self._path(options["path"])
        try:
            permission = permissions.validate_permission_letters(options["permission"])
        except permissions.InvalidRule as exc:
            raise CommandError(str(exc)) from None
        owner = get_owner(options)
        [(rule, created)] = set_rules(owner, [(path, permission)])
        verb = "added" if created else "updated"
        self.stdout.write(f"Path rule {rule.path}={rule.permission} of {describe(owner)} {verb}.")

    def handle_remove(self, options: dict[str, Any]) -> None:
        path = self._path(options["path"])
        owner = get_owner(options)
        deleted, _ = models.FTPPathRule.objects.filter(**owner_filter(owner), path=path).delete()
        if not deleted:
            raise CommandError(f"{describe(owner).capitalize()} has no path rule on {path}.")
        self.stdout.write(f"Path rule on {path} of {describe(owner)} removed.")

    def handle_list(self, options: dict[str, Any]) -> None:
        owner = get_owner(options)
        rules = models.FTPPathRule.objects.select_related("group", "account__user")
        if isinstance(owner, models.FTPUserAccount):
            # The account's own rules and the group's, which apply to it too.
            rules = rules.filter(account=owner) | rules.filter(group_id=owner.group_id)
        elif owner is not None:
            rules = rules.filter(group=owner)
        rules = rules.order_by("path", "account_id")
        if not rules:
            self.stdout.write("No path rules found.")
            return
        self.stdout.write(f"{'Path':<40} {'Permission':<10} Owner")
        self.stdout.write("-" * 80)
        for rule in rules:
            permission = rule.permission or '""'
            self.stdout.write(f"{rule.path:<40} {permission:<10} {describe(rule.owner)}")

    def handle_show(self, options: dict[str, Any]) -> None:
        account = get_owner(options)
        path = self._path(options["path"])
        perms, source, rule_path = account.get_path_rules().explain(path)
        if source is None:
            why = f'no rule matches: the permission of group "{account.group.name}"'
        elif source == "account":
            why = f"the account's rule on {rule_path}"
        else:
            why = f'the rule on {rule_path} of group "{account.group.name}"'
        self.stdout.write(f'{account.get_username()} at {path}: "{perms}" ({why})')
