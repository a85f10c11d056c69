"""``FTPServerConfig`` and ``FTPServerRunner``: defaults, lifecycle signals, stopping."""

from __future__ import annotations

import ftplib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_ftpserver import signals
from django_ftpserver.handlers import DjangoFTPHandler, DjangoTLS_FTPHandler
from django_ftpserver.management.commands.ftpserver import Command
from django_ftpserver.runner import ConfigError, FTPServerConfig, FTPServerRunner
from tests import procs
from tests.conftest import PASSWORD

project_template = procs.project_template
project_env = procs.project_env


@pytest.fixture(scope="module")
def certfile(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A certificate and its key for 127.0.0.1, in one file."""
    import trustme

    path = tmp_path_factory.mktemp("tls") / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


class Runner:
    """An ``FTPServerRunner`` running in a thread."""

    def __init__(self, config: FTPServerConfig, **run_kwargs: Any) -> None:
        self.runner = FTPServerRunner(config)
        self.runner.create_server()
        self.thread = threading.Thread(target=self.runner.run, kwargs=run_kwargs, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture
def run_server(transactional_db: None) -> Iterator[Any]:
    started: list[Runner] = []

    def start(config: FTPServerConfig | None = None, **run_kwargs: Any) -> Runner:
        runner = Runner(config or FTPServerConfig(host="127.0.0.1", port=0), **run_kwargs)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        if runner.thread.is_alive():
            runner.stop()


# --- configuration


def test_config_defaults():
    config = FTPServerConfig(host="127.0.0.1", port=0)
    assert config.server_class == "django_ftpserver.server.DjangoFTPServer"
    assert config.handler_class == "django_ftpserver.handlers.DjangoFTPHandler"
    assert config.authorizer_class == "django_ftpserver.authorizers.FTPAccountAuthorizer"
    assert config.filesystem_class is None
    assert not config.use_tls


def test_config_classes_from_settings(settings):
    settings.FTPSERVER_SERVER_CLASS = "my.Server"
    settings.FTPSERVER_HANDLER = "my.Handler"
    settings.FTPSERVER_TLSHANDLER = "my.TLSHandler"
    settings.FTPSERVER_AUTHORIZER = "my.Authorizer"
    settings.FTPSERVER_FILESYSTEM = "my.Filesystem"
    config = FTPServerConfig(host="127.0.0.1", port=0)
    assert (
        config.server_class,
        config.handler_class,
        config.authorizer_class,
        config.filesystem_class,
    ) == ("my.Server", "my.Handler", "my.Authorizer", "my.Filesystem")
    assert FTPServerConfig(host="", port=0, certfile="x.pem").handler_class == "my.TLSHandler"


def test_config_explicit_classes_win(settings):
    settings.FTPSERVER_HANDLER = "my.Handler"
    config = FTPServerConfig(host="127.0.0.1", port=0, handler_class=DjangoFTPHandler)
    assert config.handler_class is DjangoFTPHandler


def test_tls_handler_chosen_with_a_certificate(certfile):
    config = FTPServerConfig(host="127.0.0.1", port=0, certfile=certfile)
    assert config.use_tls
    assert config.handler_class == "django_ftpserver.handlers.DjangoTLS_FTPHandler"
    runner = FTPServerRunner(config)
    options = runner.handler_options()
    assert options["tls_control_required"] is True
    assert options["tls_data_required"] is True
    assert options["keyfile"] == certfile  # one file holding both
    server = runner.create_server()
    try:
        assert issubclass(server.handler, DjangoTLS_FTPHandler)
        assert server.handler.tls_control_required is True
        assert server.handler.tls_data_required is True
    finally:
        server.close_all()


def test_tls_requirements_follow_the_settings(settings, certfile):
    settings.FTPSERVER_TLS_CONTROL_REQUIRED = False
    settings.FTPSERVER_TLS_DATA_REQUIRED = False
    config = FTPServerConfig(host="127.0.0.1", port=0, certfile=certfile)
    options = FTPServerRunner(config).handler_options()
    assert options["tls_control_required"] is False
    assert options["tls_data_required"] is False


def test_handler_options_win(certfile):
    config = FTPServerConfig(
        host="127.0.0.1",
        port=0,
        certfile=certfile,
        timeout=30,
        handler_options={"tls_data_required": False, "timeout": 5, "banner": "hi"},
    )
    options = FTPServerRunner(config).handler_options()
    assert (options["tls_data_required"], options["timeout"], options["banner"]) == (
        False,
        5,
        "hi",
    )


def test_no_tls_options_without_a_certificate():
    options = FTPServerRunner(FTPServerConfig(host="127.0.0.1", port=0, sendfile=False))
    assert options.handler_options() == {"use_sendfile": False, "login_timeout": 60}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"port": 65536}, "port must be a number from 0 to 65535, not 65536"),
        ({"port": "21"}, "not '21'"),
        ({"timeout": -1}, "timeout must be 0 or more seconds, not -1"),
        ({"passive_ports": []}, "passive ports must be in 1-65535: []"),
        ({"passive_ports": [0, 60000]}, "[0, 60000]"),
        ({"keyfile": "/etc/hostname"}, "a TLS key file was given without a certificate file"),
        ({"certfile": "/no/such.pem"}, "TLS certificate file not found: /no/such.pem"),
    ],
)
def test_validate(fields, message):
    fields = {"host": "127.0.0.1", "port": 0, **fields}
    with pytest.raises(ConfigError) as excinfo:
        FTPServerConfig(**fields).validate()
    assert message in str(excinfo.value)


def test_tls_is_required_on_a_real_connection(run_server, certfile, account):
    import ssl

    server = run_server(FTPServerConfig(host="127.0.0.1", port=0, certfile=certfile))
    host, port = server.runner.address
    plain = ftplib.FTP()
    plain.connect(host, port, timeout=10)
    with pytest.raises(ftplib.error_perm, match="^550 SSL/TLS required"):
        plain.login(account.user.username, PASSWORD)
    plain.close()

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    secure = ftplib.FTP_TLS(context=context)
    secure.connect(host, port, timeout=10)
    secure.login(account.user.username, PASSWORD)
    with pytest.raises(
        ftplib.error_perm, match="^550 SSL/TLS required on the data channel"
    ):  # data channel must be TLS too
        secure.nlst()
    secure.prot_p()
    (Path(account.home_dir) / "seen.txt").write_text("x")
    assert secure.nlst() == ["seen.txt"]
    secure.quit()


# --- lifecycle


def test_run_before_create_server():
    runner = FTPServerRunner(FTPServerConfig(host="127.0.0.1", port=0))
    with pytest.raises(RuntimeError, match="create_server"):
        runner.run()


def test_address_is_the_bound_one(run_server):
    server = run_server()
    host, port = server.runner.address
    assert host == "127.0.0.1"
    assert port != 0
    assert server.runner.config.port == 0


def test_start_and_stop_signals_default_sender(run_server, recorder):
    server = run_server()
    started = recorder.wait("ftp_server_started")
    host, port = server.runner.address
    assert started == [
        {"sender": FTPServerRunner, "server": server.runner.server, "host": host, "port": port}
    ]
    assert recorder.of("ftp_server_stopped") == []
    server.stop()
    assert recorder.of("ftp_server_stopped") == [
        {"sender": FTPServerRunner, "server": server.runner.server, "host": host, "port": port}
    ]
    assert recorder.names() == ["ftp_server_started", "ftp_server_stopped"]


def test_start_and_stop_signals_given_sender(run_server, recorder):
    server = run_server(sender=Command)
    recorder.wait("ftp_server_started")
    server.stop()
    assert [event["sender"] for event in recorder.of("ftp_server_started")] == [Command]
    assert [event["sender"] for event in recorder.of("ftp_server_stopped")] == [Command]
    assert recorder.of("ftp_server_stopped")[0]["port"] == server.runner.address[1]


def test_receivers_filtered_by_sender(run_server):
    got = []

    def receiver(sender, **kwargs):
        got.append(sender)

    signals.ftp_server_started.connect(receiver, sender=Command)
    try:
        run_server().stop()
        assert got == []
        run_server(sender=Command).stop()
        assert got == [Command]
    finally:
        signals.ftp_server_started.disconnect(receiver, sender=Command)


def test_subclass_is_the_default_sender(transactional_db, recorder):
    class MyRunner(FTPServerRunner):
        pass

    runner = MyRunner(FTPServerConfig(host="127.0.0.1", port=0))
    runner.create_server()
    runner.stop()  # stop before running: run() returns at once
    runner.run()
    assert [event["sender"] for event in recorder.of("ftp_server_started")] == [MyRunner]
    assert [event["sender"] for event in recorder.of("ftp_server_stopped")] == [MyRunner]


def test_failing_start_receiver_does_not_stop_the_server(run_server, account, recorder):
    def explode(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.ftp_server_started.connect(explode)
    try:
        server = run_server()
        recorder.wait("ftp_server_started")
    finally:
        signals.ftp_server_started.disconnect(explode)
    host, port = server.runner.address
    client = ftplib.FTP()
    client.connect(host, port, timeout=10)
    client.login(account.user.username, PASSWORD)
    client.voidcmd("NOOP")
    client.quit()
    assert server.thread.is_alive()
    server.stop()
    assert len(recorder.of("ftp_server_stopped")) == 1


def test_stop_disconnects_connected_clients(run_server, account, recorder):
    server = run_server()
    host, port = server.runner.address
    client = ftplib.FTP()
    client.connect(host, port, timeout=10)
    client.login(account.user.username, PASSWORD)
    anonymous = ftplib.FTP()
    anonymous.connect(host, port, timeout=10)
    recorder.wait("ftp_client_connected", 2)
    server.stop()
    gone = recorder.wait("ftp_client_disconnected", 2)
    assert sorted(str(event["username"]) for event in gone) == ["None", "alice"]
    for each in (client, anonymous):
        with pytest.raises((EOFError, OSError, ftplib.Error)):
            each.voidcmd("NOOP")
        each.close()
    names = recorder.names()
    # Sessions end before the server reports itself stopped.
    assert names.index("ftp_server_stopped") > max(
        i for i, name in enumerate(names) if name == "ftp_client_disconnected"
    )


def test_signal_handlers_are_restored(transactional_db):
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    runner = FTPServerRunner(FTPServerConfig(host="127.0.0.1", port=0))
    runner.create_server()
    seen = {}

    def stop_from_a_thread() -> None:
        seen.update({signum: signal.getsignal(signum) for signum in before})
        runner.stop()

    timer = threading.Timer(0.2, stop_from_a_thread)
    timer.start()
    runner.run()  # in the main thread: installs its handlers
    timer.join()
    assert all(seen[signum] is not before[signum] for signum in before)
    assert {signum: signal.getsignal(signum) for signum in before} == before


# --- a real manage.py ftpserver process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_process_cleanly(project_env, signum):
    server = procs.ServerProcess(project_env, "127.0.0.1:0")
    try:
        started = server.wait_started()
        client = server.connect()
        client.voidcmd("NOOP")
        procs.wait_until(lambda: procs.probe_lines(project_env, "ftp_login"), what="ftp_login")
        returncode = server.stop(signum)
    finally:
        server.kill()
    assert returncode == 0, server.stderr
    assert "Traceback" not in server.stderr
    sender = "django_ftpserver.management.commands.ftpserver.Command"
    assert started["sender"] == sender
    stopped = procs.probe_lines(project_env, "ftp_server_stopped")
    assert len(stopped) == 1
    assert stopped[0]["sender"] == sender
    assert (stopped[0]["host"], stopped[0]["port"]) == ("127.0.0.1", server.port)
    # The connected client was disconnected, before the server reported stopping.
    events = [line["signal"] for line in procs.probe_lines(project_env)]
    assert events == [
        "ftp_server_started",
        "ftp_client_connected",
        "ftp_login",
        "ftp_client_disconnected",
        "ftp_server_stopped",
    ]
    assert procs.probe_lines(project_env, "ftp_client_disconnected")[0]["username"] == "alice"
    with pytest.raises((EOFError, OSError, ftplib.Error)):
        client.voidcmd("NOOP")
    client.close()


def test_second_signal_while_stopping_is_harmless(project_env):
    server = procs.ServerProcess(project_env, "127.0.0.1:0")
    try:
        server.wait_started()
        server.proc.send_signal(signal.SIGTERM)
        returncode = server.stop(signal.SIGINT)  # Ctrl-C right after a SIGTERM
    finally:
        server.kill()
    assert returncode == 0, server.stderr
    assert len(procs.probe_lines(project_env, "ftp_server_stopped")) == 1
