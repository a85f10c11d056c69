"""/metrics, /healthz and /readyz of a real server, read with a real HTTP client.

Each test runs real FTP sessions against a server started with ``--metrics
127.0.0.1:0``, scrapes ``/metrics`` over HTTP and parses it with
``prometheus_client``'s own parser: the counts must be what the sessions did.
"""

from __future__ import annotations

import ftplib
import io
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ftpserver.ops import health

from .conftest import PASSWORD, RawClient, try_login, wait_until

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def http_get(server: Any, path: str) -> tuple[int, str, str]:
    """GET ``path`` from the server's operations endpoint: (status, content type, body)."""
    host, port = server.runner.operations.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=15) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(server: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels)."""
    status, content_type, text = http_get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def commands(samples: dict) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["command"], dict(labels)["reply_class"]): count
        for (name, labels), count in samples.items()
        if name == "ftpserver_commands_total"
    }


@pytest.fixture
def metrics_server(server_factory, settings):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0  # failed logins of these tests lock nobody out
    return server_factory(metrics="127.0.0.1:0")


def no_sessions_left(server: Any) -> dict:
    return wait_until(
        lambda: (s := scrape(server)) and value(s, "ftpserver_sessions") == 0 and s,
        what="all sessions closed",
    )


def test_counts_match_what_the_sessions_did(metrics_server, account, home):
    server = metrics_server
    (home / "down.bin").write_bytes(b"d" * 5000)
    # Two failed logins at once: each reply waits for pyftpdlib's 3 s delay.
    failures = {}
    threads = [
        threading.Thread(
            target=lambda user, pw: failures.setdefault(
                user, try_login(server.host, server.port, user, pw)
            ),
            args=args,
        )
        for args in (("alice", "wrong-password"), ("nobody", PASSWORD))
    ]
    for thread in threads:
        thread.start()
    ftp = server.connect("alice")
    ftp.pwd()
    ftp.storbinary("STOR up.bin", io.BytesIO(b"u" * 12345))
    names = ftp.nlst()
    received = bytearray()
    ftp.retrbinary("RETR down.bin", received.extend)
    with pytest.raises(ftplib.error_perm):
        ftp.sendcmd("FOO bar")
    ftp.quit()
    for thread in threads:
        thread.join(30)
    assert all(reply.startswith("530") for reply in failures.values()), failures

    samples = no_sessions_left(server)
    assert value(samples, "ftpserver_sessions_started_total") == 3
    assert value(samples, "ftpserver_logins_total", result="ok") == 1
    assert value(samples, "ftpserver_logins_total", result="bad_password") == 1
    assert value(samples, "ftpserver_logins_total", result="unknown_user") == 1
    assert value(samples, "ftpserver_logins_total", result="locked_out") == 0
    assert value(samples, "ftpserver_login_duration_seconds_count") == 3
    assert value(samples, "ftpserver_received_bytes_total") == 12345
    listing = sum(len(name) + 2 for name in names)
    assert value(samples, "ftpserver_sent_bytes_total") == 5000 + listing
    assert value(samples, "ftpserver_transfers_total", direction="upload", result="complete") == 1
    assert value(samples, "ftpserver_transfers_total", direction="download", result="complete") == 1
    assert value(samples, "ftpserver_transfers_total", direction="upload", result="incomplete") == 0
    assert value(samples, "ftpserver_transfer_duration_seconds_count", direction="upload") == 1
    assert value(samples, "ftpserver_transfer_duration_seconds_count", direction="download") == 1
    counted = commands(samples)
    assert counted[("USER", "3xx")] == 3
    assert counted[("PASS", "2xx")] == 1
    assert counted[("PASS", "5xx")] == 2
    assert counted[("PWD", "2xx")] == 1
    assert counted[("STOR", "1xx")] == 1
    assert counted[("RETR", "1xx")] == 1
    assert counted[("NLST", "1xx")] == 1
    assert counted[("other", "5xx")] == 1  # FOO: never its own label
    assert counted[("QUIT", "2xx")] == 1
    assert value(samples, "ftpserver_errors_total", kind="session") == 0


def test_labels_never_carry_usernames_paths_or_addresses(metrics_server, account, home):
    ftp = metrics_server.connect("alice")
    ftp.mkd("secret-project")
    ftp.sendcmd("SITE CHMOD 755 secret-project")
    ftp.quit()
    status, _, text = http_get(metrics_server, "/metrics")
    assert status == 200
    for private in ("alice", "secret-project", "127.0.0.1", str(home)):
        assert private not in text
    counted = commands(no_sessions_left(metrics_server))
    assert counted[("SITE CHMOD", "2xx")] == 1
    assert counted[("MKD", "2xx")] == 1


def test_open_sessions_gauge_follows_clients(metrics_server, account):
    clients = [metrics_server.connect("alice") for _ in range(3)]
    raw = RawClient(metrics_server)  # not logged in: still on the accepting loop
    samples = wait_until(
        lambda: (s := scrape(metrics_server)) and value(s, "ftpserver_sessions") == 4 and s,
        what="4 open sessions",
    )
    assert value(samples, "ftpserver_sessions_started_total") == 4
    for client in clients:
        client.quit()
    raw.close()
    assert value(no_sessions_left(metrics_server), "ftpserver_sessions_started_total") == 4


def test_incomplete_upload_and_lockout(server_factory, settings, account, home):
    settings.FTPSERVER_LOCKOUT_FAILURES = 2
    server = server_factory(metrics="127.0.0.1:0")
    ftp = server.connect("alice")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR crashed.bin")
    conn.sendall(b"x" * 256 * 1024)
    time.sleep(0.2)  # let the server start reading
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # a reset: the upload is incomplete
    assert ftp.getline().startswith("426")
    ftp.quit()
    replies = [try_login(server.host, server.port, "alice", "wrong") for _ in range(2)]
    assert all(reply.startswith("530") for reply in replies), replies
    locked = try_login(server.host, server.port)
    assert "Too many failed logins from your address" in locked

    samples = no_sessions_left(server)
    assert value(samples, "ftpserver_transfers_total", direction="upload", result="incomplete") == 1
    assert value(samples, "ftpserver_transfers_total", direction="upload", result="complete") == 0
    assert 0 < value(samples, "ftpserver_received_bytes_total") <= 256 * 1024
    assert value(samples, "ftpserver_lockouts_total") == 1
    assert value(samples, "ftpserver_logins_total", result="bad_password") == 2
    assert value(samples, "ftpserver_logins_total", result="locked_out") == 1
    assert value(samples, "ftpserver_logins_total", result="ok") == 1
    assert commands(samples)[("STOR", "1xx")] == 1


def test_a_failing_lockout_cache_counts_as_an_error(server_factory, settings, account):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        },
    }
    settings.FTPSERVER_LOCKOUT_CACHE = "broken"
    server = server_factory(metrics="127.0.0.1:0")
    assert try_login(server.host, server.port).startswith("230")  # the login goes on
    samples = no_sessions_left(server)
    assert value(samples, "ftpserver_errors_total", kind="lockout_cache") >= 1
    assert value(samples, "ftpserver_logins_total", result="ok") == 1
    # ...and the server is not ready: it cannot count failed logins.
    status, content_type, body = http_get(server, "/readyz")
    assert status == 503 and content_type == "application/json"
    report = json.loads(body)
    assert report["status"] == "fail"
    assert report["checks"]["lockout_cache"]["ok"] is False
    assert report["checks"]["database"]["ok"] is True


def test_healthz_and_readyz(metrics_server):
    status, content_type, body = http_get(metrics_server, "/healthz")
    assert (status, content_type) == (200, "application/json")
    report = json.loads(body)
    assert report["status"] == "ok"
    assert report["checks"]["listening"] == {"ok": True}
    assert report["checks"]["event_loop"]["ok"] is True
    status, _, body = http_get(metrics_server, "/readyz")
    assert status == 200, body
    checks = json.loads(body)["checks"]
    assert checks["database"]["ok"] and checks["lockout_cache"]["ok"]
    status, _, _ = http_get(metrics_server, "/nothing-here")
    assert status == 404


def test_liveness_fails_for_a_stuck_loop_and_a_closed_socket(metrics_server):
    server = metrics_server.runner.server
    wait_until(lambda: health.liveness(server)[0], what="the loop to start turning")
    live, checks = health.liveness(server, heartbeat_limit=-1)  # every turn is too old
    assert not live and checks["event_loop"]["ok"] is False
    metrics_server.stop()
    live, checks = health.liveness(server)
    assert not live and checks["listening"]["ok"] is False


def test_healthz_turns_503_when_the_loop_stops_turning(metrics_server):
    """A loop that stopped turning (a hung receiver, a deadlock) fails the probe."""
    server = metrics_server.runner.server
    metrics_server.runner.operations.heartbeat_limit = 3.0
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(60)

    server.ioloop.call_later(0, hang)  # runs on the accepting loop, and blocks it
    try:
        assert entered.wait(30)
        status, body = wait_until(
            lambda: (r := http_get(metrics_server, "/healthz"))[0] == 503 and (r[0], r[2]),
            what="healthz 503",
        )
        assert json.loads(body)["checks"]["event_loop"]["ok"] is False
    finally:
        release.set()
    wait_until(lambda: http_get(metrics_server, "/healthz")[0] == 200, what="healthz back to 200")


def test_no_metrics_endpoint_without_the_option(ftp_server):
    assert ftp_server.runner.operations is None
    assert ftp_server.runner.server.metrics is None


def test_metrics_address_from_the_setting(server_factory, settings):
    settings.FTPSERVER_METRICS_ADDRESS = "127.0.0.1:0"
    server = server_factory()
    assert http_get(server, "/healthz")[0] == 200


@pytest.mark.parametrize("address", ["nope", "127.0.0.1:99999", "::1:9100", "host:port"])
def test_a_bad_metrics_address_is_one_line(address, transactional_db):
    with pytest.raises(CommandError, match="invalid --metrics address"):
        call_command("ftpserver", "127.0.0.1:0", metrics=address)


def test_a_busy_metrics_port_is_one_line(transactional_db):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            call_command("ftpserver", "127.0.0.1:0", metrics=f"127.0.0.1:{port}")


def test_missing_prometheus_client_is_one_line(monkeypatch, transactional_db):
    monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)
    with pytest.raises(CommandError, match=r"pip install 'django-ftpserver\[metrics\]'"):
        call_command("ftpserver", "127.0.0.1:0", metrics="127.0.0.1:0")


def test_a_project_pre_login_hook_still_runs_on_a_session_thread(server_factory, settings):
    """--metrics puts a mixin in front of the handler class: the project's hook is still seen."""
    from .test_login_loop import OwnConnectHandler

    settings.FTPSERVER_HANDLER = OwnConnectHandler
    OwnConnectHandler.threads.clear()
    running = server_factory(metrics="127.0.0.1:0")
    assert not running.runner.server.handler.can_serve_on_loop()
    client = running.connect()
    client.voidcmd("NOOP")
    client.quit()
    assert OwnConnectHandler.threads and OwnConnectHandler.threads[0].startswith("ftp-session")


