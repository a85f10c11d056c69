"""Live sessions: published by a real server, listed, disconnected (commands and admin).

The in-process tests use the tests' ``LocMemCache``, which the server
thread and the test share; ``test_two_processes_*`` run two real server
processes that share Redis with this process, under a key prefix of their
own.
"""

from __future__ import annotations

import contextlib
import ftplib
import signal
import socket
import ssl
import time
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from django_ftpserver import checks
from django_ftpserver.ops import sessions as livesessions

from .conftest import PASSWORD, RawClient, wait_until
from .test_lockout_redis import processes, redis_prefix  # noqa: F401 - fixtures
from .test_tls_policy import Certificate, make_certificate

CHANGELIST = "admin:django_ftpserver_ftpsession_changelist"


def listed(predicate=lambda session: True, count: int = 1) -> list[livesessions.LiveSession]:
    """Wait until ``count`` published sessions match ``predicate``; return them."""
    return wait_until(
        lambda: (
            (found := [s for s in livesessions.list_sessions() if predicate(s)])
            and len(found) == count
            and found
        ),
        what=f"{count} matching session(s) published",
    )


def is_closed_by_server(ftp: ftplib.FTP) -> str:
    """The reply a disconnected client reads, then the end of its connection."""
    reply = ftp.getline()
    assert ftp.sock.recv(1) == b""  # closed by the server
    return reply


@pytest.fixture
def named_server(server_factory, settings):
    settings.FTPSERVER_SERVER_NAME = "ftp-test-1"
    return server_factory()


def test_sessions_are_published_with_what_they_do(named_server, account, home):
    (home / "file.bin").write_bytes(b"x" * 5000)
    ftp = named_server.connect("alice")
    ftp.retrbinary("RETR file.bin", lambda data: None)
    anonymous = RawClient(named_server)  # connected, not logged in
    try:
        (session,) = listed(lambda s: s.username == "alice" and s.bytes_moved >= 5000)
        assert session.server == "ftp-test-1"
        assert session.command == "RETR"
        assert session.bytes_sent == 5000 and session.bytes_received == 0
        host, port = ftp.sock.getsockname()
        assert session.remote == f"{host}:{port}"
        assert 0 <= session.seconds < 600
        (other,) = listed(lambda s: s.username == "")
        assert other.command == ""
    finally:
        ftp.quit()
        anonymous.close()
    wait_until(lambda: livesessions.list_sessions() == [], what="closed sessions unlisted")


def test_disconnect_request_closes_the_session(named_server, account):
    ftp = named_server.connect("alice")
    keep = named_server.connect("alice")
    ftp.pwd()
    (session,) = listed(lambda s: s.command == "PWD")
    requested = time.monotonic()
    assert livesessions.request_disconnect(session.id) == session
    assert is_closed_by_server(ftp).startswith("421 Disconnected by the administrator")
    elapsed = time.monotonic() - requested
    assert keep.voidcmd("NOOP").startswith("200")  # the other session goes on
    listed(lambda s: True, count=1)
    keep.quit()
    # The server looks for requests every second: well within two on an idle
    # machine; not asserted tighter than the tests' usual deadlines.
    assert elapsed < 30


def test_disconnect_during_a_download(named_server, account, home):
    (home / "big.bin").write_bytes(b"x" * (64 * 1024 * 1024))
    ftp = named_server.connect("alice")
    ftp.voidcmd("TYPE I")
    data = ftp.transfercmd("RETR big.bin")
    data.settimeout(30)
    assert data.recv(65536)  # the transfer runs, and waits for this slow reader
    (session,) = listed(lambda s: s.command == "RETR")
    livesessions.request_disconnect(session.id)
    reply = ftp.getline()
    assert reply.startswith(("421", "426")), reply
    drained = 0
    while chunk := data.recv(1 << 20):
        drained += len(chunk)
    assert drained < 64 * 1024 * 1024  # cut off, not finished
    data.close()
    wait_until(lambda: livesessions.list_sessions() == [], what="the session unlisted")


def test_a_stopped_server_takes_its_sessions_off_the_list(named_server, account):
    ftp = named_server.connect("alice")
    listed()
    named_server.stop()
    assert livesessions.list_sessions() == []
    ftp.close()


def test_unknown_session_cannot_be_disconnected(named_server):
    assert livesessions.request_disconnect("nope-1") is None


