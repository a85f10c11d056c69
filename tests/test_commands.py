"""The account management commands: output, and a one-line ``CommandError`` per bad value."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from pyftpdlib.log import LogFormatter

from django_ftpserver.management.commands.ftpserver import Command as FTPServerCommand
from django_ftpserver.management.commands.ftpserver import log_sessions_on_console
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.runner import FTPServerConfig
from tests import procs
from tests.procs import manage

pytestmark = pytest.mark.django_db

project_template = procs.project_template
project_env = procs.project_env


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate for localhost and its key, in two files."""
    import trustme

    directory = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("localhost", "127.0.0.1")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def make_user(username: str = "alice"):
    return get_user_model().objects.create_user(username, password="x")


# --- createftpusergroup


def test_create_group_with_defaults():
    output = run("createftpusergroup", "staff")
    group = FTPUserGroup.objects.get(name="staff")
    assert group.permission == "elradfmw"
    assert group.home_dir is None
    assert f'pk={group.pk}, "staff" was created' in output


def test_create_group_with_home_and_permission():
    run("createftpusergroup", "readers", "/srv/ftp/{username}", "--permission", "elr")
    group = FTPUserGroup.objects.get(name="readers")
    assert (group.permission, group.home_dir) == ("elr", "/srv/ftp/{username}")


def test_create_group_accepts_all_ten_letters():
    run("createftpusergroup", "all", "--permission", "elradfmwMT")
    assert FTPUserGroup.objects.get(name="all").permission == "elradfmwMT"


def test_create_group_twice_names_the_group():
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match='"staff" already exists'):
        run("createftpusergroup", "staff")
    assert FTPUserGroup.objects.filter(name="staff").count() == 1


@pytest.mark.parametrize("permission", ["elrX", "e l", "elr;", "ELR"])
def test_create_group_rejects_unknown_permission_letters(permission):
    with pytest.raises(CommandError, match=f"invalid permission {permission!r}"):
        run("createftpusergroup", "bad", "--permission", permission)
    assert not FTPUserGroup.objects.exists()


def test_create_group_rejects_repeated_permission_letters():
    # Eleven letters do not fit the ten-character column (a DataError on
    # PostgreSQL and MySQL); a repeated letter is a typo anyway.
    with pytest.raises(CommandError, match="invalid permission 'elradfmwMTe'"):
        run("createftpusergroup", "bad", "--permission", "elradfmwMTe")
    assert not FTPUserGroup.objects.exists()


def test_create_group_rejects_a_too_long_name():
    name = "n" * 31
    with pytest.raises(CommandError, match=f"invalid group name '{name}'"):
        run("createftpusergroup", name)
    run("createftpusergroup", "n" * 30)  # the limit itself fits
    assert FTPUserGroup.objects.get().name == "n" * 30


def test_create_group_rejects_an_empty_name():
    with pytest.raises(CommandError, match="invalid group name ''"):
        run("createftpusergroup", "")


def test_create_group_rejects_a_too_long_home():
    home = "/" + "h" * 1024
    with pytest.raises(CommandError, match="home directory too long"):
        run("createftpusergroup", "staff", home)
    assert not FTPUserGroup.objects.exists()


# --- createftpuseraccount


def test_create_account():
    user = make_user()
    run("createftpusergroup", "staff")
    output = run("createftpuseraccount", "alice", "staff", "/srv/alice")
    account = FTPUserAccount.objects.get()
    assert (account.user, account.group.name, account.home_dir) == (user, "staff", "/srv/alice")
    assert f'pk={account.pk}, "alice" was created' in output


def test_create_account_without_home_uses_the_group_home():
    make_user()
    run("createftpusergroup", "staff", "/srv/{username}")
    run("createftpuseraccount", "alice", "staff")
    account = FTPUserAccount.objects.get()
    assert account.home_dir is None
    assert account.get_home_dir() == "/srv/alice"


def test_create_account_for_an_unknown_user():
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match='User "nobody-here" does not exist'):
        run("createftpuseraccount", "nobody-here", "staff")
    assert not FTPUserAccount.objects.exists()


def test_create_account_in_an_unknown_group():
    make_user()
    with pytest.raises(CommandError, match='FTP user group "ghosts" does not exist'):
        run("createftpuseraccount", "alice", "ghosts")
    assert not FTPUserAccount.objects.exists()