def test_a_login_refused_by_policy_counts_as_refused(metrics_server, account):
    from django.core.exceptions import PermissionDenied

    from django_ftpserver import signals

    def refuse(sender, **kwargs):
        raise PermissionDenied("Not during maintenance.")

    signals.ftp_pre_login.connect(refuse, weak=False)
    try:
        reply = try_login(metrics_server.host, metrics_server.port)
    finally:
        signals.ftp_pre_login.disconnect(refuse)
    assert reply.startswith("530 Not during maintenance"), reply
    samples = no_sessions_left(metrics_server)
    assert value(samples, "ftpserver_logins_total", result="refused") == 1
    assert value(samples, "ftpserver_logins_total", result="ok") == 0
    assert commands(samples)[("PASS", "5xx")] == 1


# --- connection limits: refusals and login timeouts


def connect_from(server: Any, source: str) -> ftplib.FTP:
    """A control connection from ``source`` (a loopback address), greeted or refused."""
    ftp = ftplib.FTP(source_address=(source, 0))
    ftp.connect(server.host, server.port, timeout=15)
    return ftp


def test_refusals_are_counted_by_limit(server_factory, settings, account):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0
    # Four connections; one per address; two of them before login at most.
    server = server_factory(
        metrics="127.0.0.1:0",
        **{"max-connections": 4, "max-connections-per-ip": 1, "max-pre-login-percent": 50},
    )
    clients = []
    try:
        clients.append(connect_from(server, "127.0.0.1"))
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections from the same IP"):
            connect_from(server, "127.0.0.1")
        clients.append(connect_from(server, "127.0.0.2"))
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections waiting to log in"):
            connect_from(server, "127.0.0.3")
        for ftp in clients:  # logged in: no longer counted before login
            ftp.login("alice", PASSWORD)
        clients.append(connect_from(server, "127.0.0.3"))
        clients.append(connect_from(server, "127.0.0.4"))
        with pytest.raises(ftplib.error_temp, match="^421 Too many connections. Service"):
            connect_from(server, "127.0.0.5")

        samples = scrape(server)
        refused = {
            dict(labels)["reason"]: count
            for (name, labels), count in samples.items()
            if name == "ftpserver_connections_refused_total"
        }
        assert refused == {
            "max_connections": 1,
            "max_connections_per_ip": 1,
            "max_pre_login": 1,
        }
        assert value(samples, "ftpserver_login_timeouts_total") == 0
        # A refused connection is no session: only the four served count.
        assert value(samples, "ftpserver_sessions_started_total") == 4
        assert value(samples, "ftpserver_sessions") == 4
    finally:
        for ftp in clients:
            ftp.close()
    # Never an address in a label.
    text = http_get(server, "/metrics")[2]
    assert "127.0.0." not in text


def test_login_timeouts_are_counted(server_factory, settings, account):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0
    server = server_factory(metrics="127.0.0.1:0", **{"login-timeout": 1})
    logged_in = server.connect("alice")  # logged in at once: its deadline is cancelled
    idle = [RawClient(server), RawClient(server)]
    try:
        for client in idle:
            code, text = client.read_reply()  # waits for the deadline, however busy the machine
            assert code == 421 and b"Not logged in within 1 second" in text, (code, text)
        samples = wait_until(
            lambda: (s := scrape(server)) and value(s, "ftpserver_login_timeouts_total") == 2 and s,
            what="two login timeouts counted",
        )
        assert logged_in.voidcmd("NOOP").startswith("200")
        assert value(samples, "ftpserver_login_timeouts_total") == 2
        assert value(samples, "ftpserver_connections_refused_total", reason="max_pre_login") == 0
    finally:
        logged_in.close()
        for client in idle:
            client.sock.close()
