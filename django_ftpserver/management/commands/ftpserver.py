"""``manage.py ftpserver [host:port]``: serve FTP (or FTPS) until stopped."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import sys
from typing import Any, TextIO

import pyftpdlib
from django import get_version
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pyftpdlib.log import LogFormatter

from django_ftpserver import utils
from django_ftpserver.checks import exposure_warning
from django_ftpserver.conf import conf, option_or_setting
from django_ftpserver.runner import ConfigError, FTPServerConfig, FTPServerRunner


def parse_host_port(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT`` or ``PORT``; raise ``CommandError``."""
    host: str = conf.HOST
    port_text = text
    if text.startswith("["):
        address, sep, port_text = text[1:].partition("]:")
        if not sep or not address:
            raise CommandError(f"invalid address {text!r}: expected [IPV6]:PORT")
        host = address
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if not host:
            raise CommandError(f"invalid address {text!r}: expected HOST:PORT")
        if ":" in host:  # "::1" would otherwise listen on "::", port 1
            raise CommandError(f"invalid address {text!r}: write IPv6 as [IPV6]:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise CommandError(f"invalid port {port_text!r} in {text!r}: expected a number") from None
    if not 0 <= port <= 65535:
        raise CommandError(f"invalid port {port} in {text!r}: must be 0-65535")
    return host, port


def log_sessions_on_console() -> logging.Handler | None:
    """Print pyftpdlib's session log on standard error, unless logging says where it goes.

    pyftpdlib's own ``serve_forever()`` does the same when nothing is
    configured, and so did django-ftpserver 1.0: a line per connection,
    login, transfer and disconnection, at ``INFO``. The ``pyftpdlib`` logger
    counts as configured when it has a handler or a level of its own or does
    not propagate, or when the root logger has a handler: a project that
    silences it in ``LOGGING`` stays silent. Returns the handler added, if any.
    """
    ftp_logger = logging.getLogger("pyftpdlib")
    if (
        ftp_logger.handlers
        or ftp_logger.level != logging.NOTSET
        or not ftp_logger.propagate
        or logging.getLogger().handlers
    ):
        return None
    handler = logging.StreamHandler()  # sys.stderr now: after a --daemonize, its err_log
    handler.setFormatter(LogFormatter())
    ftp_logger.setLevel(logging.INFO)
    ftp_logger.addHandler(handler)
    return handler


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    """One line for a failed bind, with a hint for privileged ports."""
    # pyftpdlib re-raises a failed bind as OSError(original): unwrap it.
    while exc.errno is None and exc.args and isinstance(exc.args[0], OSError):
        exc = exc.args[0]
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}:{port}: unknown host {host!r}"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        reason += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    elif exc.errno == errno.EADDRINUSE:
        reason += " (another process listens there)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason += " (not an address of this machine)"
    return f"cannot listen on {host}:{port}: {reason}"


