"""``manage.py listftpsessions``: the open FTP sessions of every server."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand

from django_ftpserver.ops import sessions as livesessions


class Command(BaseCommand):
    help = "List the open FTP sessions of every server sharing the sessions cache."

    def handle(self, *args: Any, **options: Any) -> None:
        if livesessions.cache_alias() is None:
            self.stdout.write("Sessions are not published (FTPSERVER_SESSIONS_CACHE = False).")
            return
        if livesessions.cache_is_process_local():
            self.stderr.write(f"Warning: {livesessions.PROCESS_LOCAL_WARNING}.")
        sessions = livesessions.list_sessions()
        if not sessions:
            self.stdout.write("No FTP session is open.")
            return
        self.stdout.write(
            f"{'Session':<16} {'Server':<24} {'User':<16} {'Remote address':<24} "
            f"{'Since (UTC)':<19} {'Command':<8} {'Bytes':>12}"
        )
        for session in sessions:
            since = datetime.datetime.fromtimestamp(session.since, datetime.timezone.utc)
            self.stdout.write(
                f"{session.id:<16} {session.server:<24} {session.username or '-':<16} "
                f"{session.remote:<24} {since:%Y-%m-%d %H:%M:%S} {session.command or '-':<8} "
                f"{session.bytes_moved:>12}"
            )
