"""The documentation builds without warnings and covers every setting, signal and command."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest

from django_ftpserver import conf, signals
from django_ftpserver.management import commands

DOCS = Path(__file__).resolve().parent.parent / "docs"


def setting_names() -> set[str]:
    names = set(conf.DEFAULTS)
    names.update(
        f"FTPSERVER_{name}"
        for name, value in vars(conf.Settings).items()
        if isinstance(value, property)
    )
    return names


def signal_names() -> set[str]:
    return {name for name in dir(signals) if name.startswith("ftp_")}


def command_names() -> set[str]:
    return {module.name for module in pkgutil.iter_modules(commands.__path__)}


def server_options() -> set[str]:
    """The long options of ``manage.py ftpserver`` that every command does not have too."""
    from django.core.management.base import BaseCommand

    from django_ftpserver.management.commands.ftpserver import Command

    def options(command: BaseCommand, name: str) -> set[str]:
        parser = command.create_parser("manage.py", name)
        return {option for action in parser._actions for option in action.option_strings}

    own = options(Command(), "ftpserver") - options(BaseCommand(), "x")
    return {option for option in own if option.startswith("--")}


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.rst").read_text()
    documented = set(re.findall(r"^\.\. attribute:: (FTPSERVER_\w+)$", text, re.M))
    assert setting_names() - documented == set()
    assert documented - setting_names() == set()
    # Each with its default.
    for name in documented:
        block = text.split(f".. attribute:: {name}\n", 1)[1].split(".. attribute::", 1)[0]
        assert ":default:" in block, name


def test_every_signal_is_documented() -> None:
    text = (DOCS / "signals.rst").read_text()
    names = signal_names()
    documented = set(re.findall(r"^\.\. data:: (ftp_\w+)$", text, re.M))
    assert names == documented
    for name in names:
        section = text.split(f".. data:: {name}\n", 1)[1].split(".. data::", 1)[0]
        assert "Sent when" in section, name
        assert "Arguments sent with this signal" in section, name


def test_every_command_is_documented() -> None:
    text = (DOCS / "commands.rst").read_text()
    names = command_names()
    documented = set(re.findall(r"^``(\w+)``\n=+$", text, re.M))
    assert names == documented


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    build = pytest.importorskip("sphinx.cmd.build")
    status = build.build_main(
        ["-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path)]
    )
    assert status == 0
    assert (tmp_path / "signals.html").exists()


def test_troubleshooting_quotes_real_replies() -> None:
    """Each reply the troubleshooting page is organised by is one the server can send."""
    import pyftpdlib

    import django_ftpserver

    text = (DOCS / "troubleshooting.rst").read_text()
    replies = re.findall(r"^``(\d{3} [^`]+?)(?:\.\.\.)?``$", text, re.M)
    assert len(replies) >= 6
    sources = "".join(
        path.read_text()
        for package in (django_ftpserver, pyftpdlib)
        for path in Path(package.__file__).parent.rglob("*.py")
    )
    for reply in replies:
        code, message = reply.split(" ", 1)
        assert message in sources, reply


# ``pip install`` of the registry's django-ftpserver, with its extras and the
# text right after it.
REGISTRY_INSTALL = re.compile(
    r"pip install\s+(?:-e\s+)?['\"]?(django-ftpserver[^\s'\"`]*)['\"]?([^\n]*\n?[^\n]*)"
)


def test_no_page_installs_the_old_release() -> None:
    """Until 1.1 is on PyPI, ``pip install django-ftpserver`` gets 1.0: no page says to run it.

    Every install line names a clone (``./django-ftpserver``) or the git
    URL; the registry's name appears only where a page warns about it or
    asks for ``>=1.1``.
    """
    pages = [*sorted(DOCS.glob("*.rst")), DOCS.parent / "README.rst"]
    found = []
    for page in pages:
        for match in REGISTRY_INSTALL.finditer(page.read_text()):
            requirement, after = match.group(1), " ".join(match.group(2).split())
            if ">=1.1" in requirement or after.startswith(("@ git+", "`` installs")):
                continue
            found.append(f"{page.name}: {match.group(0).strip()}")
    assert found == []


def test_readme_names_every_setting_signal_command_and_server_option() -> None:
    """The README's summary keeps up with the code, as the full pages do."""
    readme = (DOCS.parent / "README.rst").read_text()
    assert {n for n in setting_names() if f"``{n}``" not in readme} == set()
    assert {n for n in signal_names() if f"``{n}``" not in readme} == set()
    assert {n for n in command_names() if f"``{n}" not in readme} == set()
    assert {o for o in server_options() | {"--skip-checks"} if f"``{o}``" not in readme} == set()


def test_commands_page_documents_every_server_option() -> None:
    text = (DOCS / "commands.rst").read_text()
    page = text.split("``ftpserver``\n", 1)[1].split("\n``createftpusergroup``\n", 1)[0]
    documented = set(
        re.findall(r"(--[\w-]+)", " ".join(re.findall(r"^\.\. option:: (.+)$", page, re.M)))
    )
    assert (server_options() | {"--skip-checks"}) - documented == set()


def test_installation_names_every_migration() -> None:
    from django_ftpserver import migrations

    text = (DOCS / "installation.rst").read_text()
    names = {module.name for module in pkgutil.iter_modules(migrations.__path__)}
    assert {name for name in names if f"``{name}``" not in text} == set()