def test_create_account_twice():
    make_user()
    run("createftpusergroup", "staff")
    run("createftpusergroup", "other")
    run("createftpuseraccount", "alice", "staff")
    with pytest.raises(CommandError, match='FTP user account "alice" already exists'):
        run("createftpuseraccount", "alice", "other")
    assert FTPUserAccount.objects.get().group.name == "staff"


def test_create_account_rejects_a_too_long_home():
    make_user()
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match="home directory too long"):
        run("createftpuseraccount", "alice", "staff", "/" + "h" * 1024)
    assert not FTPUserAccount.objects.exists()


# --- listing


def test_list_groups_empty():
    assert run("listftpusergroup").strip() == "No FTP user groups found."


def test_list_groups():
    run("createftpusergroup", "staff", "/srv/{username}")
    run("createftpusergroup", "readers", "--permission", "elr")
    lines = run("listftpusergroup").splitlines()
    assert lines[0] == "FTP User Groups:"
    rows = [line.split() for line in lines[4:]]
    staff, readers = FTPUserGroup.objects.order_by("pk")
    assert rows == [
        [str(staff.pk), "staff", "elradfmw", "/srv/{username}"],
        [str(readers.pk), "readers", "elr"],
    ]


def test_list_accounts_empty():
    assert run("listftpuseraccount").strip() == "No FTP user accounts found."


def test_list_accounts():
    make_user("alice")
    make_user("bob")
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff", "/srv/alice")
    run("createftpuseraccount", "bob", "staff")
    lines = run("listftpuseraccount").splitlines()
    assert lines[0] == "FTP User Accounts:"
    alice, bob = FTPUserAccount.objects.order_by("pk")
    assert [line.split() for line in lines[4:]] == [
        [str(alice.pk), "alice", "staff", "/srv/alice"],
        [str(bob.pk), "bob", "staff"],
    ]


# --- deleting


def test_delete_group():
    run("createftpusergroup", "staff")
    pk = FTPUserGroup.objects.get().pk
    output = run("deleteftpusergroup", "staff")
    assert not FTPUserGroup.objects.exists()
    assert f'pk={pk}, "staff" was deleted' in output


def test_delete_unknown_group():
    with pytest.raises(CommandError, match='FTP user group "ghosts" does not exist'):
        run("deleteftpusergroup", "ghosts")


def test_delete_group_in_use_is_refused_with_the_count():
    make_user("alice")
    make_user("bob")
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff")
    run("createftpuseraccount", "bob", "staff")
    with pytest.raises(CommandError, match='"staff" has 2 user account'):
        run("deleteftpusergroup", "staff")
    assert FTPUserGroup.objects.filter(name="staff").exists()
    assert FTPUserAccount.objects.count() == 2


def test_delete_account_keeps_the_django_user():
    user = make_user()
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff")
    pk = FTPUserAccount.objects.get().pk
    output = run("deleteftpuseraccount", "alice")
    assert not FTPUserAccount.objects.exists()
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert FTPUserGroup.objects.filter(name="staff").exists()
    assert f'pk={pk}, "alice" was deleted' in output
    run("deleteftpusergroup", "staff")  # no longer in use


def test_delete_unknown_account():
    make_user()  # a Django user without an FTP account
    with pytest.raises(CommandError, match='FTP user account "alice" does not exist'):
        run("deleteftpuseraccount", "alice")


# --- a real process


def test_command_error_is_one_line_and_exit_status_1(project_env):
    result = manage(project_env, "deleteftpusergroup", "ghosts")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        'CommandError: FTP user group "ghosts" does not exist.'
    ]


def test_commands_work_in_a_real_process(project_env):
    manage(project_env, "createftpusergroup", "editors", check=True)
    assert "editors" in manage(project_env, "listftpusergroup", check=True).stdout
    result = manage(project_env, "createftpusergroup", "editors")
    assert result.returncode == 1
    assert result.stderr.strip() == 'CommandError: FTP user group "editors" already exists.'


# --- ftpserver: options


def config_for(*argv: str) -> FTPServerConfig:
    """The configuration ``manage.py ftpserver <argv>`` would serve."""
    command = FTPServerCommand()
    parser = command.create_parser("manage.py", "ftpserver")
    return command.build_config(vars(parser.parse_args(argv)))