def test_not_published_when_turned_off(server_factory, settings, account):
    settings.FTPSERVER_SESSIONS_CACHE = False
    server = server_factory()
    assert server.runner.server.session_registry is None
    ftp = server.connect("alice")
    assert livesessions.list_sessions() == []
    ftp.quit()


def test_e032_unknown_sessions_cache(settings):
    settings.FTPSERVER_SESSIONS_CACHE = "nowhere"
    assert [m.id for m in checks.check_sessions_cache()] == ["django_ftpserver.E032"]
    settings.FTPSERVER_SESSIONS_CACHE = "default"
    assert checks.check_sessions_cache() == []


def test_an_unknown_sessions_cache_stops_the_server_at_start(settings, transactional_db):
    settings.FTPSERVER_SESSIONS_CACHE = "nowhere"
    with pytest.raises(CommandError, match="FTPSERVER_SESSIONS_CACHE names the cache 'nowhere'"):
        call_command("ftpserver", "127.0.0.1:0")


# --- commands


def test_listftpsessions_and_disconnectftpsession(named_server, account):
    out = StringIO()
    call_command("listftpsessions", stdout=out)
    assert "No FTP session is open." in out.getvalue()
    ftp = named_server.connect("alice")
    (session,) = listed(lambda s: s.username == "alice")
    out = StringIO()
    call_command("listftpsessions", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if session.id in line)
    assert "ftp-test-1" in line and "alice" in line and session.remote in line
    out = StringIO()
    call_command("disconnectftpsession", session.id, stdout=out)
    assert "The session is closed." in out.getvalue()
    assert is_closed_by_server(ftp).startswith("421")


# --- FTPS: a session whose control connection is TLS

#: What the issue promises: a disconnected session is closed within two seconds.
DISCONNECT_DEADLINE = 2.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("sessions-tls"))


@pytest.fixture
def tls_server(server_factory, settings, certificate):
    settings.FTPSERVER_SERVER_NAME = "ftp-tls-1"
    return server_factory(certfile=str(certificate.certfile), keyfile=str(certificate.keyfile))


def tls_login(server, certificate) -> ftplib.FTP_TLS:
    ftp = ftplib.FTP_TLS(context=certificate.client_context(), timeout=15)
    ftp.connect(server.host, server.port)
    ftp.login("alice", PASSWORD)
    ftp.prot_p()
    return ftp


def closed_by(ftp: ftplib.FTP_TLS, deadline: float) -> str:
    """The reply a disconnected FTPS client reads, then the end of its connection.

    Each read may only wait until ``deadline`` (``time.monotonic()``): a
    server that has not closed the session by then fails the test with a
    timeout.
    """
    ftp.sock.settimeout(max(0.01, deadline - time.monotonic()))
    reply = ftp.getline()
    ftp.sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        rest = ftp.sock.recv(1)  # TLS close_notify, or a bare end of file
    except ssl.SSLEOFError:
        rest = b""
    assert rest == b"", rest
    return reply


def test_disconnect_a_tls_session(tls_server, certificate, account):
    ftp = tls_login(tls_server, certificate)
    ftp.pwd()
    (session,) = listed(lambda s: s.command == "PWD")
    requested = time.monotonic()
    out = StringIO()
    call_command("disconnectftpsession", session.id, "--wait", "0", stdout=out)
    assert session.id in out.getvalue()
    reply = closed_by(ftp, requested + DISCONNECT_DEADLINE)
    assert reply.startswith("421 Disconnected by the administrator"), reply
    ftp.close()
    wait_until(lambda: livesessions.get_session(session.id) is None, what="the session unlisted")
    # The server goes on serving FTPS.
    again = tls_login(tls_server, certificate)
    assert again.pwd() == "/"
    again.quit()


def test_disconnect_a_tls_session_during_a_download(tls_server, certificate, account, home):
    size = 64 * 1024 * 1024
    (home / "big.bin").write_bytes(b"x" * size)
    ftp = tls_login(tls_server, certificate)
    ftp.voidcmd("TYPE I")
    data = ftp.transfercmd("RETR big.bin")  # a TLS data connection (PROT P)
    data.settimeout(30)
    assert data.recv(65536)  # the transfer runs, and waits for this slow reader
    (session,) = listed(lambda s: s.command == "RETR")
    requested = time.monotonic()
    call_command("disconnectftpsession", session.id, "--wait", "0", stdout=StringIO())
    reply = closed_by(ftp, requested + DISCONNECT_DEADLINE)
    assert reply.startswith(("421", "426")), reply
    drained = 0
    with contextlib.suppress(ssl.SSLError, OSError):
        while chunk := data.recv(1 << 20):
            drained += len(chunk)
    assert drained < size  # cut off, not finished
    data.close()
    ftp.close()
    wait_until(lambda: livesessions.get_session(session.id) is None, what="the session unlisted")
    again = tls_login(tls_server, certificate)
    received = bytearray()
    (home / "small.bin").write_bytes(b"s" * 1000)
    again.retrbinary("RETR small.bin", received.extend)
    assert received == b"s" * 1000
    again.quit()


