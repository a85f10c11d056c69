"""Sessions that never block each other and cost no SQL after login.

The claims of ``docs/performance.rst`` that are about correctness, proven
through a real server and real clients, by counting rather than timing:
the verified-password cache (hits skip the hash, anything that changed the
account is refused at once, nothing plaintext kept), where hashing, queries
and receivers run, the order of one session's receivers, no query for
ordinary commands, no connection held by idle sessions.
"""

from __future__ import annotations

import ftplib
import io
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created
from django.test import override_settings

from django_ftpserver import handlers, signals
from django_ftpserver.auth.accounts import AccountLookup, AccountSnapshot
from django_ftpserver.auth.passwords import PasswordCache
from django_ftpserver.auth.workers import DatabaseWorkers
from django_ftpserver.models import FTPPathRule, FTPUserAccount

from .conftest import PASSWORD, RunningServer, wait_until
from .hashers import CountingHasher


def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    return wait_until(predicate, timeout, what, interval=0.01)


@pytest.fixture
def hasher() -> Iterator[type[CountingHasher]]:
    """Make the counting hasher the one that hashes and checks passwords."""
    CountingHasher.reset()
    with override_settings(PASSWORD_HASHERS=["tests.hashers.CountingHasher"]):
        yield CountingHasher
    if CountingHasher.gate is not None:
        CountingHasher.gate.set()
    CountingHasher.reset()


@pytest.fixture
def ftp_server(ftp_server: RunningServer) -> RunningServer:
    """The server, without pyftpdlib's 3 s delay after a failed login."""
    ftp_server.runner.server.handler.auth_failed_timeout = 0
    return ftp_server


def authorizer_of(server: RunningServer) -> Any:
    return server.runner.server.handler.authorizer


def login_fails(server: RunningServer, user: str, password: str) -> str:
    client = server.connect()
    try:
        with pytest.raises(ftplib.error_perm) as error:
            client.login(user, password)
        return str(error.value)
    finally:
        client.close()


def login_and_quit(server: RunningServer, user: str, password: str = PASSWORD) -> None:
    server.connect(user, password).quit()


