"""Several servers, one deployment: the scale-out setup of docs/deployment.rst.

Two real ``manage.py ftpserver`` processes (``tests.settings_cluster``)
share what a scale-out deployment shares: the accounts in PostgreSQL (the
test database), lockout and caches in Redis (under a key prefix unique to
the test), and one S3 bucket on a ``moto_server`` process, served through
``StorageFS``. The test client
plays the load balancer in front of them: it connects from 127.0.0.1, the
trusted proxy, and names the client in a PROXY header.

Run with ``make test-postgres`` (CI does, with the services required).
Skips when Redis is not reachable, unless FTPSERVER_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import ftplib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from django_ftpserver.models import FTPUserAccount, FTPUserGroup

from .conftest import PASSWORD, unavailable, wait_until
from .procs import ServerProcess, base_env, manage, probe_lines
from .proxy_headers import proxied_ftp, v1, v2

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REDIS_URL = os.environ.get("FTPSERVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCKED = "Too many failed logins from your address"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis, emptied afterwards."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
    except Exception as exc:
        reason = f"Redis is not reachable at {REDIS_URL}: {exc}".splitlines()[0]
        unavailable(reason)
    prefix = f"ftpserver-test-scale-out-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def store(s3_bucket) -> dict[str, str]:
    """The one store both servers serve: a bucket on a real ``moto_server``."""
    return s3_bucket.environ()


@pytest.fixture
def cluster_env(transactional_db, tmp_path: Path, redis_prefix: str, store: dict[str, str]):
    """The environment of every process of the deployment, and the account ``alice``."""
    user = get_user_model().objects.create_user("alice", password=PASSWORD)
    group = FTPUserGroup.objects.create(name="staff", permission="elradfmwMT")
    FTPUserAccount.objects.create(user=user, group=group, home_dir="alice")
    directory = tmp_path / "cluster"
    directory.mkdir()
    env = base_env(directory)
    env.update(
        store,
        DJANGO_SETTINGS_MODULE="tests.settings_cluster",
        FTPSERVER_TEST_DB="postgres",
        FTPSERVER_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        FTPSERVER_TEST_REDIS_URL=REDIS_URL,
        FTPSERVER_TEST_REDIS_PREFIX=redis_prefix,
    )
    return env


@pytest.fixture
def start_server(cluster_env: dict[str, str]) -> Iterator[Callable[[str], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(name: str) -> ServerProcess:
        env = dict(cluster_env)
        env["FTPSERVER_PROBE_FILE"] = str(Path(env["FTPSERVER_TEST_DB_DIR"]) / f"{name}.jsonl")
        server = ServerProcess(env, "127.0.0.1:0")
        started.append(server)
        server.wait_started(60)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            assert server.stop() == 0, server.stderr
        assert "Traceback" not in (server.stderr or ""), server.stderr


def through_balancer(server: ServerProcess, client: str, **kwargs) -> ftplib.FTP:
    """A control connection to ``server`` as the balancer forwards ``client``'s."""
    return proxied_ftp(server.host, server.port, v2((client, 40000)), **kwargs)


def login_reply(server: ServerProcess, client: str, password: str = PASSWORD) -> str:
    ftp = through_balancer(server, client)
    try:
        return ftp.login("alice", password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


def test_a_file_uploaded_through_one_server_is_served_by_the_other(start_server, s3_bucket):
    a, b = start_server("a"), start_server("b")
    payload = os.urandom(3 * 1024 * 1024 + 17)
    # Passive ports reached directly: data connections come from the client.
    up = through_balancer(a, "127.0.0.21", data_source="127.0.0.21")
    up.login("alice", PASSWORD)
    up.mkd("reports")
    assert up.storbinary("STOR reports/q3.bin", io.BytesIO(payload)).startswith("226")
    up.quit()
    assert s3_bucket.get("alice/reports/q3.bin") == payload  # one object, complete
    assert s3_bucket.multipart_uploads() == []

    down = through_balancer(b, "127.0.0.22", data_source="127.0.0.22")
    down.login("alice", PASSWORD)
    assert down.nlst("reports") in (["q3.bin"], ["reports/q3.bin"])
    facts = dict(down.mlsd("reports"))
    assert int(facts["q3.bin"]["size"]) == len(payload)
    down.voidcmd("TYPE I")
    assert down.size("reports/q3.bin") == len(payload)
    received = io.BytesIO()
    assert down.retrbinary("RETR reports/q3.bin", received.write).startswith("226")
    assert received.getvalue() == payload
    down.delete("reports/q3.bin")
    down.quit()

    check = through_balancer(a, "127.0.0.21", data_source="127.0.0.21")
    check.login("alice", PASSWORD)
    check.voidcmd("TYPE I")
    with pytest.raises(ftplib.error_perm, match="^550"):  # the delete through b, seen by a
        check.size("reports/q3.bin")
    check.quit()
    assert "alice/reports/q3.bin" not in s3_bucket.keys("alice/")


def test_an_address_locked_out_on_one_server_is_refused_by_the_other(start_server):
    a, b = start_server("a"), start_server("b")
    for _ in range(2):  # FTPSERVER_LOCKOUT_FAILURES = 2 in tests.settings_cluster
        assert login_reply(a, "203.0.113.7", "wrong").startswith("530 Authentication failed")
    assert LOCKED in login_reply(b, "203.0.113.7")  # the right password, the other server
    assert LOCKED in login_reply(a, "203.0.113.7")
    # The balancer's other clients are not locked out with it.
    assert login_reply(b, "203.0.113.8").startswith("230")
    assert login_reply(a, "2001:db8::8").startswith("230")
    logins = wait_until(lambda: probe_lines(b.env, "ftp_login"), 30, "ftp_login on b")
    assert [line["remote_ip"] for line in logins] == ["203.0.113.8"]
    assert {line["remote_ip"] for line in probe_lines(a.env, "ftp_client_connected")} == {
        "203.0.113.7",
        "2001:db8::8",
    }


def test_a_password_changed_in_a_third_process_is_refused_at_once_by_both(
    start_server, cluster_env
):
    a, b = start_server("a"), start_server("b")
    # Both servers remember the verified password (FTPSERVER_AUTH_CACHE_TIMEOUT).
    for server in (a, b, a, b):
        assert login_reply(server, "198.51.100.1").startswith("230")
    changed = manage(
        cluster_env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "user = get_user_model().objects.get(username='alice')\n"
        "user.set_password('n3w-pass')\n"
        "user.save()\n",
    )
    assert changed.returncode == 0, changed.stderr
    # Distinct clients: two refusals from one address would lock it out.
    assert login_reply(a, "198.51.100.2").startswith("530 Authentication failed")
    assert login_reply(b, "198.51.100.3").startswith("530 Authentication failed")
    assert login_reply(a, "198.51.100.4", "n3w-pass").startswith("230")
    assert login_reply(b, "198.51.100.4", "n3w-pass").startswith("230")


def test_a_header_from_the_balancer_reaches_the_other_servers_signals(start_server):
    """v1 and v2 alike; the session's signals carry the client on each process."""
    a, b = start_server("a"), start_server("b")
    cases = [(a, v1(("192.0.2.44", 1)), "192.0.2.44"), (b, v2(("2001:db8::44", 1)), "2001:db8::44")]
    for server, header, client in cases:
        ftp = proxied_ftp(server.host, server.port, header)
        assert ftp.login("alice", PASSWORD).startswith("230")
        ftp.quit()
        wait_until(lambda s=server: probe_lines(s.env, "ftp_login"), 30, "ftp_login")
        assert [line["remote_ip"] for line in probe_lines(server.env, "ftp_login")] == [client]
