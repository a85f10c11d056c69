"""Brute-force lockout, through a real server and real clients.

Small settings (3 failures, a 60 s window, a 2 s lock) keep the tests
quick; pyftpdlib's 3 s delay after a failed login is shortened except where
the test is about that delay.
"""

from __future__ import annotations

import ftplib
import threading
import time
from io import StringIO

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ftpserver.auth import lockout
from django_ftpserver.handlers import DjangoFTPHandler

from .conftest import PASSWORD
from .conftest import try_login as login_reply

LOCKED = "Too many failed logins from your address"


class CountingHasher(MD5PasswordHasher):
    """Counts every hash computed, to prove a locked-out login computes none."""

    algorithm = "counting_md5"
    calls = 0
    lock = threading.Lock()

    @classmethod
    def count(cls) -> None:
        with cls.lock:
            cls.calls += 1

    def encode(self, password, salt):
        self.count()
        return super().encode(password, salt)

    def verify(self, password, encoded):
        self.count()
        return super().verify(password, encoded)


@pytest.fixture
def lockout_settings(settings):
    settings.FTPSERVER_LOCKOUT_FAILURES = 3
    settings.FTPSERVER_LOCKOUT_WINDOW = 60
    settings.FTPSERVER_LOCKOUT_DURATION = 2
    return settings


@pytest.fixture
def quick_failures(monkeypatch):
    """pyftpdlib answers a failed login after 3 s; 0.05 s here."""
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 0.05)


def fail_login(server, user="alice", source=None):
    """One wrong password on a fresh connection; return the reply text."""
    ftp = ftplib.FTP(source_address=(source, 0) if source else None)
    ftp.connect(server.host, server.port, timeout=10)
    try:
        ftp.login(user, "wrong-password")
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()
    raise AssertionError("the wrong password was accepted")


def try_login(server, user="alice", password=PASSWORD, source=None):
    """Log in on a fresh connection; return '230 ...' or the error reply."""
    source_address = (source, 0) if source else None
    return login_reply(server.host, server.port, user, password, source_address=source_address)


def lock_out(server, user="alice"):
    for _ in range(3):
        assert fail_login(server, user).startswith("530 Authentication failed")


pytestmark = pytest.mark.usefixtures("lockout_settings")


def test_lockout_after_failures_refuses_even_the_right_password(
    ftp_server, account, quick_failures, recorder
):
    assert try_login(ftp_server).startswith("230")
    lock_out(ftp_server)
    reply = try_login(ftp_server)
    assert reply == f"530 {LOCKED}; try again later."
    signal = recorder.wait("ftp_client_locked_out")[0]
    assert signal["remote_ip"] == "127.0.0.1"
    assert signal["username"] == "alice"
    assert signal["sender"] is DjangoFTPHandler
    assert signal["handler"].remote_ip == "127.0.0.1"


def test_locked_reply_computes_no_hash_and_comes_fast(
    ftp_server, account, settings, quick_failures, monkeypatch
):
    settings.PASSWORD_HASHERS = ["tests.test_lockout.CountingHasher"]
    account.user.set_password(PASSWORD)
    account.user.save()
    before = CountingHasher.calls
    lock_out(ftp_server)
    assert CountingHasher.calls >= before + 3  # the failures were hashed
    hashed = CountingHasher.calls
    monkeypatch.setattr(DjangoFTPHandler, "auth_failed_timeout", 3)  # a failure takes 3 s now
    started = time.monotonic()
    for _ in range(5):
        assert LOCKED in try_login(ftp_server)
    elapsed = time.monotonic() - started
    assert CountingHasher.calls == hashed
    assert elapsed < 3, f"5 locked-out logins took {elapsed:.2f} s"


def test_the_client_is_disconnected_after_the_locked_reply(ftp_server, account, quick_failures):
    lock_out(ftp_server)
    ftp = ftp_server.connect()
    ftp.sendcmd("USER alice")
    with pytest.raises(ftplib.error_perm, match=LOCKED):
        ftp.sendcmd("PASS " + PASSWORD)
    with pytest.raises((EOFError, OSError)):
        ftp.sendcmd("NOOP")
    ftp.close()


def test_unknown_usernames_count(ftp_server, account, quick_failures):
    for name in ("root", "admin", "nobody-here"):
        fail_login(ftp_server, name)
    assert LOCKED in try_login(ftp_server)


def test_other_address_and_other_users_unaffected(ftp_server, make_account, quick_failures):
    make_account("alice")
    make_account("bob")
    lock_out(ftp_server, "alice")
    assert LOCKED in try_login(ftp_server, "bob")
    # 127.0.0.2 is another loopback address: another client as far as the
    # server can tell. Both users log in from there.
    assert try_login(ftp_server, "alice", source="127.0.0.2").startswith("230")
    assert try_login(ftp_server, "bob", source="127.0.0.2").startswith("230")
    assert lockout.failure_count("127.0.0.2") == 0