class QueryCounter:
    """Counts the SQL run on the server's threads, whichever thread opened the connection.

    ``CaptureQueriesContext`` sees one thread's connection only; here every
    connection any thread opens gets an execute wrapper as it connects.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []
        self.connections: list[tuple[weakref.ref, str]] = []

    def wrapper(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self.lock:
            self.queries.append((threading.current_thread().name, sql))
        return execute(sql, params, many, context)

    def created(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        with self.lock:
            self.connections.append((weakref.ref(connection), threading.current_thread().name))
        if self.wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(self.wrapper)

    def server_queries(self) -> int:
        with self.lock:
            return sum(1 for thread, _ in self.queries if thread.startswith("ftp-"))

    def open_connections(self, thread_prefix: str) -> int:
        with self.lock:
            return sum(
                1
                for ref, thread in self.connections
                if thread.startswith(thread_prefix)
                and ref() is not None
                and ref().connection is not None
            )


@pytest.fixture
def queries() -> Iterator[QueryCounter]:
    counter = QueryCounter()
    connection_created.connect(counter.created, weak=False)
    yield counter
    connection_created.disconnect(counter.created)
    for ref, _ in counter.connections:
        connection = ref()
        if connection is not None and counter.wrapper in connection.execute_wrappers:
            connection.execute_wrappers.remove(counter.wrapper)


# --- the verified-password cache


def test_cache_hit_skips_the_hash(ftp_server, make_account, hasher):
    make_account("alice")
    login_and_quit(ftp_server, "alice")
    assert hasher.calls() == 1
    login_and_quit(ftp_server, "alice")
    login_and_quit(ftp_server, "alice")
    assert hasher.calls() == 1


def test_wrong_password_is_never_cached(ftp_server, make_account, hasher):
    make_account("alice")
    assert "530" in login_fails(ftp_server, "alice", "wrong")
    assert "530" in login_fails(ftp_server, "alice", "wrong")
    assert hasher.calls() == 2
    assert len(authorizer_of(ftp_server).password_cache) == 0
    login_and_quit(ftp_server, "alice")
    assert "530" in login_fails(ftp_server, "alice", "wrong")
    assert hasher.calls() == 4


def test_changed_password_is_refused_at_once(ftp_server, make_account, hasher):
    user = make_account("alice").user
    login_and_quit(ftp_server, "alice")
    user.set_password("new-pass")
    user.save()
    assert "530" in login_fails(ftp_server, "alice", PASSWORD)
    login_and_quit(ftp_server, "alice", "new-pass")


def test_deactivated_user_is_refused_at_once(ftp_server, make_account, hasher):
    user = make_account("alice").user
    login_and_quit(ftp_server, "alice")
    user.is_active = False
    user.save()
    assert "530" in login_fails(ftp_server, "alice", PASSWORD)


def test_deleted_account_is_refused_at_once(ftp_server, make_account, hasher):
    account = make_account("alice")
    login_and_quit(ftp_server, "alice")
    account.delete()
    assert "530" in login_fails(ftp_server, "alice", PASSWORD)


def test_account_changes_apply_from_the_next_login(ftp_server, make_account, tmp_path):
    account = make_account("alice", permission="elr")
    session = ftp_server.connect("alice")
    with pytest.raises(ftplib.error_perm, match="550"):
        session.mkd("no")
    account.group.permission = "elradfmwMT"
    account.group.save()
    with pytest.raises(ftplib.error_perm, match="550"):
        session.mkd("still-no")
    fresh = ftp_server.connect("alice")
    fresh.mkd("yes")
    fresh.quit()
    session.quit()


@override_settings(FTPSERVER_AUTH_CACHE_TIMEOUT=0)
def test_timeout_zero_turns_the_cache_off(ftp_server, make_account, hasher):
    make_account("alice")
    login_and_quit(ftp_server, "alice")
    login_and_quit(ftp_server, "alice")
    assert hasher.calls() == 2
    assert len(authorizer_of(ftp_server).password_cache) == 0


def test_cache_keeps_no_plaintext_and_no_password_hash(ftp_server, make_account, hasher):
    user = make_account("alice").user
    login_and_quit(ftp_server, "alice")
    cache = authorizer_of(ftp_server).password_cache
    assert len(cache) == 1
    dump = repr(cache._entries).encode() + b"".join(
        key[1] + value[0] for key, value in cache._entries.items()
    )
    assert PASSWORD.encode() not in dump
    assert user.password.encode() not in dump
    assert PASSWORD.encode().hex().encode() not in dump


def test_cache_keys_use_a_random_key_per_process():
    one, two = PasswordCache(), PasswordCache()
    assert one.key("alice", PASSWORD) == one.key("alice", PASSWORD)
    assert one.key("alice", PASSWORD) != two.key("alice", PASSWORD)
    assert one.key("alice", PASSWORD) != one.key("alice", PASSWORD + "x")


def test_cache_entries_expire(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("django_ftpserver.auth.passwords.time.monotonic", lambda: now[0])
    cache = PasswordCache()
    key = cache.key("alice", PASSWORD)
    cache.store(key, ("fingerprint",), timeout=300)
    assert cache.hit(key, ("fingerprint",))
    assert not cache.hit(key, ("other",))  # and the stale entry is gone
    cache.store(key, ("fingerprint",), timeout=300)
    now[0] += 301
    assert not cache.hit(key, ("fingerprint",))


def test_concurrent_logins_of_one_account_share_one_hash(ftp_server, make_account, hasher):
    make_account("alice")
    hasher.gate = threading.Event()
    results: list[str] = []

    def login() -> None:
        client = ftp_server.connect()
        results.append(client.login("alice", PASSWORD))
        client.quit()

    threads = [threading.Thread(target=login) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_for(lambda: hasher.calls() >= 1, what="the first check")
    time.sleep(0.3)  # give the other four every chance to start a hash of their own
    assert hasher.calls() == 1
    hasher.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 5 and all(reply.startswith("230") for reply in results)
    assert hasher.calls() == 1


def test_fast_queries_match_the_orm(ftp_server, make_account):
    account = make_account("alice")
    FTPPathRule.objects.create(account=account, path="/incoming", permission="elw")
    FTPPathRule.objects.create(group=account.group, path="/archive", permission="elr")
    FTPPathRule.objects.create(group=make_account("bob").group, path="/other", permission="")
    authorizer = authorizer_of(ftp_server)
    lookup = AccountLookup(FTPUserAccount)
    row = lookup.fetch("alice")
    orm = authorizer.get_account("alice")
    assert lookup.fingerprint(row) == authorizer._fingerprint(orm.user, orm)
    assert lookup.snapshot(row) == AccountSnapshot.from_account(orm)
    assert lookup.snapshot(row).rules.account == {"/incoming": "elw"}
    assert lookup.fetch("nobody") is None


def test_fetch_many_reads_what_fetch_reads(ftp_server, make_account):
    alice = make_account("alice")
    FTPPathRule.objects.create(account=alice, path="/incoming", permission="elw")
    make_account("bob")
    carol = make_account("carol").user
    carol.is_active = False
    carol.save()
    lookup = AccountLookup(FTPUserAccount)
    # Five names (padded to eight), one twice, one without an account.
    names = ["alice", "bob", "nobody", "alice", "carol", "dave"]
    rows = lookup.fetch_many(names)
    assert list(rows) == ["alice", "bob", "nobody", "carol", "dave"]
    assert rows == {name: lookup.fetch(name) for name in rows}
    assert rows["nobody"] is None and rows["dave"] is None
    assert rows["carol"]["user__is_active"] is False
    assert lookup.snapshot(rows["alice"]).rules.account == {"/incoming": "elw"}
    assert lookup.fetch_many(["bob"] * 3) == {"bob": lookup.fetch("bob")}


def test_fetch_many_leaves_names_spelled_otherwise_to_fetch(make_account):
    make_account("Bob")
    make_account("alice")
    lookup = AccountLookup(FTPUserAccount)
    rows = lookup.fetch_many(["bob", "alice"])
    if connection.vendor == "mysql":
        # A case-insensitive collation: "bob" finds Bob, so the names go to
        # fetch(), one by one, which finds what it always found.
        assert rows == {}
        assert lookup.fetch("bob")["user__username"] == "Bob"
    else:
        assert rows == {"bob": None, "alice": lookup.fetch("alice")}


def test_path_rules_hold_for_a_cached_login(ftp_server, make_account, hasher):
    account = make_account("alice", permission="elr")
    FTPPathRule.objects.create(account=account, path="/incoming", permission="elmw")
    login_and_quit(ftp_server, "alice")
    client = ftp_server.connect("alice")  # cached: the fast queries load the rules
    assert hasher.calls() == 1
    with pytest.raises(ftplib.error_perm, match="550"):
        client.mkd("/nope")
    client.mkd("/incoming")
    client.mkd("/incoming/yes")
    client.quit()


# --- where the work runs


def test_hashing_runs_on_login_workers_in_parallel(ftp_server, make_account, hasher):
    make_account("alice")
    make_account("bob")
    # Each check waits at a barrier for another: they pass only if two
    # hashes run at the same time, on two threads.
    hasher.barrier = threading.Barrier(2)
    replies: list[str] = []

    def login(user: str) -> None:
        client = ftp_server.connect()
        replies.append(client.login(user, PASSWORD))
        client.quit()

    threads = [threading.Thread(target=login, args=(u,)) for u in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert len(replies) == 2 and all(r.startswith("230") for r in replies)
    assert len(set(hasher.threads)) == 2
    assert all(name.startswith("ftp-login-worker-") for name in hasher.threads)


def test_work_that_arrives_while_the_workers_are_busy_runs_in_batches():
    for batch_size, expected in ((3, [[0, 1, 2], [3, 4, 5], [6]]), (1, [[n] for n in range(7)])):
        workers = DatabaseWorkers(1, batch_size=batch_size, name="test-batches")
        gate = threading.Event()
        workers.submit(gate.wait, 10)
        batches: list[list[int]] = []
        for item in range(7):
            workers.submit_batched(batches.append, item)
        gate.set()
        workers.close()
        assert batches == expected


def test_noop_answers_while_another_login_is_hashing(ftp_server, make_account, hasher):
    make_account("alice")
    make_account("bob")
    established = ftp_server.connect("alice")
    hasher.gate = threading.Event()
    replies: list[str] = []

    def login_bob() -> None:
        client = ftp_server.connect()
        replies.append(client.login("bob", PASSWORD))
        client.quit()

    thread = threading.Thread(target=login_bob)
    thread.start()
    wait_for(lambda: hasher.calls() == 2, what="bob's check to start")
    # bob's hash is held; alice's session is served all the same.
    assert established.voidcmd("NOOP").startswith("200")
    assert established.pwd() == "/"
    established.nlst()
    assert thread.is_alive() and not replies
    hasher.gate.set()
    thread.join(10)
    assert replies and replies[0].startswith("230")
    established.quit()


def test_a_blocked_receiver_stalls_only_its_own_session(ftp_server, make_account):
    make_account("alice")
    make_account("bob")
    release = threading.Event()
    entered = threading.Event()

    def slow_receiver(sender: Any, username: str, **kwargs: Any) -> None:
        if username == "bob":
            entered.set()
            release.wait(10)

    signals.ftp_login.connect(slow_receiver, weak=False)
    try:
        alice = ftp_server.connect("alice")
        bob = ftp_server.connect("bob")  # 230 comes before the receivers run
        assert entered.wait(10)
        bob_noop: list[str] = []
        waiter = threading.Thread(target=lambda: bob_noop.append(bob.voidcmd("NOOP")))
        waiter.start()
        for _ in range(5):
            assert alice.voidcmd("NOOP").startswith("200")
        time.sleep(0.2)
        assert not bob_noop  # bob's session waits for its own receiver
        release.set()
        waiter.join(10)
        assert bob_noop and bob_noop[0].startswith("200")
        alice.quit()
        bob.quit()
    finally:
        release.set()
        signals.ftp_login.disconnect(slow_receiver)


def test_receivers_keep_their_order_on_their_session_thread(ftp_server, make_account):
    names = [
        "ftp_client_connected",
        "ftp_login",
        "ftp_directory_created",
        "ftp_file_received",
        "ftp_file_sent",
        "ftp_logout",
        "ftp_client_disconnected",
    ]
    lock = threading.Lock()
    events: list[tuple[int, str, str, int]] = []
    done = threading.Semaphore(0)

    def receiver_for(name: str) -> Callable[..., None]:
        def receive(sender: Any, handler: Any, **kwargs: Any) -> None:
            thread = threading.current_thread()
            with lock:
                events.append((id(handler), name, thread.name, thread.ident))
            if name == "ftp_client_disconnected":
                done.release()

        return receive

    receivers = [(name, receiver_for(name)) for name in names]
    for name, receiver in receivers:
        getattr(signals, name).connect(receiver, weak=False)
    # Two receivers of one signal run in the order they were connected.
    order: list[str] = []
    first = lambda sender, **kwargs: order.append("first")  # noqa: E731
    second = lambda sender, **kwargs: order.append("second")  # noqa: E731
    signals.ftp_login.connect(first, weak=False)
    signals.ftp_login.connect(second, weak=False)
    try:
        for user in ("alice", "bob", "carol"):
            make_account(user)

        def session(user: str) -> None:
            client = ftp_server.connect(user)
            client.mkd("d")
            client.storbinary("STOR d/f", io.BytesIO(b"data"))
            client.retrbinary("RETR d/f", lambda data: None)
            client.quit()

        threads = [threading.Thread(target=session, args=(u,)) for u in ("alice", "bob", "carol")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        for _ in threads:
            assert done.acquire(timeout=10)
    finally:
        for name, receiver in receivers:
            getattr(signals, name).disconnect(receiver)
        signals.ftp_login.disconnect(first)
        signals.ftp_login.disconnect(second)
    sessions: dict[int, list[tuple[str, str, int]]] = {}
    for handler_id, name, thread_name, ident in events:
        sessions.setdefault(handler_id, []).append((name, thread_name, ident))
    assert len(sessions) == 3
    for seen in sessions.values():
        assert [name for name, _, _ in seen] == names
        assert len({ident for _, _, ident in seen}) == 1
        assert seen[0][1].startswith("ftp-session")
    assert order == ["first", "second"] * 3


def test_a_refused_client_is_answered_off_the_accepting_thread(ftp_server, make_account, recorder):
    """A refused client's 421 may come from the loop; its receivers never run there.

    docs/signals.rst ("Where receivers run"): receivers run on a session
    thread, and a slow one delays only its own session; docs/performance.rst:
    the accepting thread runs no Django code.
    """
    ftp_server.runner.server.max_cons = 1
    first = ftp_server.connect()
    refused = ftplib.FTP()
    with pytest.raises(ftplib.error_temp, match="421"):
        refused.connect(ftp_server.host, ftp_server.port, timeout=10)
    refused.close()
    disconnected = recorder.wait("ftp_client_disconnected")
    first.quit()
    # The server counts a session out once its thread ended it, after the 221.
    server = ftp_server.runner.server
    wait_for(lambda: server.active_sessions == 0, what="the first session counted out")
    assert disconnected[0]["handler"] is not None
    # QUIT is answered before the session ends: wait for its place to free.
    wait_for(lambda: ftp_server.runner.server.active_sessions == 0, what="the first session's end")
    # The receiver ran on a session thread: record it through a second receiver.
    threads: list[str] = []

    def where(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    signals.ftp_client_disconnected.connect(where, weak=False)
    try:
        blocker = ftp_server.connect()
        again = ftplib.FTP()
        with pytest.raises(ftplib.error_temp, match="421"):
            again.connect(ftp_server.host, ftp_server.port, timeout=10)
        again.close()
        wait_for(lambda: threads, what="the refused client's disconnect")
        assert threads[0].startswith("ftp-session")
        blocker.quit()
    finally:
        signals.ftp_client_disconnected.disconnect(where)


# --- no SQL after login, no connection held


def test_ordinary_commands_run_no_query(queries, ftp_server, make_account):
    home = make_account("alice").home_dir
    with open(f"{home}/file.txt", "wb") as out:
        out.write(b"x" * 1000)
    client = ftp_server.connect("alice")
    client.voidcmd("NOOP")  # the login is recorded once this is answered...
    # ...and its last_login written by a worker soon after: on a busy machine
    # later than NOOP's reply, so have it written now, before counting.
    assert authorizer_of(ftp_server).last_login_recorder.flush()
    after_login = queries.server_queries()
    assert after_login >= 1, "the counter must see the server threads' queries"
    client.voidcmd("TYPE I")
    for _ in range(3):
        client.retrbinary("RETR file.txt", lambda data: None)
        client.retrlines("LIST", lambda line: None)
        client.nlst()
        client.voidcmd("TYPE I")  # LIST switched to ASCII, where SIZE is refused
        assert client.size("file.txt") == 1000
        client.voidcmd("MDTM file.txt")
        client.mkd("sub") if _ == 0 else None
        client.cwd("sub")
        client.cwd("/")
        assert client.pwd() == "/"
        client.voidcmd("NOOP")
    assert queries.server_queries() == after_login
    client.quit()


def test_idle_sessions_hold_no_connection(queries, ftp_server, make_account):
    make_account("alice")
    authorizer_of(ftp_server).workers.idle_timeout = 0.3
    sessions = [ftp_server.connect("alice") for _ in range(10)]
    for session in sessions:
        session.voidcmd("NOOP")
    assert queries.open_connections("ftp-session") == 0
    assert queries.open_connections("ftp-login-worker") <= authorizer_of(ftp_server).workers.size
    # Idle workers close theirs too.
    wait_for(lambda: queries.open_connections("ftp-") == 0, what="idle workers to disconnect")
    for session in sessions:
        session.voidcmd("NOOP")
        session.quit()


def test_queries_on_a_session_thread_leave_no_connection(
    queries, ftp_server, make_account, monkeypatch
):
    """A project's command (or a database-backed storage) queries on the session thread."""
    make_account("alice")
    noop = handlers.DjangoFTPHandler.ftp_NOOP

    def noop_querying(self: Any, line: str) -> Any:
        FTPUserAccount.objects.exists()
        return noop(self, line)

    monkeypatch.setattr(handlers.DjangoFTPHandler, "ftp_NOOP", noop_querying)
    sessions = [ftp_server.connect("alice") for _ in range(5)]
    for session in sessions:
        session.voidcmd("NOOP")
    assert any(thread.startswith("ftp-session") for thread, _ in queries.queries)
    # Closed once the command is handled: just after its reply went out.
    wait_for(lambda: queries.open_connections("ftp-session") == 0, what="connections closed")
    for session in sessions:
        session.quit()