def ftpserver_error(*argv: str) -> str:
    """The message of the ``CommandError`` that ``manage.py ftpserver <argv>`` fails with."""
    with pytest.raises(CommandError) as excinfo:
        run("ftpserver", *argv)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2121", ("127.0.0.1", 2121)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
        ("[::1]:2121", ("::1", 2121)),
        ("[::]:21", ("::", 21)),
        ("2121", ("192.0.2.7", 2121)),  # the host of the settings
    ],
)
def test_host_port_forms(settings, text, expected):
    settings.FTPSERVER_HOST = "192.0.2.7"
    config = config_for(text)
    assert (config.host, config.port) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("localhost:", "''"),
        ("localhost:ftp", "'ftp'"),
        (":2121", "':2121'"),
        ("[::1]", "'[::1]'"),
        ("[::1]2121", "'[::1]2121'"),
        ("[]:2121", "'[]:2121'"),
        ("[::1]:x", "'x'"),
        ("127.0.0.1:70000", "70000"),
        ("-1", "-1"),
        ("::1", "'::1'"),  # an IPv6 address needs brackets
        ("::1:2121", "'::1:2121'"),
        ("host:21:22", "'host:21:22'"),
    ],
)
def test_bad_host_port_is_a_one_line_error(text, named):
    assert named in ftpserver_error(text)


def test_no_address_uses_the_settings(settings):
    settings.FTPSERVER_HOST = "0.0.0.0"
    settings.FTPSERVER_PORT = 2100
    config = config_for()
    assert (config.host, config.port) == ("0.0.0.0", 2100)


def test_defaults_without_settings():
    config = config_for()
    assert (config.host, config.port) == ("127.0.0.1", 21)
    assert config.timeout is None
    assert config.passive_ports is None
    assert config.certfile is None
    assert not config.use_tls


def test_options_win_over_settings(settings, tls_files):
    certfile, keyfile = tls_files
    settings.FTPSERVER_TIMEOUT = 300
    settings.FTPSERVER_PASSIVE_PORTS = "50000-50001"
    settings.FTPSERVER_MASQUERADE_ADDRESS = "192.0.2.1"
    settings.FTPSERVER_FILE_ACCESS_USER = "somebody"
    settings.FTPSERVER_CERTFILE = "/settings/cert.pem"
    settings.FTPSERVER_KEYFILE = "/settings/key.pem"
    config = config_for(
        "127.0.0.1:2121",
        "--timeout=30",
        "--passive-ports=60000-60002,60010",
        "--masquerade-address=198.51.100.1",
        "--file-access-user=nobody",
        f"--certfile={certfile}",
        f"--keyfile={keyfile}",
        "--sendfile",
    )
    assert config.timeout == 30
    assert config.passive_ports == [60000, 60001, 60002, 60010]
    assert config.masquerade_address == "198.51.100.1"
    assert config.file_access_user == "nobody"
    assert (config.certfile, config.keyfile) == (certfile, keyfile)
    assert config.sendfile is True


def test_settings_apply_without_options(settings):
    settings.FTPSERVER_TIMEOUT = 300
    settings.FTPSERVER_PASSIVE_PORTS = "50000-50001"
    settings.FTPSERVER_MASQUERADE_ADDRESS = "192.0.2.1"
    settings.FTPSERVER_SENDFILE = True
    config = config_for()
    assert config.timeout == 300
    assert config.passive_ports == [50000, 50001]
    assert config.masquerade_address == "192.0.2.1"
    assert config.sendfile is True


def test_timeout_zero_on_the_command_line_wins_over_the_setting(settings):
    # 0 disables the idle timeout; it must not read as "option not given".
    settings.FTPSERVER_TIMEOUT = 300
    assert config_for("--timeout=0").timeout == 0


def test_passive_ports_setting_may_be_a_list(settings):
    settings.FTPSERVER_PASSIVE_PORTS = [60001, 60000]
    assert config_for().passive_ports == [60000, 60001]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("60010-60000", "'60010-60000'"),
        ("abc", "'abc'"),
        ("0-10", "'0-10'"),
        ("60000,,60001", "''"),
        ("65536", "'65536'"),
    ],
)
def test_bad_passive_ports_option(value, named):
    message = ftpserver_error("127.0.0.1:0", f"--passive-ports={value}")
    assert message.startswith("invalid passive ports")
    assert named in message


@pytest.mark.parametrize("value", ["60000-x", 60000, ["60000", "x"], [0]])
def test_bad_passive_ports_setting(settings, value):
    settings.FTPSERVER_PASSIVE_PORTS = value
    message = ftpserver_error("127.0.0.1:0")
    assert "passive ports" in message


def test_negative_timeout_option():
    assert "timeout must be 0 or more seconds, not -5" in ftpserver_error(
        "127.0.0.1:0", "--timeout=-5"
    )