def test_lockout_expires(ftp_server, account, quick_failures):
    lock_out(ftp_server)
    locked_at = time.monotonic()
    assert LOCKED in try_login(ftp_server)
    deadline = locked_at + 10
    while LOCKED in (reply := try_login(ftp_server)):
        assert time.monotonic() < deadline, "the 2 s lockout never ended"
        time.sleep(0.2)
    assert reply.startswith("230")
    assert time.monotonic() - locked_at > 1.5
    # Counting starts afresh: two more failures do not lock again.
    fail_login(ftp_server)
    fail_login(ftp_server)
    assert try_login(ftp_server).startswith("230")


def test_failure_counted_at_once_even_if_the_client_leaves_during_the_delay(
    ftp_server, account, recorder
):
    """pyftpdlib reports a failure 3 s late; a client hanging up must still count."""
    started = time.monotonic()
    for attempt in range(1, 4):
        ftp = ftp_server.connect()
        ftp.sendcmd("USER alice")
        ftp.putcmd("PASS wrong")  # the reply would come after 3 s; leave now
        ftp.close()
        deadline = time.monotonic() + 2.5
        while lockout.failure_count("127.0.0.1") < attempt and not lockout.is_locked("127.0.0.1"):
            assert time.monotonic() < deadline, "failure not counted before the 3 s delay"
            time.sleep(0.02)
    recorder.wait("ftp_client_locked_out")
    assert time.monotonic() - started < 6
    assert LOCKED in try_login(ftp_server)


def test_locked_out_signal_is_sent_once(ftp_server, account, quick_failures, recorder):
    lock_out(ftp_server)
    for _ in range(3):
        assert LOCKED in try_login(ftp_server)
    recorder.wait("ftp_client_locked_out")
    recorder.wait("ftp_client_disconnected", 6)
    assert len(recorder.of("ftp_client_locked_out")) == 1
    # Locked-out attempts are refused before any check: no ftp_login_failed.
    assert len(recorder.of("ftp_login_failed")) == 3


def test_success_takes_back_only_the_users_own_failures(ftp_server, make_account, quick_failures):
    make_account("alice")
    make_account("mallory")
    # alice's own typos stop counting when she gets in.
    fail_login(ftp_server, "alice")
    fail_login(ftp_server, "alice")
    assert try_login(ftp_server, "alice").startswith("230")
    assert lockout.failure_count("127.0.0.1") == 0
    # mallory's own login does not wipe out her guesses at alice's password.
    fail_login(ftp_server, "alice")
    fail_login(ftp_server, "alice")
    assert try_login(ftp_server, "mallory").startswith("230")
    assert lockout.failure_count("127.0.0.1") == 2
    fail_login(ftp_server, "alice")
    assert LOCKED in try_login(ftp_server, "mallory")


def test_failures_zero_turns_lockout_off(ftp_server, account, settings, quick_failures):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0
    for _ in range(6):
        fail_login(ftp_server)
    assert try_login(ftp_server).startswith("230")
    assert not lockout.is_locked("127.0.0.1")


def test_failures_on_one_connection_count(ftp_server, account, settings, quick_failures):
    ftp = ftp_server.connect()
    for _ in range(2):  # pyftpdlib's max_login_attempts is 3 per connection
        with pytest.raises(ftplib.error_perm, match="Authentication failed"):
            ftp.login("alice", "wrong")
    ftp.close()
    fail_login(ftp_server)
    assert LOCKED in try_login(ftp_server)


# --- the lockout module and the commands


def test_lockout_module_counts_locks_and_clears():
    assert lockout.record_failure("192.0.2.7", "x") is None
    assert lockout.record_failure("192.0.2.7", "y") is None
    locked = lockout.record_failure("192.0.2.7", "z")
    assert locked is not None
    assert (locked.address, locked.username, locked.failures) == ("192.0.2.7", "z", 3)
    assert 1 < locked.remaining <= 2
    assert lockout.is_locked("192.0.2.7")
    assert not lockout.is_locked("192.0.2.8")
    assert lockout.record_failure("192.0.2.7", "z") is None  # locked once only
    assert [item.address for item in lockout.list_lockouts()] == ["192.0.2.7"]
    assert lockout.clear("192.0.2.7") is True
    assert lockout.clear("192.0.2.7") is False
    assert not lockout.is_locked("192.0.2.7")
    assert lockout.list_lockouts() == []


