"""``django_ftpserver.utils``: port parsing, class import, settings, ``make_server``."""

from __future__ import annotations

import ftplib
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_ftpserver import signals, utils
from django_ftpserver.authorizers import FTPAccountAuthorizer
from django_ftpserver.handlers import DjangoFTPHandler, DjangoTLS_FTPHandler
from django_ftpserver.server import DjangoFTPServer
from tests.conftest import PASSWORD

# --- parse_ports


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21", [21]),
        ("60000-60002", [60000, 60001, 60002]),
        ("12345,13000-13002", [12345, 13000, 13001, 13002]),
        ("5,5,4-6,6", [4, 5, 6]),
        (" 3 , 1-2 ", [1, 2, 3]),
        ("1-1", [1]),
        ("65535", [65535]),
        ("9,1", [1, 9]),
    ],
)
def test_parse_ports(text, expected):
    assert utils.parse_ports(text) == expected


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("", "''"),
        ("abc", "'abc'"),
        ("21,x", "'x'"),
        ("21,,22", "''"),
        ("1-", "'1-'"),
        ("-5", "'-5'"),
        ("1-2-3", "'1-2-3'"),
        ("10-5", "'10-5'"),
        ("0", "'0'"),
        ("65536", "'65536'"),
        ("60000-70000", "'60000-70000'"),
    ],
)
def test_parse_ports_errors_name_the_part(text, part):
    with pytest.raises(ValueError) as excinfo:
        utils.parse_ports(text)
    assert part in str(excinfo.value)
    assert repr(text) in str(excinfo.value)


@pytest.mark.parametrize("value", [21, None, ["21"]])
def test_parse_ports_wants_a_string(value):
    with pytest.raises(ValueError, match="must be a string"):
        utils.parse_ports(value)