def test_negative_timeout_setting(settings):
    settings.FTPSERVER_TIMEOUT = -1
    assert "not -1" in ftpserver_error("127.0.0.1:0")


def test_bad_port_setting(settings):
    settings.FTPSERVER_PORT = "2121"
    assert "not '2121'" in ftpserver_error()


def test_missing_certificate(tmp_path):
    missing = tmp_path / "nope.pem"
    assert ftpserver_error("127.0.0.1:0", f"--certfile={missing}") == (
        f"TLS certificate file not found: {missing}"
    )


def test_missing_key(tls_files, tmp_path):
    certfile, _ = tls_files
    missing = tmp_path / "nope.key"
    message = ftpserver_error("127.0.0.1:0", f"--certfile={certfile}", f"--keyfile={missing}")
    assert message == f"TLS key file not found: {missing}"


def test_key_without_certificate(tls_files):
    _, keyfile = tls_files
    message = ftpserver_error("127.0.0.1:0", f"--keyfile={keyfile}")
    assert message == "a TLS key file was given without a certificate file"


def test_certificate_that_is_not_one(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    message = ftpserver_error("127.0.0.1:0", f"--certfile={garbage}")
    assert message.startswith("cannot load the TLS ")


def test_key_not_matching_the_certificate(tls_files, tmp_path):
    import trustme

    certfile, _ = tls_files
    other = tmp_path / "other.key"
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(other))
    message = ftpserver_error("127.0.0.1:0", f"--certfile={certfile}", f"--keyfile={other}")
    assert message.startswith("cannot load the TLS ")


def test_port_already_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = ftpserver_error(f"127.0.0.1:{port}")
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}:")
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: Address already in use")


def test_failed_starts_leak_no_descriptors():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ftpserver_error(f"127.0.0.1:{port}")  # imports and caches whatever it needs
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            ftpserver_error(f"127.0.0.1:{port}")
        assert len(os.listdir("/proc/self/fd")) == before


def test_unknown_host():
    message = ftpserver_error("no-such-host.invalid:2121")
    assert (
        message == "cannot listen on no-such-host.invalid:2121: unknown host 'no-such-host.invalid'"
    )


def test_unimportable_handler_setting(settings):
    settings.FTPSERVER_HANDLER = "no_such_module.Handler"
    message = ftpserver_error("127.0.0.1:0")
    assert message.startswith("cannot import a configured class:")
    assert "no_such_module" in message


def test_unknown_file_access_user():
    message = ftpserver_error("127.0.0.1:0", "--file-access-user=no-such-user-here")
    assert "no-such-user-here" in message


# --- ftpserver: as a real process


