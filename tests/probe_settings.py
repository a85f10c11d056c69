"""``tests.settings`` plus the signal probe app, for ``manage.py`` subprocesses."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.signal_probe.SignalProbeConfig"]
