"""A receiver app for tests that run ``manage.py`` in a subprocess.

Installed by ``tests.probe_settings``. Every server and session signal
appends one JSON line to the file named by ``FTPSERVER_PROBE_FILE``, so a
test can count what a separate (or daemonized) process sent.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig

from django_ftpserver import signals

PROBED = [
    "ftp_server_started",
    "ftp_server_stopped",
    "ftp_client_connected",
    "ftp_client_disconnected",
    "ftp_login",
]


def _record(name: str, sender: Any, **kwargs: Any) -> None:
    path = os.environ.get("FTPSERVER_PROBE_FILE")
    if not path:
        return
    line = {
        "signal": name,
        "pid": os.getpid(),
        "sender": f"{sender.__module__}.{sender.__qualname__}",
    }
    for key in ("host", "port", "username", "remote_ip"):
        if key in kwargs:
            line[key] = kwargs[key]
    # One write on an O_APPEND descriptor: lines from threads never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _receiver_for(name: str) -> Any:
    def receive(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal", None)
        _record(name, sender, **kwargs)

    return receive


class SignalProbeConfig(AppConfig):
    name = "tests.signal_probe"
    label = "signal_probe"

    def ready(self) -> None:
        for name in PROBED:
            getattr(signals, name).connect(_receiver_for(name), weak=False)