class Command(BaseCommand):
    help = "Start the FTP server."
    # The system checks run in handle(), after the configuration was
    # validated: a bad value gets one line naming it, not a check report.
    requires_system_checks: list[str] = []

    #: Limit options: option name -> help. Each wins over its setting,
    #: FTPSERVER_ + the name in capitals with underscores.
    LIMIT_OPTIONS = {
        "max-connections": "most simultaneous clients; more get 421 (FTPSERVER_MAX_CONNECTIONS).",
        "max-connections-per-ip": (
            "most simultaneous clients from one address (IPv6: one /64); 0: no limit"
            " (FTPSERVER_MAX_CONNECTIONS_PER_IP, default 50)."
        ),
        "login-timeout": (
            "seconds a client has to log in before it gets 421; 0: no limit"
            " (FTPSERVER_LOGIN_TIMEOUT, default 60)."
        ),
        "max-pre-login-percent": (
            "share of --max-connections, 1-100, that clients not logged in may take"
            " (FTPSERVER_MAX_PRE_LOGIN_PERCENT, default 80)."
        ),
        "max-login-attempts": (
            "failed logins before a connection is closed (FTPSERVER_MAX_LOGIN_ATTEMPTS)."
        ),
        "read-limit": "upload bytes per second per transfer; 0: no limit (FTPSERVER_READ_LIMIT).",
        "write-limit": (
            "download bytes per second per transfer; 0: no limit (FTPSERVER_WRITE_LIMIT)."
        ),
    }

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-checks", action="store_true", help="skip the Django system checks."
        )
        parser.add_argument("host_port", nargs="?", help="HOST:PORT, [IPV6]:PORT or PORT.")
        parser.add_argument(
            "--daemonize", action="store_true", dest="daemonize", help="run in the background."
        )
        parser.add_argument("--pidfile", dest="pidfile", help="file to write the process id to.")
        parser.add_argument(
            "--timeout", dest="timeout", type=int, help="idle timeout for clients, in seconds."
        )
        parser.add_argument(
            "--passive-ports", dest="passive-ports", help="passive ports, e.g. 60000-60100."
        )
        parser.add_argument(
            "--masquerade-address",
            dest="masquerade-address",
            help="address to announce in PASV replies (behind NAT).",
        )
        parser.add_argument(
            "--file-access-user",
            dest="file-access-user",
            help="system user that file operations run as.",
        )
        parser.add_argument("--certfile", dest="certfile", help="TLS certificate file (FTPS).")
        parser.add_argument("--keyfile", dest="keyfile", help="TLS private key file.")
        parser.add_argument(
            "--sendfile", action="store_true", dest="sendfile", help="use sendfile(2)."
        )
        for flag, help_text in self.LIMIT_OPTIONS.items():
            parser.add_argument(f"--{flag}", dest=flag, type=int, metavar="N", help=help_text)
        parser.add_argument(
            "--metrics",
            dest="metrics",
            metavar="HOST:PORT",
            help=(
                "serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT"
                " (FTPSERVER_METRICS_ADDRESS); needs django-ftpserver[metrics]."
            ),
        )

    def build_config(self, options: dict[str, Any]) -> FTPServerConfig:
        """The server configuration: command-line options over settings.

        Each option falls back to its setting through
        :func:`django_ftpserver.conf.option_or_setting`; the address
        argument, one option for two settings, falls back to both.
        """
        if options.get("host_port"):
            host, port = parse_host_port(options["host_port"])
        else:
            host, port = conf.HOST, conf.PORT
        passive = option_or_setting(options.get("passive-ports"), "FTPSERVER_PASSIVE_PORTS")
        passive_ports = None
        if passive:
            if isinstance(passive, str):
                try:
                    passive_ports = utils.parse_ports(passive)
                except ValueError as exc:
                    raise CommandError(f"invalid passive ports: {exc}") from None
            else:
                try:
                    passive_ports = sorted({int(port) for port in passive})
                except (TypeError, ValueError):
                    raise CommandError(
                        f"invalid passive ports {passive!r}: expected a string like "
                        "'60000-60100' or a list of port numbers"
                    ) from None
        metrics_address = option_or_setting(options.get("metrics"), "FTPSERVER_METRICS_ADDRESS")
        if options.get("metrics"):
            # Parsed here to name the option; a bad setting is named by
            # FTPServerConfig.validate().
            try:
                metrics_address = utils.parse_address(options["metrics"])
            except ValueError as exc:
                raise CommandError(f"invalid --metrics address: {exc}") from None
        return FTPServerConfig(
            host=host,
            metrics_address=metrics_address,
            port=port,
            timeout=option_or_setting(options.get("timeout"), "FTPSERVER_TIMEOUT"),
            passive_ports=passive_ports,
            masquerade_address=option_or_setting(
                options.get("masquerade-address"), "FTPSERVER_MASQUERADE_ADDRESS"
            ),
            file_access_user=option_or_setting(
                options.get("file-access-user"), "FTPSERVER_FILE_ACCESS_USER"
            ),
            certfile=option_or_setting(options.get("certfile"), "FTPSERVER_CERTFILE"),
            keyfile=option_or_setting(options.get("keyfile"), "FTPSERVER_KEYFILE"),
            sendfile=option_or_setting(options.get("sendfile"), "FTPSERVER_SENDFILE"),
            **{
                # 0 is a real value here ("no limit"), and a given one.
                flag.replace("-", "_"): option_or_setting(
                    options.get(flag), f"FTPSERVER_{flag.replace('-', '_').upper()}"
                )
                for flag in self.LIMIT_OPTIONS
            },
        )

    def create_runner(self, options: dict[str, Any]) -> FTPServerRunner:
        """Build the config and bind the server; every failure is a ``CommandError``."""
        config = self.build_config(options)
        runner = FTPServerRunner(config)
        try:
            runner.create_server()
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        except ImportError as exc:
            raise CommandError(f"cannot import a configured class: {exc}") from None
        except ImproperlyConfigured as exc:  # e.g. an unknown file access user
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(describe_bind_error(config.host, config.port, exc)) from None
        return runner

    def run_checks(self, runner: FTPServerRunner, options: dict[str, Any]) -> None:
        """The system checks, then W001 for the address actually bound."""
        try:
            if not options.get("skip_checks"):
                self.check(display_num_errors=False)
            if runner.config.host != conf.HOST:  # the settings' host was checked above
                warning = exposure_warning(runner.config.host, runner.config.use_tls)
                if warning:
                    self.stderr.write(
                        f"WARNING: ({warning.id}) {warning.msg}\n\tHINT: {warning.hint}"
                    )
        except BaseException:
            runner.server.close_all()
            raise

    @staticmethod
    def open_pidfile(runner: FTPServerRunner, pidfile: str) -> TextIO:
        """Open ``pidfile`` before detaching, so that a bad path is reported on the terminal."""
        try:
            return open(pidfile, "w")  # noqa: SIM115 - written after daemonizing
        except OSError as exc:
            runner.server.close_all()
            raise CommandError(
                f"cannot write the pidfile {pidfile}: {exc.strerror or exc}"
            ) from None

    @staticmethod
    def _url_host(runner: FTPServerRunner) -> str:
        host, port = runner.operations.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def handle(self, *args: Any, **options: Any) -> None:
        runner = self.create_runner(options)
        self.run_checks(runner, options)
        pidfile = option_or_setting(options.get("pidfile"), "FTPSERVER_PIDFILE")
        pid_stream = None
        if pidfile:
            # Absolute: daemonizing may change the working directory.
            pidfile = os.path.abspath(pidfile)
            pid_stream = self.open_pidfile(runner, pidfile)
        # From here on a SIGTERM stops the server cleanly, even before run().
        runner.install_signal_handlers()
        host, port = runner.address
        scheme = "FTP"
        if runner.config.use_tls:
            required = conf.TLS_CONTROL_REQUIRED and conf.TLS_DATA_REQUIRED
            scheme = "FTPS (TLS required)" if required else "FTPS (TLS optional)"
        lines = [
            f"Django version {get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"pyftpdlib version {pyftpdlib.__ver__}",
            f"Serving {scheme} on {host}:{port}",
        ]
        if runner.operations is not None:
            lines.append(
                f"Serving /metrics, /healthz and /readyz on http://{self._url_host(runner)}"
            )
        quit_key = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        lines.append(f"Quit the server with {quit_key}.")
        self.stdout.write("\n".join(lines))
        self.stdout.flush()  # visible at once under a pipe (systemd, supervisors)
        if option_or_setting(options.get("daemonize"), "FTPSERVER_DAEMONIZE"):
            server = runner.server
            preserve = [server.socket, server.ioloop._poller.fileno()]
            if runner.operations is not None:
                preserve.append(runner.operations.fileno())
            if pid_stream is not None:
                preserve.append(pid_stream)
            # python-daemon is Unix-only: imported when asked for.
            from django_ftpserver.daemonizer import become_daemon

            become_daemon(**conf.DAEMONIZE_OPTIONS, files_preserve=preserve)
        if pid_stream is not None:
            with pid_stream:
                pid_stream.write(str(os.getpid()))
        log_sessions_on_console()
        try:
            runner.run(sender=self.__class__)
        finally:
            if pidfile:
                with contextlib.suppress(OSError):
                    os.remove(pidfile)
