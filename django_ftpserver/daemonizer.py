"""Detach ``manage.py ftpserver --daemonize`` from its terminal (python-daemon)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import daemon


def _logging_streams() -> list[Any]:
    """Files already opened by logging handlers, which must survive the detach."""
    streams = []
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if stream is not None and hasattr(stream, "fileno"):
                streams.append(stream)
    return streams


def become_daemon(
    our_home_dir: str = ".",
    out_log: str | None = None,
    err_log: str | None = None,
    umask: int = 0o022,
    files_preserve: Iterable[Any] = (),
) -> daemon.DaemonContext:
    """Turn the current process into a daemon (double fork, new session).

    The arguments are those of ``FTPSERVER_DAEMONIZE_OPTIONS``, as in
    django-ftpserver 1.0; ``files_preserve`` lists files and sockets that
    must stay open (the server's listening socket is bound before detaching,
    so that a busy port is reported on the terminal).
    """
    context = daemon.DaemonContext(
        working_directory=our_home_dir,
        umask=umask,
        stdout=open(out_log, "a+", buffering=1) if out_log else None,  # noqa: SIM115
        stderr=open(err_log, "a+", buffering=1) if err_log else None,  # noqa: SIM115
        files_preserve=[*files_preserve, *_logging_streams()],
        signal_map={},  # the runner installs its own SIGTERM/SIGINT handlers
    )
    context.open()
    return context