@given(
    st.lists(
        st.one_of(
            st.integers(1, 65535).map(lambda port: (port, port)),
            st.tuples(st.integers(1, 65000), st.integers(0, 50)).map(
                lambda pair: (pair[0], pair[0] + pair[1])
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_parse_ports_is_the_union_of_the_parts(parts):
    text = ",".join(str(low) if low == high else f"{low}-{high}" for low, high in parts)
    expected = sorted({port for low, high in parts for port in range(low, high + 1)})
    assert utils.parse_ports(text) == expected


# --- import_class


def test_import_class():
    assert utils.import_class("django_ftpserver.handlers.DjangoFTPHandler") is DjangoFTPHandler


def test_import_class_missing_attribute():
    with pytest.raises(ImportError, match="'django_ftpserver.handlers' has no attribute 'Nope'"):
        utils.import_class("django_ftpserver.handlers.Nope")


def test_import_class_missing_module():
    with pytest.raises(ImportError, match="no_such_module"):
        utils.import_class("no_such_module.Handler")


def test_import_class_not_dotted():
    with pytest.raises(ImportError, match="'Handler' is not a dotted path"):
        utils.import_class("Handler")


# --- settings


def test_get_ftp_setting_defaults(settings):
    assert utils.get_ftp_setting("FTPSERVER_PORT") == 21
    settings.FTPSERVER_PORT = None  # None means unset, as in 1.0
    assert utils.get_ftp_setting("FTPSERVER_PORT") == 21
    settings.FTPSERVER_PORT = 2121
    assert utils.get_ftp_setting("FTPSERVER_PORT") == 2121
    assert utils.get_ftp_setting("NOT_AN_FTPSERVER_SETTING") is None
    assert utils.FTPSERVER_DEFAULTS["FTPSERVER_HOST"] == "127.0.0.1"


def test_get_settings_value_is_deprecated(settings):
    settings.FTPSERVER_PORT = 2121
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert utils.get_settings_value("FTPSERVER_PORT") == 2121
        assert utils.get_settings_value("FTPSERVER_TIMEOUT") is None
    assert {warning.category for warning in caught} == {DeprecationWarning}


# --- make_server


def class_state(cls: type) -> dict[str, object]:
    return dict(vars(cls))


def test_make_server_does_not_touch_the_handler_class():
    before = class_state(DjangoFTPHandler)
    first = utils.make_server(
        DjangoFTPServer,
        DjangoFTPHandler,
        FTPAccountAuthorizer,
        None,
        ("127.0.0.1", 0),
        timeout=11,
        banner="first",
        passive_ports=[60000],
    )
    second = utils.make_server(
        "django_ftpserver.server.DjangoFTPServer",
        "django_ftpserver.handlers.DjangoFTPHandler",
        "django_ftpserver.authorizers.FTPAccountAuthorizer",
        None,
        ("127.0.0.1", 0),
        timeout=22,
    )
    try:
        assert class_state(DjangoFTPHandler) == before
        assert first.handler is not second.handler
        assert issubclass(first.handler, DjangoFTPHandler)
        assert (first.handler.timeout, second.handler.timeout) == (11, 22)
        assert first.handler.banner == "first"
        assert second.handler.banner == DjangoFTPHandler.banner
        assert second.handler.passive_ports is None
        assert first.handler.authorizer is not second.handler.authorizer
        assert isinstance(first.handler.authorizer, FTPAccountAuthorizer)
        # Same name for logs and reprs, and signals keep the public sender.
        assert first.handler.__qualname__ == "DjangoFTPHandler"
        assert first.handler.signal_sender is DjangoFTPHandler
        assert second.handler.signal_sender is DjangoFTPHandler
    finally:
        first.close_all()
        second.close_all()


def test_make_server_tls_context_is_not_shared(tmp_path):
    import trustme

    ca = trustme.CA()
    paths = []
    for name in ("one", "two"):
        cert = ca.issue_cert(f"{name}.example")
        path = tmp_path / f"{name}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(path))
        paths.append(str(path))
    before = class_state(DjangoTLS_FTPHandler)
    servers = [
        utils.make_server(
            DjangoFTPServer,
            DjangoTLS_FTPHandler,
            FTPAccountAuthorizer,
            None,
            ("127.0.0.1", 0),
            certfile=path,
            keyfile=path,
        )
        for path in paths
    ]
    try:
        assert class_state(DjangoTLS_FTPHandler) == before
        assert DjangoTLS_FTPHandler.ssl_context is None
        one, two = (server.handler.get_ssl_context() for server in servers)
        assert one is not two
        assert servers[0].handler.certfile == paths[0]
        assert servers[1].handler.certfile == paths[1]
    finally:
        for server in servers:
            server.close_all()


class CustomHandler(DjangoFTPHandler):
    """A project's own handler, named in FTPSERVER_HANDLER."""


def test_signals_are_sent_with_the_public_handler_class(ftp_server, account, recorder):
    received = []

    def on_login(sender, **kwargs):
        received.append(kwargs["username"])

    signals.ftp_login.connect(on_login, sender=DjangoFTPHandler)
    try:
        client = ftp_server.connect(account.user.username)
        client.quit()
        logins = recorder.wait("ftp_login")
    finally:
        signals.ftp_login.disconnect(on_login, sender=DjangoFTPHandler)
    assert received == ["alice"]
    assert logins[0]["sender"] is DjangoFTPHandler
    assert isinstance(logins[0]["handler"], DjangoFTPHandler)
    assert type(logins[0]["handler"]) is not DjangoFTPHandler  # the per-server subclass


def test_signals_are_sent_with_the_configured_handler_class(
    settings, server_factory, account, recorder
):
    settings.FTPSERVER_HANDLER = "tests.test_utils.CustomHandler"
    server = server_factory()
    assert issubclass(server.runner.server.handler, CustomHandler)
    client = server.connect(account.user.username)
    client.quit()
    assert recorder.wait("ftp_login")[0]["sender"] is CustomHandler


def test_two_servers_in_one_process(server_factory, account, recorder):
    slow = server_factory(timeout=300)
    quick = server_factory(timeout=1)
    assert slow.runner.server.handler.timeout == 300
    assert quick.runner.server.handler.timeout == 1
    assert DjangoFTPHandler.timeout == 300  # pyftpdlib's default, untouched

    busy = slow.connect(account.user.username)
    idle = quick.connect(account.user.username)
    # The quick server's idle timeout closes its client, only that one.
    gone = recorder.wait("ftp_client_disconnected")
    assert gone[0]["handler"].server is quick.runner.server
    with pytest.raises((EOFError, OSError, ftplib.Error)):
        idle.voidcmd("NOOP")
    busy.voidcmd("NOOP")

    # Stopping one server leaves the other serving, new clients included.
    quick.stop()
    busy.voidcmd("NOOP")
    fresh = slow.connect(account.user.username, PASSWORD)
    fresh.voidcmd("NOOP")
    fresh.quit()
    busy.quit()
