"""``manage.py disconnectftpsession ID``: end an FTP session, on whichever server."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ftpserver.ops import sessions as livesessions


class Command(BaseCommand):
    help = "Disconnect an FTP session (an ID from listftpsessions); its server closes it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("session_id", metavar="ID", help="a session ID from listftpsessions.")
        parser.add_argument(
            "--wait",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="seconds to wait for the session to end (default 5; 0: do not wait).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if livesessions.cache_alias() is None:
            raise CommandError("sessions are not published (FTPSERVER_SESSIONS_CACHE = False)")
        if livesessions.cache_is_process_local():
            self.stderr.write(f"Warning: {livesessions.PROCESS_LOCAL_WARNING}.")
        session_id = options["session_id"]
        session = livesessions.request_disconnect(session_id)
        if session is None:
            raise CommandError(f"no open FTP session {session_id!r} (see listftpsessions)")
        who = session.username or "a client not logged in"
        self.stdout.write(
            f"Asked {session.server} to disconnect session {session_id} ({who} from "
            f"{session.remote})."
        )
        deadline = time.monotonic() + max(0.0, options["wait"])
        while time.monotonic() < deadline:
            if livesessions.get_session(session_id) is None:
                self.stdout.write("The session is closed.")
                return
            time.sleep(0.2)
        if options["wait"] > 0:
            raise CommandError(
                f"session {session_id} is still listed after {options['wait']:g} s: "
                f"is its server ({session.server}) running?"
            )
