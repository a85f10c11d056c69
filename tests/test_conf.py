"""Settings are read one way: through ``django_ftpserver.conf``.

``conf`` reads each ``FTPSERVER_*`` setting with its default;
``utils.get_ftp_setting`` (1.0's function) is a thin name for it; the
``ftpserver`` command's options win over the settings by one rule,
``conf.option_or_setting``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import django_ftpserver
from django_ftpserver import conf as conf_module
from django_ftpserver import utils
from django_ftpserver.conf import conf, option_or_setting
from django_ftpserver.management.commands.ftpserver import Command as FTPServerCommand
from django_ftpserver.runner import FTPServerConfig

PACKAGE = Path(django_ftpserver.__file__).parent

#: Where the package may read ``django.conf.settings`` by name: the one
#: reader, and 1.0's deprecated ``utils.get_settings_value``, whose
#: published contract is the raw value without a default.
ALLOWED_DIRECT_READS = {("conf.py", None), ("utils.py", "get_settings_value")}


def config_for(*argv: str) -> FTPServerConfig:
    """The configuration ``manage.py ftpserver <argv>`` would serve."""
    command = FTPServerCommand()
    parser = command.create_parser("manage.py", "ftpserver")
    return command.build_config(vars(parser.parse_args(argv)))


# --- option_or_setting


@pytest.mark.parametrize("given", [0, 30, True, "60000-60001", "0", [60000], 0.5])
def test_a_given_option_wins(settings, given: Any) -> None:
    settings.FTPSERVER_TIMEOUT = 300
    assert option_or_setting(given, "FTPSERVER_TIMEOUT") is given


@pytest.mark.parametrize("not_given", [None, False, ""])
def test_an_option_left_off_reads_the_setting(settings, not_given: Any) -> None:
    settings.FTPSERVER_TIMEOUT = 300
    assert option_or_setting(not_given, "FTPSERVER_TIMEOUT") == 300


@pytest.mark.parametrize("not_given", [None, False, ""])
def test_an_option_left_off_without_a_setting_is_the_default(settings, not_given: Any) -> None:
    settings.FTPSERVER_PORT = None  # None is unset, as in 1.0
    assert option_or_setting(not_given, "FTPSERVER_PORT") == 21
    assert option_or_setting(not_given, "FTPSERVER_DAEMONIZE") is False


def test_get_ftp_setting_is_conf(settings) -> None:
    settings.FTPSERVER_PORT = 2121
    settings.FTPSERVER_LOCKOUT_FAILURES = 3
    for name in conf_module.DEFAULTS:
        assert utils.get_ftp_setting(name) == conf_module.get(name), name
    assert utils.get_ftp_setting("FTPSERVER_PORT") == conf.PORT == 2121
    assert utils.get_ftp_setting("FTPSERVER_LOCKOUT_FAILURES") == conf.LOCKOUT_FAILURES == 3


# --- the ftpserver command follows the rule for every option


@pytest.mark.parametrize(
    ("flag", "setting", "field", "given", "setting_value"),
    [
        ("max-connections", "FTPSERVER_MAX_CONNECTIONS", "max_connections", 0, 7),
        ("max-connections-per-ip", "FTPSERVER_MAX_CONNECTIONS_PER_IP", None, 0, 3),
        ("login-timeout", "FTPSERVER_LOGIN_TIMEOUT", None, 0, 20),
        ("max-pre-login-percent", "FTPSERVER_MAX_PRE_LOGIN_PERCENT", None, 50, 90),
        ("max-login-attempts", "FTPSERVER_MAX_LOGIN_ATTEMPTS", None, 1, 5),
        ("read-limit", "FTPSERVER_READ_LIMIT", None, 0, 1000),
        ("write-limit", "FTPSERVER_WRITE_LIMIT", None, 0, 2000),
        ("metrics", "FTPSERVER_METRICS_ADDRESS", "metrics_address", "127.0.0.1:9100", None),
    ],
)
def test_limit_and_metrics_options_over_settings(
    settings, flag: str, setting: str, field: str | None, given: Any, setting_value: Any
) -> None:
    field = field or flag.replace("-", "_")
    if setting_value is None:  # metrics: a setting other than the option's value
        setting_value = "127.0.0.1:9200"
    setattr(settings, setting, setting_value)
    from_option = getattr(config_for(f"--{flag}={given}"), field)
    from_setting = getattr(config_for(), field)
    if flag == "metrics":
        assert from_option == ("127.0.0.1", 9100)
        assert from_setting == "127.0.0.1:9200"  # FTPServerConfig.validate() parses it
    else:
        assert from_option == given
        assert from_setting == setting_value


def test_flags_left_off_read_the_settings(settings) -> None:
    settings.FTPSERVER_SENDFILE = True
    assert config_for().sendfile is True
    settings.FTPSERVER_SENDFILE = None
    assert config_for().sendfile is None
    assert config_for("--sendfile").sendfile is True


# --- nothing else reads the settings directly


def _direct_reads(path: Path) -> list[tuple[int, str | None]]:
    """Lines of ``path`` that read ``django.conf.settings`` by an FTPSERVER_ name or getattr."""
    tree = ast.parse(path.read_text(), filename=str(path))
    reads: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if (
                isinstance(child, ast.Attribute)
                and isinstance(child.value, ast.Name)
                and child.value.id == "settings"
                and child.attr.startswith("FTPSERVER_")
            ):
                reads.append((child.lineno, inner))
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id in ("getattr", "hasattr")
                and child.args
                and isinstance(child.args[0], ast.Name)
                and child.args[0].id == "settings"
            ):
                reads.append((child.lineno, inner))
            visit(child, inner)

    visit(tree, None)
    return reads


def test_the_package_reads_ftpserver_settings_through_conf_only() -> None:
    offenders = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the walk found the package
    for path in modules:
        relative = path.relative_to(PACKAGE).as_posix()
        if (relative, None) in ALLOWED_DIRECT_READS:
            continue
        for line, function in _direct_reads(path):
            if (relative, function) not in ALLOWED_DIRECT_READS:
                offenders.append(f"{relative}:{line} (in {function})")
    assert offenders == [], "read these settings through django_ftpserver.conf"


def test_the_direct_read_finder_finds_them(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from django.conf import settings\n"
        "def f():\n"
        "    return getattr(settings, 'FTPSERVER_PORT', None)\n"
        "x = settings.FTPSERVER_HOST\n"
        "y = settings.CACHES\n"
    )
    assert _direct_reads(sample) == [(3, "f"), (4, None)]