def test_last_login_is_stored_right_after_login(ftp_server, make_account):
    account = make_account("alice")
    assert account.last_login is None
    clients = [ftp_server.connect("alice") for _ in range(8)]
    wait_for(
        lambda: FTPUserAccount.objects.get(pk=account.pk).last_login is not None,
        what="last_login to be stored",
    )
    for client in clients:
        client.quit()


def test_pending_login_times_are_stored_at_shutdown(server_factory, make_account, monkeypatch):
    from django_ftpserver.auth.lastlogin import LastLoginRecorder

    monkeypatch.setattr(LastLoginRecorder, "delay", 3600.0)  # only the shutdown writes
    account = make_account("alice")
    server = server_factory()
    server.connect("alice").quit()
    assert FTPUserAccount.objects.get(pk=account.pk).last_login is None
    server.stop()
    assert FTPUserAccount.objects.get(pk=account.pk).last_login is not None


# --- database errors and shutdown


def test_a_lost_connection_at_login_is_retried(ftp_server, make_account, monkeypatch):
    make_account("alice")
    login_and_quit(ftp_server, "alice")  # cached: the next login uses the fast query
    failures = [OperationalError("server has gone away")]
    fetch = AccountLookup.fetch

    def flaky(self: AccountLookup, username: str) -> Any:
        if failures:
            raise failures.pop()
        return fetch(self, username)

    monkeypatch.setattr(AccountLookup, "fetch", flaky)
    login_and_quit(ftp_server, "alice")
    assert not failures


