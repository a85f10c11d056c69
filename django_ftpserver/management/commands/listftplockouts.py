"""``manage.py listftplockouts``: the client addresses locked out now."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand

from django_ftpserver.auth import lockout


class Command(BaseCommand):
    help = "List the client addresses locked out after failed FTP logins."

    def handle(self, *args: Any, **options: Any) -> None:
        if not lockout.enabled():
            self.stdout.write("Lockout is off (FTPSERVER_LOCKOUT_FAILURES = 0).")
            return
        if lockout.cache_is_process_local():
            self.stderr.write(f"Warning: {lockout.PROCESS_LOCAL_WARNING}.")
        lockouts = lockout.list_lockouts()
        if not lockouts:
            self.stdout.write("No addresses are locked out.")
            return
        self.stdout.write(f"{'Address':<40} {'Until (UTC)':<20} {'Left':>6}  Last username")
        for item in lockouts:
            until = datetime.datetime.fromtimestamp(item.until, datetime.timezone.utc)
            self.stdout.write(
                f"{item.address:<40} {until:%Y-%m-%d %H:%M:%S} {round(item.remaining):>5}s"
                f"  {item.username!r}"
            )
