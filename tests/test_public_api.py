"""Every public import path of django-ftpserver 1.0 keeps working.

``tests/data/public_names.json`` lists the names each 1.0 module offered
before the code was split into packages (see ``tests/data/README.rst``);
each must still import from there, and be the very object its new home
defines, so a project's ``isinstance`` checks and subclasses keep working.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_NAMES: dict[str, list[str]] = json.loads(
    (ROOT / "tests" / "data" / "public_names.json").read_text()
)

#: The modules a 1.0 project imports from.
MODULES_OF_1_0 = {
    "django_ftpserver.handlers",
    "django_ftpserver.authorizers",
    "django_ftpserver.filesystems",
    "django_ftpserver.utils",
    "django_ftpserver.server",
    "django_ftpserver.models",
    "django_ftpserver.signals",
}


def test_the_list_covers_the_modules_of_1_0() -> None:
    assert set(PUBLIC_NAMES) == MODULES_OF_1_0
    assert all(len(names) >= 5 for names in PUBLIC_NAMES.values())


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in sorted(PUBLIC_NAMES.items()) for name in names],
)
def test_every_public_name_stays_importable(module: str, name: str) -> None:
    obj = getattr(import_module(module), name)
    # A class or function re-exported from its new home is that same object.
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__name__ == name:
        assert getattr(import_module(obj.__module__), name) is obj


def test_the_headline_classes() -> None:
    from django_ftpserver.authorizers import FTPAccountAuthorizer
    from django_ftpserver.filesystems import StorageFS
    from django_ftpserver.handlers import DjangoFTPHandler, DjangoTLS_FTPHandler
    from django_ftpserver.models import FTPUserAccount, FTPUserGroup
    from django_ftpserver.server import DjangoFTPServer, FTPServerConfig, FTPServerRunner
    from django_ftpserver.utils import get_ftp_setting

    assert issubclass(DjangoFTPHandler, FTPHandler)
    assert issubclass(DjangoTLS_FTPHandler, TLS_FTPHandler)
    assert issubclass(StorageFS, AbstractedFS)
    assert callable(FTPAccountAuthorizer.validate_authentication)
    assert FTPUserAccount._meta.db_table == "django_ftpserver_ftpuseraccount"
    assert FTPUserGroup._meta.db_table == "django_ftpserver_ftpusergroup"
    assert get_ftp_setting("FTPSERVER_PORT") == 21
    config = FTPServerConfig(host="127.0.0.1", port=0)
    assert FTPServerRunner(config).config is config
    assert config.server_class == "django_ftpserver.server.DjangoFTPServer"
    assert DjangoFTPServer.__name__ == "DjangoFTPServer"


def test_every_signal_is_a_signal() -> None:
    from django.dispatch import Signal

    from django_ftpserver import signals

    names = [name for name in PUBLIC_NAMES["django_ftpserver.signals"] if name.startswith("ftp_")]
    assert len(names) >= 20
    for name in names:
        assert isinstance(getattr(signals, name), Signal), name


def test_the_default_class_settings_import() -> None:
    """The dotted paths 1.0 projects have in their settings."""
    from django_ftpserver import conf, utils

    for name in ("SERVER_CLASS", "HANDLER", "TLSHANDLER", "AUTHORIZER"):
        path = conf.DEFAULTS[f"FTPSERVER_{name}"]
        assert path.startswith("django_ftpserver.") and inspect.isclass(utils.import_class(path))
    assert inspect.isclass(utils.import_class("django_ftpserver.filesystems.StorageFS"))


def test_the_ftpserver_command_and_its_1_0_options() -> None:
    assert get_commands()["ftpserver"] == "django_ftpserver"
    parser = load_command_class("django_ftpserver", "ftpserver").create_parser(
        "manage.py", "ftpserver"
    )
    options = {option for action in parser._actions for option in action.option_strings}
    assert {
        "--daemonize",
        "--pidfile",
        "--timeout",
        "--passive-ports",
        "--masquerade-address",
        "--file-access-user",
        "--certfile",
        "--keyfile",
        "--sendfile",
    } <= options


def test_manage_py_ftpserver_help_runs() -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "django", "ftpserver", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--passive-ports" in result.stdout
