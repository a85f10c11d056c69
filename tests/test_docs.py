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
    names = {name for name in dir(signals) if name.startswith("ftp_")}
    documented = set(re.findall(r"^\.\. data:: (ftp_\w+)$", text, re.M))
    assert names == documented
    for name in names:
        section = text.split(f".. data:: {name}\n", 1)[1].split(".. data::", 1)[0]
        assert "Sent when" in section, name
        assert "Arguments sent with this signal" in section, name


def test_every_command_is_documented() -> None:
    text = (DOCS / "commands.rst").read_text()
    names = {module.name for module in pkgutil.iter_modules(commands.__path__)}
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
