"""``manage.py clearftplockout ADDRESS... | --all``: lift lockouts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver.auth import lockout


class Command(BaseCommand):
    help = "Lift the lockout of client addresses and forget their failed FTP logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addresses", nargs="*", metavar="ADDRESS", help="IP address (IPv6: address or /64)."
        )
        parser.add_argument(
            "--all", action="store_true", dest="all", help="lift every listed lockout."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        addresses = options["addresses"]
        if options["all"] == bool(addresses):
            raise CommandError("give one or more addresses, or --all")
        if lockout.cache_is_process_local():
            self.stderr.write(f"Warning: {lockout.PROCESS_LOCAL_WARNING}.")
        if options["all"]:
            released = lockout.clear_all()
            self.stdout.write(f"Lifted {len(released)} lockout(s).")
            for address in released:
                self.stdout.write(f"  {address}")
            return
        try:
            normalized = [lockout.normalize_address(address) for address in addresses]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for address in normalized:
            if lockout.clear(address):
                self.stdout.write(f"Lifted the lockout of {address}.")
            else:
                self.stdout.write(f"{address} was not locked out; its failures are forgotten.")