def test_a_database_down_at_login_gets_530_and_the_server_goes_on(
    ftp_server, make_account, monkeypatch
):
    make_account("alice")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(AccountLookup, "fetch", down)
        patch.setattr("django_ftpserver.authorizers.FTPAccountAuthorizer.get_account", down)
        message = login_fails(ftp_server, "alice", PASSWORD)
    assert message.startswith("530") and "unavailable" in message.lower()
    login_and_quit(ftp_server, "alice")


def test_a_crashing_backend_gets_530(ftp_server, make_account):
    make_account("alice")
    with override_settings(AUTHENTICATION_BACKENDS=["tests.test_sessions.CrashingBackend"]):
        message = login_fails(ftp_server, "alice", PASSWORD)
    assert message.startswith("530")
    login_and_quit(ftp_server, "alice")


class CrashingBackend:
    def authenticate(self, request: Any, **credentials: Any) -> Any:
        raise RuntimeError("backend bug")


def test_stop_with_idle_sessions_is_prompt(server_factory, make_account, recorder):
    server = server_factory()
    make_account("alice")
    sessions = [server.connect("alice") for _ in range(5)]
    started = time.monotonic()
    server.stop()  # asserts the runner thread ended within 10 s
    assert time.monotonic() - started < 10
    recorder.wait("ftp_client_disconnected", 5)
    for session in sessions:
        session.close()


def test_session_threads_are_reused(ftp_server, make_account):
    make_account("alice")
    server = ftp_server.runner.server
    for _ in range(5):
        login_and_quit(ftp_server, "alice")
        wait_for(lambda: server.active_sessions == 0, what="the session to end")
    assert server.session_threads == 1
