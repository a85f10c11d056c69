"""``manage.py demo [ADDR]``: set up demo FTP accounts and serve them.

Everything ``make demo`` needs in one command, safe to run again: migrate,
create (or reset) the Django user ``demo`` with password ``demo``, give it an
FTP account whose home is ``<FTP homes>/demo`` and a quota, create the
account ``partner`` (password ``partner``) in the group ``partners``, which
may upload only .csv and .txt files (``demo/receivers.py``), print how to
connect, then run ``manage.py ftpserver ADDR`` (with ``--metrics
HOST:PORT`` if given) in the foreground until CONTROL-C.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from django_ftpserver.management.commands.ftpserver import parse_host_port
from django_ftpserver.models import FTPUserAccount, FTPUserGroup

USERNAME = "demo"
PASSWORD = "demo"
GROUP = "demo"
#: Every pyftpdlib permission: list, download, upload, delete, rename, mkdir...
PERMISSION = "elradfmwMT"
DEFAULT_ADDR = "127.0.0.1:2121"
#: The demo account's quota, shown with its usage in the admin.
QUOTA_BYTES = 100 * 1024 * 1024
QUOTA_FILES = 1000
#: An account of the group whose uploads a receiver restricts to some file types.
PARTNER = "partner"
PARTNER_GROUP = "partners"

#: What the demo user may look at in the admin (read only).
ADMIN_VIEW_PERMISSIONS = [
    ("demo", "view_ftpauditlog"),
    ("django_ftpserver", "view_ftpusergroup"),
    ("django_ftpserver", "view_ftpuseraccount"),
    # The "FTP sessions" page, and disconnecting one's own test clients there.
    ("django_ftpserver", "view_ftpsession"),
    ("django_ftpserver", "disconnect_ftpsession"),
]


class Command(BaseCommand):
    help = (
        "Create the FTP account demo/demo (home under the example project's "
        "ftp-homes/) and run the FTP server on ADDR (default 127.0.0.1:2121)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addr",
            nargs="?",
            default=DEFAULT_ADDR,
            help=f"HOST:PORT to serve on (default {DEFAULT_ADDR}; port 0 picks a free one).",
        )
        parser.add_argument(
            "--metrics",
            metavar="HOST:PORT",
            help="also serve /metrics, /healthz and /readyz there (as manage.py ftpserver "
            "--metrics; needs prometheus_client).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        addr = options["addr"]
        host, port = parse_host_port(addr)  # a bad ADDR fails here, before any change
        call_command("migrate", interactive=False, verbosity=0)
        home = self.set_up_account()
        self.print_instructions(host, port, home)
        # The server's "Serving FTP on host:port" line must reach a pipe
        # (a log file, a test reading the real port) as soon as it is printed.
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        extra = {"metrics": options["metrics"]} if options.get("metrics") else {}
        call_command("ftpserver", addr, **extra)

    @transaction.atomic
    def set_up_account(self) -> str:
        """Create or reset the demo user, group and account; return the home path."""
        home = settings.FTP_HOMES_DIR / USERNAME
        home.mkdir(parents=True, exist_ok=True)
        welcome = home / "welcome.txt"
        if not welcome.exists():
            welcome.write_text("Hello from the django-ftpserver demo.\n")

        User = get_user_model()
        user, created = User.objects.get_or_create(username=USERNAME)
        user.set_password(PASSWORD)
        user.is_active = True
        # Staff with view permissions only (enough to read the audit log in
        # the admin, nothing to change there), and disconnecting FTP sessions.
        user.is_staff = True
        user.save()
        for app_label, codename in ADMIN_VIEW_PERMISSIONS:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )

        group, _ = FTPUserGroup.objects.update_or_create(
            name=GROUP, defaults={"permission": PERMISSION}
        )
        FTPUserAccount.objects.update_or_create(
            user=user,
            defaults={
                "group": group,
                "home_dir": str(home),
                "quota_bytes": QUOTA_BYTES,
                "quota_files": QUOTA_FILES,
                # Counted again from the home at the first upload.
                "usage_counted_at": None,
            },
        )
        self.stdout.write(
            f"{'Created' if created else 'Reset'} the user {USERNAME!r} "
            f"(password {PASSWORD!r}) with an FTP account in group {GROUP!r}, "
            f"quota {QUOTA_BYTES // (1024 * 1024)} MB and {QUOTA_FILES} files."
        )

        partner_home = settings.FTP_HOMES_DIR / PARTNER
        partner_home.mkdir(parents=True, exist_ok=True)
        partner, _ = User.objects.get_or_create(username=PARTNER)
        partner.set_password(PARTNER)
        partner.is_active = True
        partner.save()
        partners, _ = FTPUserGroup.objects.update_or_create(
            name=PARTNER_GROUP, defaults={"permission": "elrw"}
        )
        FTPUserAccount.objects.update_or_create(
            user=partner, defaults={"group": partners, "home_dir": str(partner_home)}
        )
        self.stdout.write(
            f"The user {PARTNER!r} (password {PARTNER!r}) may upload .csv and .txt files only."
        )
        return str(home)

    def print_instructions(self, host: str, port: int, home: str) -> None:
        connect_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        url_host = f"[{connect_host}]" if ":" in connect_host else connect_host
        shown_port = str(port) if port else "PORT"
        url = f"ftp://{USERNAME}:{PASSWORD}@{url_host}:{shown_port}/"
        lines = [
            f"FTP home directory: {home}",
            f"Database: {settings.DATABASES['default']['NAME']}",
            "",
            "Connect with any FTP client (user demo, password demo):",
            f"  list:      curl {url}",
            f"  upload:    curl -T somefile {url}",
            f"  download:  curl -O {url}welcome.txt",
            f"  lftp:      lftp -u {USERNAME},{PASSWORD} -p {shown_port} {connect_host}",
            f"  ftp:       ftp {connect_host} {shown_port}",
            "",
            "The account partner/partner may upload .csv and .txt files only; other",
            "uploads get '550 Partners upload .csv and .txt files only.':",
            f"  curl -T report.pdf ftp://{PARTNER}:{PARTNER}@{url_host}:{shown_port}/",
            "",
            "Every login, upload, download, delete and refusal is logged below and stored",
            "in the FTPAuditLog table. To browse it (and the demo account's quota and",
            "usage) in the admin, run in another terminal:",
            "  cd example_project && ../.venv/bin/python manage.py runserver",
            "then open http://127.0.0.1:8000/admin/demo/ftpauditlog/ and log in as demo/demo.",
            "The clients connected now (and a Disconnect button) are on",
            "http://127.0.0.1:8000/admin/django_ftpserver/ftpsession/.",
            "",
        ]
        if not port:
            lines.insert(0, "Port 0: the port chosen is in the 'Serving FTP on' line below.")
        self.stdout.write("\n".join(lines))