as_nobody = procs.as_nobody


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory ``nobody`` can enter (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="ftpserver-nobody-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def nobody_ftpserver(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = procs.base_env(directory)
    return subprocess.run(
        [*as_nobody(), *procs.command_line("ftpserver", *args)],
        env=env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_privileged_port() -> int:
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    for port in range(min(start, 1024) - 1, 0, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"ports below {start} are not privileged here")


def test_privileged_port_as_non_root(nobody_dir):
    as_nobody()  # skip early if that cannot be staged
    port = free_privileged_port()
    result = nobody_ftpserver(nobody_dir, f"127.0.0.1:{port}")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"CommandError: cannot listen on 127.0.0.1:{port}: Permission denied "
        "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    ]


def test_unreadable_certificate(nobody_dir, tls_files):
    certfile = nobody_dir / "cert.pem"
    shutil.copy(tls_files[0], certfile)
    certfile.chmod(0o600)  # root's only
    result = nobody_ftpserver(nobody_dir, "127.0.0.1:0", f"--certfile={certfile}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: TLS certificate file not readable: {certfile}"
    ]


def test_startup_message_and_pidfile(project_env, tmp_path):
    pidfile = tmp_path / "ftpserver.pid"
    server = procs.ServerProcess(project_env, "127.0.0.1:0", f"--pidfile={pidfile}")
    try:
        server.wait_started()
        assert server.pid == server.proc.pid
        assert pidfile.read_text().strip() == str(server.proc.pid)
        client = server.connect()
        client.quit()
        assert server.stop() == 0
    finally:
        server.kill()
    assert not pidfile.exists()
    assert f"Serving FTP on 127.0.0.1:{server.port}\n" in server.stdout
    assert "Quit the server with CONTROL-C." in server.stdout
    assert server.stderr == ""


def test_no_pidfile_when_the_server_cannot_start(project_env, tmp_path):
    pidfile = tmp_path / "ftpserver.pid"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = manage(project_env, "ftpserver", f"127.0.0.1:{port}", f"--pidfile={pidfile}")
    assert result.returncode == 1
    assert "in use" in result.stderr
    assert not pidfile.exists()


def test_unwritable_pidfile(tmp_path):
    pidfile = tmp_path / "no-such-dir" / "ftpserver.pid"
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("ftpserver", "127.0.0.1:0", f"--pidfile={pidfile}", stdout=out)
    assert str(excinfo.value) == f"cannot write the pidfile {pidfile}: No such file or directory"
    assert out.getvalue() == ""  # reported before "Serving FTP on ..."


def test_daemonize(project_env, tmp_path):
    project = Path(project_env["FTPSERVER_TEST_DB_DIR"])
    pidfile = project / "ftpserver.pid"
    log = tmp_path / "daemon.log"
    # The daemon changes directory: the relative pidfile must still land here.
    project_env["FTPSERVER_TEST_DAEMONIZE_OPTIONS"] = json.dumps(
        {"our_home_dir": "/", "out_log": str(log), "err_log": str(log)}
    )
    server = procs.ServerProcess(
        project_env, "127.0.0.1:0", "--daemonize", "--pidfile=ftpserver.pid"
    )
    daemon_pid = None
    try:
        # The command returns once the server is bound and detached.
        assert server.proc.wait(timeout=30) == 0
        started = server.wait_started()
        daemon_pid = started["pid"]
        assert daemon_pid != server.proc.pid
        assert procs.wait_until(pidfile.exists, what="the pidfile")
        assert int(pidfile.read_text()) == daemon_pid
        with open(f"/proc/{daemon_pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        session_id = int(stat[3])
        assert session_id != os.getsid(0)  # detached: a session of its own
        assert os.readlink(f"/proc/{daemon_pid}/cwd") == "/"

        client = server.connect()
        client.storbinary("STOR daemon.txt", io.BytesIO(b"from the daemon"))
        client.quit()
        home = Path(project_env["TEST_HOME"])
        assert (home / "daemon.txt").read_bytes() == b"from the daemon"

        os.kill(daemon_pid, signal.SIGTERM)
        procs.wait_until(lambda: procs.process_gone(daemon_pid), what="the daemon to exit")
        daemon_pid = None
        procs.wait_until(lambda: not pidfile.exists(), what="the pidfile to go")
        assert len(procs.probe_lines(project_env, "ftp_server_stopped")) == 1
    finally:
        if daemon_pid is not None and not procs.process_gone(daemon_pid):
            os.kill(daemon_pid, signal.SIGKILL)
        server.kill()


# --- ftpserver: pyftpdlib's session log on the console


@pytest.fixture
def unconfigured_logging(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """The ``pyftpdlib`` logger and the root logger as a fresh project has them.

    pytest adds its capture handlers to the root logger at the start of
    each phase: the test itself must call ``without_root_handlers``.
    """
    ftp_logger = logging.getLogger("pyftpdlib")
    monkeypatch.setattr(ftp_logger, "handlers", [])
    monkeypatch.setattr(ftp_logger, "level", logging.NOTSET)
    monkeypatch.setattr(ftp_logger, "propagate", True)
    return ftp_logger


def without_root_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def test_session_log_is_printed_when_nothing_configures_it(unconfigured_logging, monkeypatch):
    without_root_handlers(monkeypatch)
    handler = log_sessions_on_console()
    assert unconfigured_logging.handlers == [handler]
    assert unconfigured_logging.getEffectiveLevel() == logging.INFO
    assert isinstance(handler.formatter, LogFormatter)


@pytest.mark.parametrize(
    "configure",
    [
        pytest.param(lambda lg: lg.addHandler(logging.NullHandler()), id="handler"),
        pytest.param(lambda lg: lg.setLevel(logging.WARNING), id="level"),
        pytest.param(lambda lg: setattr(lg, "propagate", False), id="no-propagate"),
        pytest.param(lambda lg: logging.getLogger().addHandler(logging.NullHandler()), id="root"),
    ],
)
def test_session_log_follows_the_projects_logging(unconfigured_logging, monkeypatch, configure):
    """A project that silences or routes the pyftpdlib logger keeps it so."""
    without_root_handlers(monkeypatch)
    configure(unconfigured_logging)
    before = unconfigured_logging.handlers[:]
    assert log_sessions_on_console() is None
    assert unconfigured_logging.handlers == before