def test_disconnectftpsession_of_an_unknown_id_is_one_line(named_server):
    with pytest.raises(CommandError, match="no open FTP session 'nope-3'"):
        call_command("disconnectftpsession", "nope-3", stdout=StringIO())


# --- the admin page, with Django's test client


def staff(*permissions: str):
    user = get_user_model().objects.create_user(
        f"staff-{len(permissions)}", password="x", is_staff=True
    )
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_admin_page_needs_the_view_permission(client, named_server):
    client.force_login(staff())
    assert client.get(reverse(CHANGELIST)).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "FTP sessions" not in index


def test_admin_page_lists_sessions_read_only(client, named_server, account):
    ftp = named_server.connect("alice")
    ftp.pwd()
    (session,) = listed(lambda s: s.command == "PWD")
    client.force_login(staff("view_ftpsession"))
    assert "FTP sessions" in client.get(reverse("admin:index")).content.decode()
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    page = response.content.decode()
    for text in (session.id, "alice", session.remote, "ftp-test-1", "PWD"):
        assert text in page
    assert "Disconnect" not in page  # no permission to disconnect
    url = reverse("admin:django_ftpserver_ftpsession_disconnect", args=[session.id])
    assert client.post(url).status_code == 403
    assert ftp.voidcmd("NOOP").startswith("200")
    ftp.quit()


def test_admin_disconnects_a_session(client, named_server, account):
    ftp = named_server.connect("alice")
    (session,) = listed(lambda s: s.username == "alice")
    client.force_login(staff("view_ftpsession", "disconnect_ftpsession"))
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "Disconnect" in page
    url = reverse("admin:django_ftpserver_ftpsession_disconnect", args=[session.id])
    assert client.get(url).status_code == 405  # a GET changes nothing
    response = client.post(url, follow=True)
    assert response.status_code == 200
    assert f"Disconnecting FTP session {session.id}" in response.content.decode()
    assert is_closed_by_server(ftp).startswith("421")
    wait_until(lambda: livesessions.list_sessions() == [], what="the session unlisted")
    response = client.post(url, follow=True)
    assert "is not open" in response.content.decode()


def test_admin_page_says_when_the_cache_is_down(client, settings, transactional_db):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        },
    }
    settings.FTPSERVER_SESSIONS_CACHE = "broken"
    client.force_login(staff("view_ftpsession"))
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "could not be read from the cache broken" in response.content.decode()


# --- two server processes sharing Redis


@pytest.mark.slow
def test_two_processes_share_their_sessions_through_redis(processes):  # noqa: F811
    a, b = processes(), processes()
    on_a, on_b = ftplib.FTP(), ftplib.FTP()
    on_a.connect("127.0.0.1", a.port, timeout=15)
    on_a.login("alice", "s3cret-pass")
    on_b.connect("127.0.0.1", b.port, timeout=15)
    on_b.login("alice", "s3cret-pass")
    sessions = listed(lambda s: s.username == "alice", count=2)
    servers = {session.server for session in sessions}
    hostname = socket.gethostname()
    assert servers == {f"{hostname}:{a.port}", f"{hostname}:{b.port}"}
    session_b = next(s for s in sessions if s.server.endswith(f":{b.port}"))

    out = StringIO()
    call_command("disconnectftpsession", session_b.id, stdout=out)
    assert "The session is closed." in out.getvalue()
    assert is_closed_by_server(on_b).startswith("421")
    assert on_a.voidcmd("NOOP").startswith("200")
    listed(lambda s: s.server.endswith(f":{a.port}"))

    # A crashed server cannot unlist its sessions: they expire.
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    assert livesessions.list_sessions()  # still listed right after the crash
    wait_until(
        lambda: livesessions.list_sessions() == [],
        timeout=livesessions.SERVER_TTL + 30,
        what="the crashed server's sessions to expire",
    )
    on_a.close()
