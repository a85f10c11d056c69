"""``tests.settings`` plus the signal probe app, for ``manage.py`` subprocesses.

``FTPSERVER_TEST_DAEMONIZE_OPTIONS`` (JSON) sets ``FTPSERVER_DAEMONIZE_OPTIONS``.
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.signal_probe.SignalProbeConfig"]

if os.environ.get("FTPSERVER_TEST_DAEMONIZE_OPTIONS"):
    FTPSERVER_DAEMONIZE_OPTIONS = json.loads(os.environ["FTPSERVER_TEST_DAEMONIZE_OPTIONS"])