def test_ipv6_counted_per_64_and_mapped_ipv4_as_ipv4():
    for suffix in ("1", "2", "ffff:1:2"):
        lockout.record_failure(f"2001:db8:1:2::{suffix}", "x")
    assert lockout.is_locked("2001:db8:1:2:abcd::9")
    assert not lockout.is_locked("2001:db8:1:3::1")
    assert lockout.normalize_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert lockout.get_lockout("2001:db8:1:2::/64").address == "2001:db8:1:2::/64"
    assert lockout.normalize_address("192.0.2.1/32") == "192.0.2.1"
    for bad in ("nonsense", "192.0.2.0/24", "2001:db8::/48"):
        with pytest.raises(ValueError, match=f"not an IP address: '{bad}'"):
            lockout.normalize_address(bad)


def test_list_and_clear_commands(ftp_server, account, quick_failures):
    out = StringIO()
    call_command("listftplockouts", stdout=out)
    assert out.getvalue().strip() == "No addresses are locked out."
    lock_out(ftp_server)
    lockout.record_failure("198.51.100.1", "a")  # not locked: not listed

    out = StringIO()
    call_command("listftplockouts", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Address")
    assert len(lines) == 2
    assert lines[1].startswith("127.0.0.1 ") and "'alice'" in lines[1]

    out = StringIO()
    call_command("clearftplockout", "127.0.0.1", stdout=out)
    assert out.getvalue().strip() == "Lifted the lockout of 127.0.0.1."
    assert try_login(ftp_server).startswith("230")

    out = StringIO()
    call_command("clearftplockout", "127.0.0.1", stdout=out)
    assert "was not locked out" in out.getvalue()


def test_clear_all_command():
    for address in ("192.0.2.1", "192.0.2.2"):
        for _ in range(3):
            lockout.record_failure(address, "x")
    out = StringIO()
    call_command("clearftplockout", "--all", stdout=out)
    assert out.getvalue().splitlines() == ["Lifted 2 lockout(s).", "  192.0.2.1", "  192.0.2.2"]
    assert lockout.list_lockouts() == []
    assert not lockout.is_locked("192.0.2.1")


@pytest.mark.parametrize(
    "args, message",
    [
        (["999.1.1.1"], "not an IP address: '999.1.1.1'"),
        (["127.0.0.1", "host.example"], "not an IP address: 'host.example'"),
        ([], "give one or more addresses, or --all"),
        (["127.0.0.1", "--all"], "give one or more addresses, or --all"),
    ],
)
def test_clear_command_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("clearftplockout", *args, stdout=StringIO())


def test_list_command_when_off(settings):
    settings.FTPSERVER_LOCKOUT_FAILURES = 0
    out = StringIO()
    call_command("listftplockouts", stdout=out)
    assert "off" in out.getvalue()


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("FTPSERVER_LOCKOUT_FAILURES", -1, "FTPSERVER_LOCKOUT_FAILURES must be a whole number"),
        ("FTPSERVER_LOCKOUT_WINDOW", "15m", "FTPSERVER_LOCKOUT_WINDOW must be a whole number"),
        ("FTPSERVER_LOCKOUT_DURATION", 0, "FTPSERVER_LOCKOUT_DURATION must be 1 second"),
        ("FTPSERVER_LOCKOUT_CACHE", "shared", "names the cache 'shared', which is not in CACHES"),
    ],
)
def test_bad_lockout_settings_stop_the_server_with_one_line(
    server_factory, settings, name, value, message
):
    setattr(settings, name, value)
    with pytest.raises(CommandError, match=message):
        server_factory()


def test_a_failing_cache_lets_logins_through_and_logs(
    ftp_server, account, settings, quick_failures, caplog
):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    settings.FTPSERVER_LOCKOUT_CACHE = "broken"
    assert fail_login(ftp_server).startswith("530 Authentication failed")
    assert try_login(ftp_server).startswith("230")
    assert "FTP lockout cache failed" in caplog.text


def test_commands_warn_about_a_process_local_cache(settings):
    """LocMemCache (the tests' cache): the commands cannot see another process's lockouts."""
    err = StringIO()
    call_command("listftplockouts", stdout=StringIO(), stderr=err)
    assert "cannot see or clear the running server's lockouts" in err.getvalue()
    err = StringIO()
    call_command("clearftplockout", "--all", stdout=StringIO(), stderr=err)
    assert "process's memory" in err.getvalue()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        "shared": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "unused",
        },
    }
    settings.FTPSERVER_LOCKOUT_CACHE = "shared"
    from django_ftpserver.auth import lockout

    assert not lockout.cache_is_process_local()
