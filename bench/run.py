"""Run every measure against django-ftpserver and bare pyftpdlib, print a table.

Both servers run as subprocesses on loopback ports (see ``bench.serve``);
this process is the client. Each measure runs against both servers in the
same run, alternating which goes first, and the table shows our figure,
bare pyftpdlib's, their ratio and the goal of the issue it checks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ftplib
import json
import os
import platform
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Control, close_all, logged_in, open_many

HOST = "127.0.0.1"
PASSWORD = "bench-Pa55word"
MAIN_USER = "bench"
COLD_USERS = [f"cold{i}" for i in range(8)]
MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Params:
    reps: int
    transfer_mb: int
    idle_sessions: int
    leak_sessions: int
    burst: int
    cold_burst: int

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(
                reps=1,
                transfer_mb=50,
                idle_sessions=100,
                leak_sessions=200,
                burst=100,
                cold_burst=50,
            )
        return cls(
            reps=3, transfer_mb=200, idle_sessions=500, leak_sessions=1000, burst=100, cold_burst=50
        )


@dataclass
class Row:
    label: str
    ours: float | None
    bare: float | None = None
    unit: str = ""
    goal: str = ""
    met: bool | None = None
    ratio: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.bare:
            self.ratio = self.ours / self.bare


@dataclass
class Server:
    """A server subprocess and its control pipe."""

    kind: str
    process: subprocess.Popen
    port: int
    log: Path
    metrics_port: int | None = None

    certfile: str | None = None

    @classmethod
    def start(
        cls,
        kind: str,
        home: Path,
        env: dict[str, str],
        workdir: Path,
        certfile: Path | None = None,
        name: str | None = None,
    ) -> Server:
        log = workdir / f"{name or kind}{'-tls' if certfile else ''}.log"
        users = [MAIN_USER, *COLD_USERS]
        tls = ["--certfile", str(certfile)] if certfile else []
        stderr = open(log, "w")  # noqa: SIM115 - the child writes it for its lifetime
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve",
                kind,
                *tls,
                "--home",
                str(home),
                "--password",
                PASSWORD,
                *users,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
        line = process.stdout.readline()
        if not line.startswith("READY "):
            process.kill()
            raise SystemExit(f"{kind} server did not start: {log.read_text()[-2000:]}")
        ports = [int(word) for word in line.split()[1:]]
        metrics_port = ports[1] if len(ports) > 1 else None
        return cls(kind, process, ports[0], log, metrics_port, str(certfile) if certfile else None)

    def ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        return json.loads(self.ask("stats"))

    def clear_cache(self) -> None:
        self.ask("clear-cache")

    def wait_settled(self, threads: int, timeout: float = 15) -> dict[str, int]:
        """Stats once the server is back to ``threads`` threads (sessions ended)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["threads"] <= threads or time.monotonic() > deadline:
                return stats
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            self.ask("quit")
            self.process.wait(10)
        except Exception:
            self.process.kill()
            self.process.wait()


@dataclass
class Bench:
    params: Params
    ours: Server
    bare: Server
    home: Path
    hash_seconds: float
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    rows: list[Row] = field(default_factory=list)
    cpu_per_login: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "bare": []})

    def servers(self, rep: int) -> list[Server]:
        """Both servers, alternating which goes first."""
        return [self.ours, self.bare] if rep % 2 == 0 else [self.bare, self.ours]

    # --- goal 1: nothing Django-side blocks other sessions

    async def _cold_logins(self, server: Server) -> tuple[float, float]:
        """8 cold accounts log in at once while another session sends NOOPs.

        Returns (seconds for the 8 logins, worst NOOP round trip).
        """
        server.clear_cache()
        prober = await logged_in(HOST, server.port, MAIN_USER, PASSWORD)
        await prober.rtt()
        done = asyncio.Event()
        worst = 0.0

        async def probe() -> None:
            nonlocal worst
            while not done.is_set():
                worst = max(worst, await prober.rtt())
                await asyncio.sleep(0.005)

        async def login(user: str) -> Control:
            return await logged_in(HOST, server.port, user, PASSWORD)

        probe_task = asyncio.create_task(probe())
        start = time.perf_counter()
        sessions = await asyncio.gather(*(login(user) for user in COLD_USERS))
        elapsed = time.perf_counter() - start
        done.set()
        await probe_task
        await close_all([*sessions, prober])
        return elapsed, worst

    def measure_isolation(self) -> None:
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
        ratios = []
        hashes = []
        for rep in range(self.params.reps):
            for server in self.servers(rep):
                if server is self.ours:
                    # The yardstick, measured right before, under the same load.
                    one_hash, _ = one_hash_seconds()
                    hashes.append(one_hash)
                results[server.kind].append(asyncio.run(self._cold_logins(server)))
                if server is self.ours:
                    ratios.append(results["ours"][-1][0] / (len(COLD_USERS) * one_hash))
        ours_login = statistics.median(r[0] for r in results["ours"])
        bare_login = statistics.median(r[0] for r in results["bare"])
        ours_noop = max(r[1] for r in results["ours"]) * 1000
        bare_noop = max(r[1] for r in results["bare"]) * 1000
        self.rows.append(Row("8 cold accounts log in at once", ours_login, bare_login, "s"))
        ratio = statistics.median(ratios)
        self.rows.append(
            Row(
                "  the same / (8 x one hash)",
                ratio,
                None,
                "",
                "< 0.75",
                ratio < 0.75,
                note=f"one hash = {statistics.median(hashes):.3f} s (median, measured before each)",
            )
        )
        self.rows.append(
            Row(
                "  worst NOOP of another session meanwhile",
                ours_noop,
                bare_noop,
                "ms",
                "< 100 ms",
                ours_noop < 100,
            )
        )

    # --- goal 2: verified-password cache

    async def _burst(self, server: Server, count: int, warm: bool) -> tuple[float, int]:
        if warm:
            await close_all([await logged_in(HOST, server.port, MAIN_USER, PASSWORD)])
        else:
            server.clear_cache()
        before = server.stats()
        start = time.perf_counter()
        sessions = await asyncio.gather(
            *(logged_in(HOST, server.port, MAIN_USER, PASSWORD) for _ in range(count))
        )
        elapsed = time.perf_counter() - start
        after = server.stats()
        await close_all(sessions)
        self.cpu_per_login[server.kind].append((after["cpu_s"] - before["cpu_s"]) / count)
        return elapsed, after.get("hashes", 0) - before.get("hashes", 0)

    def _threaded_burst(self, server: Server, count: int) -> float:
        """``count`` ftplib clients on threads, released together; seconds to all logged in."""
        barrier = threading.Barrier(count + 1)
        done: list[ftplib.FTP] = []
        errors: list[BaseException] = []

        def client() -> None:
            ftp = ftplib.FTP()
            try:
                barrier.wait(30)
                ftp.connect(HOST, server.port, timeout=60)
                ftp.login(MAIN_USER, PASSWORD)
                done.append(ftp)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(count)]
        for thread in threads:
            thread.start()
        barrier.wait(30)
        start = time.perf_counter()
        for thread in threads:
            thread.join(60)
        elapsed = time.perf_counter() - start
        for ftp in done:
            ftp.close()
        if errors:
            raise SystemExit(f"{server.kind}: {errors[0]!r}")
        return elapsed

    def measure_cache(self) -> None:
        count = self.params.burst
        warm: dict[str, list[float]] = {"ours": [], "bare": []}
        for rep in range(self.params.reps * 2 - 1):
            for server in self.servers(rep):
                warm[server.kind].append(asyncio.run(self._burst(server, count, True))[0])
        ours = statistics.median(warm["ours"])
        bare = statistics.median(warm["bare"])
        self.rows.append(
            Row(
                f"{count} logins at once, one account, cached",
                ours,
                bare,
                "s",
                "<= 3 x bare",
                ours <= 3 * bare,
            )
        )
        ours = statistics.median(self.cpu_per_login["ours"]) * 1000
        bare = statistics.median(self.cpu_per_login["bare"]) * 1000
        self.rows.append(Row("  server CPU per cached login", ours, bare, "ms"))
        threaded: dict[str, list[float]] = {"ours": [], "bare": []}
        for rep in range(self.params.reps):
            for server in self.servers(rep):
                threaded[server.kind].append(self._threaded_burst(server, count))
        self.rows.append(
            Row(
                "  the same, one ftplib thread per client",
                statistics.median(threaded["ours"]),
                statistics.median(threaded["bare"]),
                "s",
                note="each client a thread running ftplib: client overhead included",
            )
        )
        count = self.params.cold_burst
        cold_ours, hashes = asyncio.run(self._burst(self.ours, count, False))
        cold_bare, _ = asyncio.run(self._burst(self.bare, count, False))
        self.rows.append(
            Row(
                f"{count} logins at once, one account, cold cache",
                cold_ours,
                cold_bare,
                "s",
                note=f"{hashes} hash(es) computed; 1.0 ran {count}",
            )
        )

    # --- goal 3: no SQL after login

    def _commands(self, server: Server) -> tuple[int, int, int]:
        """Queries of a cold login, a cached login, and 220 ordinary commands."""
        from django_ftpserver.authorizers import LastLoginRecorder

        server.clear_cache()
        counts = []
        for _ in range(2):
            before = server.stats().get("queries", 0)
            ftp = ftplib.FTP()
            ftp.connect(HOST, server.port, timeout=30)
            ftp.login(MAIN_USER, PASSWORD)
            ftp.voidcmd("NOOP")  # the login's receivers have run by now
            time.sleep(LastLoginRecorder.delay + 0.25)  # and its last_login, written behind
            counts.append(server.stats().get("queries", 0) - before)
            if len(counts) == 1:
                ftp.quit()
        before = server.stats().get("queries", 0)
        run_220_commands(ftp)
        after = server.stats().get("queries", 0)
        ftp.quit()
        return counts[0], counts[1], after - before

    def measure_queries(self) -> None:
        cold, cached, commands = self._commands(self.ours)
        self._commands(self.bare)  # same traffic, for symmetry of the run
        self.rows.append(Row("SQL queries: login, cold cache", cold, 0, ""))
        self.rows.append(Row("SQL queries: login, cached", cached, 0, ""))
        self.rows.append(
            Row("SQL queries: 220 commands after login", commands, 0, "", "0", commands == 0)
        )

    # --- pre-operation signals: no cost without receivers

    def _timed_commands(self, server: Server) -> tuple[float, float]:
        """(seconds, server CPU seconds) of one session's 220 commands.

        The CPU figure counts the commands and QUIT (not the login, whose
        work is the same for every server): what the server process spent
        on them, which the machine's other work changes much less than the time;
        the scrapes of ``/metrics`` meanwhile are taken out (see
        ``session_cpu``).
        """
        ftp = ftplib.FTP()
        ftp.connect(HOST, server.port, timeout=30)
        ftp.login(MAIN_USER, PASSWORD)
        before = server.stats()
        start = time.perf_counter()
        run_220_commands(ftp)
        elapsed = time.perf_counter() - start
        ftp.quit()
        after = server.stats()
        return elapsed, session_cpu(before, after)

    def measure_policy(self) -> None:
        """220 commands: ours with no pre-signal receiver against ours without the feature.

        "Without the feature" is a server of ours whose handler has the
        pre-signal checks taken out (``bench.serve.remove_pre_signals``).
        Rounds rotate over four servers: ours as shipped with no receiver,
        ours without the feature, ours again (the A/A control, a second
        process) and bare pyftpdlib, and a fifth turn of the shipped server
        with a receiver that allows everything connected to every
        pre-signal; each ratio is the median of one round's pairs.
        """
        assert self.workdir is not None
        without = Server.start("ours-without-pre-signals", self.home, self.env, self.workdir)
        twin = Server.start("ours", self.home, self.env, self.workdir, name="ours-2")
        servers = {
            "none": self.ours,
            "without": without,
            "twin": twin,
            "bare": self.bare,
            "allow": self.ours,  # with the allowing receiver connected for its turn
        }
        names = list(servers)
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        rounds = 15 if self.params.reps == 1 else 40
        try:
            for server in servers.values():
                self._timed_commands(server)  # untimed: warm caches and the password cache
            for rep in range(rounds):
                for name in rotated(names, rep):
                    if name == "allow":
                        assert self.ours.ask("pre-signals on") == "ok"
                    elapsed, spent = self._timed_commands(servers[name])
                    times[name].append(elapsed)
                    cpu[name].append(spent)
                    if name == "allow":
                        assert self.ours.ask("pre-signals off") == "ok"
        finally:
            self.ours.ask("pre-signals off")
            without.stop()
            twin.stop()
        median = {name: statistics.median(values) for name, values in times.items()}
        self.rows.append(
            Row(
                "220 commands after login, no pre-signal receiver",
                median["none"],
                median["bare"],
                "s",
                note=f"medians of {rounds} rounds",
            )
        )
        self.rows.append(
            Row("  ours without the pre-signal checks", median["without"], median["bare"], "s")
        )
        self.rows += slower_rows(
            "time",
            "the checks",
            times,
            ("none", "without"),
            ("twin", "none"),
            "no receiver",
            f"above 1: slower with the checks; median of {rounds} pairs",
        )
        self.rows += slower_rows(
            "server CPU",
            "the checks",
            cpu,
            ("none", "without"),
            ("twin", "none"),
            "no receiver",
            f"the server process's CPU time for the commands; median of {rounds} pairs",
        )
        self.rows.append(
            Row(
                "  with a receiver on every pre-signal",
                median["allow"],
                median["bare"],
                "s",
                note="a receiver that allows everything: the cost of asking",
            )
        )

    # --- goal 4: connections

    def measure_connections(self) -> None:
        async def idle(server: Server, count: int) -> dict[str, int]:
            sessions = await open_many(HOST, server.port, MAIN_USER, PASSWORD, count)
            for session in sessions[:10]:
                await session.rtt()
            stats = server.stats()
            await close_all(sessions)
            return stats

        count = 100
        stats = asyncio.run(idle(self.ours, count))
        held = stats["db_connections"]
        self.rows.append(
            Row(f"DB connections held by {count} idle sessions", held, 0, "", "<= 3", held <= 3)
        )

        async def churn(server: Server, count: int) -> None:
            limit = asyncio.Semaphore(20)

            async def one() -> None:
                async with limit:
                    session = await logged_in(HOST, server.port, MAIN_USER, PASSWORD)
                    await session.close()

            await asyncio.gather(*(one() for _ in range(count)))

        count = self.params.leak_sessions
        leaks = {}
        for server in (self.ours, self.bare):
            base = server.stats()
            start = time.perf_counter()
            asyncio.run(churn(server, count))
            elapsed = time.perf_counter() - start
            right_after = server.stats().get("db_connections", 0)
            # Login workers close their connections after 5 s without work;
            # session threads after 60 s without a session.
            time.sleep(6)
            after = server.stats()
            leaks[server.kind] = (
                after["fds"] - base["fds"],
                after.get("db_connections", 0),
                elapsed,
                right_after,
            )
        self.rows.append(
            Row(
                f"{count} sessions (login, quit), 20 at a time",
                leaks["ours"][2],
                leaks["bare"][2],
                "s",
            )
        )
        self.rows.append(
            Row(
                "  descriptors leaked after them",
                leaks["ours"][0],
                leaks["bare"][0],
                "",
                "0",
                leaks["ours"][0] <= 0,
            )
        )
        self.rows.append(
            Row(
                "  DB connections open right after them",
                leaks["ours"][3],
                0,
                "",
                "<= 3",
                leaks["ours"][3] <= 3,
            )
        )
        self.rows.append(
            Row(
                "  DB connections open 6 s later",
                leaks["ours"][1],
                0,
                "",
                "0",
                leaks["ours"][1] == 0,
            )
        )

    # --- goal 5: transfers

    def _transfer(self, server: Server, size: int) -> tuple[float, float]:
        ftp = ftplib.FTP()
        ftp.connect(HOST, server.port, timeout=60)
        ftp.login(MAIN_USER, PASSWORD)
        chunk = memoryview(bytes(MB))

        class Source:
            left = size

            def read(self, n: int) -> memoryview:
                n = min(n, self.left, len(chunk))
                self.left -= n
                return chunk[:n]

        start = time.perf_counter()
        ftp.storbinary("STOR upload.bin", Source(), blocksize=256 * 1024)
        stor = size / MB / (time.perf_counter() - start)
        start = time.perf_counter()
        received = retrieve_into(ftp, "big.bin")
        retr = size / MB / (time.perf_counter() - start)
        assert received == size, (received, size)
        ftp.delete("upload.bin")
        ftp.quit()
        return stor, retr

    def measure_transfers(self) -> None:
        size = self.params.transfer_mb * MB
        write_file(self.home / "big.bin", self.params.transfer_mb)
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
        with cores_apart([self.ours, self.bare]) as placement:
            for server in (self.ours, self.bare):
                self._transfer(server, size)  # untimed: both start from a warm cache
            for rep in range(max(3, self.params.reps * 2 + 1)):
                for server in self.servers(rep):
                    results[server.kind].append(self._transfer(server, size))
        for index, name in ((0, "STOR"), (1, "RETR")):
            ours = max(r[index] for r in results["ours"])
            bare = max(r[index] for r in results["bare"])
            self.rows.append(
                Row(
                    f"{name} {self.params.transfer_mb} MB",
                    ours,
                    bare,
                    "MB/s",
                    ">= 0.9 x bare",
                    ours >= 0.9 * bare,
                    note=placement if name == "STOR" else "",
                )
            )

    # --- FTPS: the TLS data channel must keep up with pyftpdlib's

    def _ftps_session(self, server: Server, context: ssl.SSLContext) -> ftplib.FTP_TLS:
        ftp = ftplib.FTP_TLS(context=context)
        ftp.connect(HOST, server.port, timeout=60)
        ftp.login(MAIN_USER, PASSWORD)  # AUTH TLS first
        ftp.prot_p()
        return ftp

    def _ftps_transfer(
        self, server: Server, context: ssl.SSLContext, size: int
    ) -> tuple[float, float]:
        ftp = self._ftps_session(server, context)
        chunk = memoryview(bytes(MB))
        ftp.voidcmd("TYPE I")
        start = time.perf_counter()
        with ftp.transfercmd("STOR upload.bin") as conn:
            left = size
            while left:
                n = min(left, 256 * 1024)
                conn.sendall(chunk[:n])
                left -= n
            conn.unwrap()  # close_notify, as ftplib's storbinary does
        ftp.voidresp()
        stor = size / MB / (time.perf_counter() - start)
        assert (self.home / "upload.bin").stat().st_size == size
        start = time.perf_counter()
        received = retrieve_into(ftp, "big.bin")
        retr = size / MB / (time.perf_counter() - start)
        assert received == size, (received, size)
        ftp.delete("upload.bin")
        ftp.quit()
        return stor, retr

    def _ftps_logins(self, server: Server, context: ssl.SSLContext, count: int) -> float:
        """Seconds for ``count`` FTPS logins one after the other (AUTH TLS, USER, PASS, QUIT)."""
        start = time.perf_counter()
        for _ in range(count):
            ftp = ftplib.FTP_TLS(context=context)
            ftp.connect(HOST, server.port, timeout=60)
            ftp.login(MAIN_USER, PASSWORD)
            ftp.quit()
        return time.perf_counter() - start

    def measure_ftps(self) -> None:
        """FTPS (AUTH TLS, PROT P): transfers and logins, ours and bare TLS_FTPHandler.

        Two more servers, the same certificate for both: ours with its
        TLS data channel (``tlsdata.DataConnection``, which holds back TLS
        1.3 session tickets), bare pyftpdlib with ``TLS_FTPHandler``.
        """
        assert self.workdir is not None
        import trustme

        ca = trustme.CA()
        pem = self.workdir / "bench-cert.pem"
        issued = ca.issue_cert(HOST)
        issued.private_key_and_cert_chain_pem.write_to_path(str(pem))
        context = ssl.create_default_context()
        ca.configure_trust(context)
        ours = Server.start("ours", self.home, self.env, self.workdir, certfile=pem)
        bare = Server.start("bare", self.home, self.env, self.workdir, certfile=pem)
        servers = [ours, bare]
        size = self.params.transfer_mb * MB
        write_file(self.home / "big.bin", self.params.transfer_mb)
        count = 100
        transfers: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
        logins: dict[str, list[float]] = {"ours": [], "bare": []}
        try:
            for server in servers:
                self._ftps_logins(server, context, 2)  # untimed: the password cache
            for rep in range(self.params.reps):
                for server in servers if rep % 2 == 0 else servers[::-1]:
                    logins[server.kind].append(self._ftps_logins(server, context, count))
            with cores_apart(servers) as placement:
                for server in servers:
                    self._ftps_transfer(server, context, size)  # untimed: warm caches
                for rep in range(max(3, self.params.reps + 2)):
                    for server in servers if rep % 2 == 0 else servers[::-1]:
                        transfers[server.kind].append(self._ftps_transfer(server, context, size))
            version = tls_version(context, ours)
        finally:
            ours.stop()
            bare.stop()
        for index, name in ((0, "STOR"), (1, "RETR")):
            best = {kind: max(r[index] for r in runs) for kind, runs in transfers.items()}
            self.rows.append(
                Row(
                    f"FTPS {name} {self.params.transfer_mb} MB (PROT P)",
                    best["ours"],
                    best["bare"],
                    "MB/s",
                    ">= 0.9 x bare",
                    best["ours"] >= 0.9 * best["bare"],
                    note=(f"best of {len(transfers['bare'])}; {version}; " + placement)
                    if name == "STOR"
                    else "",
                )
            )
        ours_s, bare_s = min(logins["ours"]), min(logins["bare"])
        self.rows.append(
            Row(
                f"{count} FTPS logins one after the other, cached",
                ours_s,
                bare_s,
                "s",
                "<= 3 x bare",
                ours_s <= 3 * bare_s,
                note=f"best of {len(logins['bare'])}; AUTH TLS, USER, PASS, QUIT each",
            )
        )

    # --- metrics: counting must not slow the sessions

    def measure_metrics(self) -> None:
        """220 commands and a transfer with and without ``--metrics``, beside an A/A control.

        Two server processes differ by several per cent even when they are
        identical (which core and cache they get, what else the machine
        runs): single runs of two servers measure that noise more than a
        difference of 3 %. So each repetition runs four servers back to back,
        in an order that rotates: bare pyftpdlib, ours, ours again (a second
        process, no metrics: the A/A control) and ours with ``--metrics``.
        Each ratio is the median of the ratios of one repetition's pair,
        which saw the same machine load; the A/A row, measured the same way,
        is the noise floor to read the with / without row against. The rows
        of times and speeds are medians as well.

        Prometheus scrapes every 15 to 60 s; here /metrics is scraped every
        second during the whole measure, so the figures include scrapes
        racing the sessions' counting.
        """
        assert self.workdir is not None
        counted = Server.start("ours-metrics", self.home, self.env, self.workdir)
        twin = Server.start("ours", self.home, self.env, self.workdir, name="ours-2")
        stop = threading.Event()
        scrapes = [0]

        def scraper() -> None:
            url = f"http://{HOST}:{counted.metrics_port}/metrics"
            while not stop.wait(1.0):
                with urllib.request.urlopen(url, timeout=10) as response:
                    response.read()
                scrapes[0] += 1

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        servers = {"bare": self.bare, "ours": self.ours, "ours-2": twin, "metrics": counted}
        names = list(servers)
        size = self.params.transfer_mb * MB
        commands: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        transfers: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        command_reps = 50
        transfer_reps = 5 if self.params.reps == 1 else 21
        try:
            for server in servers.values():
                self._timed_commands(server)  # untimed warm-up: caches, threads
            for rep in range(command_reps):
                for name in rotated(names, rep):
                    elapsed, spent = self._timed_commands(servers[name])
                    commands[name].append(elapsed)
                    cpu[name].append(spent)
            # Written after the commands: its writeback to disk slowed them 5 times.
            write_file(self.home / "big.bin", self.params.transfer_mb)
            with cores_apart(list(servers.values())) as placement:
                for server in servers.values():
                    self._transfer(server, size)  # untimed warm-up
                for rep in range(transfer_reps):
                    for name in rotated(names, rep):
                        transfers[name].append(self._transfer(servers[name], size))
        finally:
            stop.set()
            thread.join(15)
            counted.stop()
            twin.stop()

        median = {name: statistics.median(times) for name, times in commands.items()}
        self.rows.append(
            Row(
                "220 commands, --metrics",
                median["metrics"],
                median["bare"],
                "s",
                note=f"medians of {command_reps} runs each; /metrics scraped {scrapes[0]} times",
            )
        )
        self.rows.append(Row("220 commands, no metrics", median["ours"], median["bare"], "s"))
        self.rows += slower_rows(
            "time",
            "metrics",
            commands,
            ("metrics", "ours"),
            ("ours-2", "ours"),
            "no metrics",
            f"above 1: slower with metrics; median of {command_reps} back-to-back pairs",
        )
        self.rows += slower_rows(
            "server CPU",
            "metrics",
            cpu,
            ("metrics", "ours"),
            ("ours-2", "ours"),
            "no metrics",
            f"the server process's CPU time for the commands; median of {command_reps} pairs",
        )
        extra = counting_cost_per_command()
        share = extra / (median["ours"] / 220)
        self.rows.append(
            Row(
                "  counting cost per command",
                extra * 1e6,
                unit="us",
                goal="<= 3% of a command",
                met=share <= 0.03,
                note=f"{share:.2%} of a command's time; the hot path timed in-process",
            )
        )
        for index, op in ((0, "STOR"), (1, "RETR")):
            speeds = {name: [run[index] for run in runs] for name, runs in transfers.items()}
            speed = {name: statistics.median(values) for name, values in speeds.items()}
            label = f"{op} {self.params.transfer_mb} MB"
            self.rows.append(
                Row(
                    f"{label}, --metrics",
                    speed["metrics"],
                    speed["bare"],
                    "MB/s",
                    note=(placement + "; " if placement else "")
                    + f"medians of {transfer_reps} runs each"
                    if op == "STOR"
                    else "",
                )
            )
            self.rows.append(Row(f"{label}, no metrics", speed["ours"], speed["bare"], "MB/s"))
            ratio, spread = paired_ratio(speeds["metrics"], speeds["ours"])
            noise, noise_spread = paired_ratio(speeds["ours-2"], speeds["ours"])
            self.rows.append(
                Row(
                    f"  {op} speed with / without metrics",
                    ratio,
                    unit="x",
                    goal=">= 0.97 x",
                    met=within_goal(ratio >= 0.97, spread, noise),
                    note=f"below 1: slower with metrics; median of {transfer_reps} back-to-back "
                    f"pairs" + noisy(spread, noise),
                )
            )
            self.rows.append(
                Row(
                    f"  {op} speed A/A: two servers, no metrics",
                    noise,
                    unit="x",
                    note=f"the noise floor, +/- {noise_spread:.3f}",
                )
            )
        extra = counting_cost_per_transfer()
        seconds = size / MB / speed_of(transfers["ours"], 0)
        share = extra / seconds
        self.rows.append(
            Row(
                "  counting cost per transfer",
                extra * 1e6,
                unit="us",
                goal="<= 3% of a transfer",
                met=share <= 0.03,
                note=f"{share:.4%} of a {self.params.transfer_mb} MB STOR; nothing per byte",
            )
        )

    # --- goal 6: many sessions

    def _crowd(self, server: Server, count: int) -> tuple[float, float, float, float]:
        """(KB per idle session, login s, NOOP ms, RETR MB/s) with ``count`` idle sessions."""

        async def run() -> tuple[float, float, float, float]:
            base = server.stats()
            sessions = await open_many(HOST, server.port, MAIN_USER, PASSWORD, count)
            crowded = server.stats()
            per_session = (crowded["rss_kb"] - base["rss_kb"]) / count
            start = time.perf_counter()
            extra = await logged_in(HOST, server.port, MAIN_USER, PASSWORD)
            login = time.perf_counter() - start
            noop = min([await extra.rtt() for _ in range(5)]) * 1000
            await extra.close()
            retr = max([await asyncio.to_thread(self._retr_small, server) for _ in range(5)])
            await close_all(sessions)
            return per_session, login, noop, retr

        return asyncio.run(run())

    def _retr_small(self, server: Server) -> float:
        ftp = ftplib.FTP()
        ftp.connect(HOST, server.port, timeout=60)
        ftp.login(MAIN_USER, PASSWORD)
        size = (self.home / "mid.bin").stat().st_size
        start = time.perf_counter()
        assert retrieve_into(ftp, "mid.bin") == size
        speed = size / MB / (time.perf_counter() - start)
        ftp.quit()
        return speed

    def measure_crowd(self) -> None:
        count = self.params.idle_sessions
        write_file(self.home / "mid.bin", 100)
        results = {server.kind: self._crowd(server, count) for server in (self.ours, self.bare)}
        ours, bare = results["ours"], results["bare"]
        self.rows.append(Row(f"memory per idle session ({count} sessions)", ours[0], bare[0], "KB"))
        self.rows.append(Row(f"  one more login with {count} idle", ours[1], bare[1], "s"))
        self.rows.append(Row("  its NOOP round trip", ours[2], bare[2], "ms"))
        self.rows.append(Row("  its RETR 100 MB", ours[3], bare[3], "MB/s"))


def _set_affinity(pid: int, cpus: set[int]) -> None:
    """Put every thread of process ``pid`` on ``cpus`` (its new threads inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def cores_apart(servers: list[Server]) -> Iterator[str]:
    """The servers on the first core, this client on the others, for the block.

    On a machine of few cores, where the scheduler puts the server thread
    that sends and the client that receives decides a loopback transfer's
    speed more than either program does: sharing a core with the client,
    either server sent about 2 GB/s here, on a core of its own 4 to 7.
    Which one a transfer gets is luck (and it differs between a server of
    one thread and a server of many), so best-of-five figures still moved
    between 0.4 and 1.4 times bare pyftpdlib from run to run. Pinned, both
    servers get the same placement every time. Yields a note for the table.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not Path("/proc/self/task").is_dir():
        yield ""
        return
    every, first, rest = set(cpus), {cpus[0]}, set(cpus[1:])
    for server in servers:
        _set_affinity(server.process.pid, first)
    os.sched_setaffinity(0, rest)
    try:
        yield f"STOR and RETR with the servers on core {cpus[0]}, the client on the others"
    finally:
        os.sched_setaffinity(0, every)
        for server in servers:
            _set_affinity(server.process.pid, every)


def rotated(names: list[str], rep: int) -> list[str]:
    """``names`` starting at the ``rep``-th, so each takes each place in turn over the rounds."""
    start = rep % len(names)
    return names[start:] + names[:start]


def paired_ratio(first: list[float], second: list[float]) -> tuple[float, float]:
    """The median of ``first[i] / second[i]``, and that median's standard error.

    Each pair was measured back to back, under the same load: their ratio
    is free of the load's drift, and the median free of the outliers. The
    error is estimated from the ratios' interquartile range (robust to the
    outliers as well): 1.253 sigma / sqrt(n), with sigma = IQR / 1.349.
    """
    ratios = sorted(a / b for a, b in zip(first, second, strict=True))
    if len(ratios) < 4:
        return statistics.median(ratios), float("inf")
    low, _, high = statistics.quantiles(ratios, n=4)
    error = 1.253 * (high - low) / 1.349 / len(ratios) ** 0.5
    return statistics.median(ratios), error


#: How far from 1 the A/A control, and how large the error of a median, may
#: be for a 3 % comparison to mean something.
NOISE_FLOOR = 0.03


def within_goal(met: bool, error: float, noise: float) -> bool | None:
    """``met``, or no verdict (None) when this run cannot tell 3 % apart.

    That is when the two identical servers (the A/A control) came out more
    than 3 % apart, or when the median's standard error is over half of
    3 %: the machine was too busy, a rerun on a quieter one can judge.
    """
    if abs(noise - 1) > NOISE_FLOOR or error > NOISE_FLOOR / 2:
        return None
    return met


def noisy(error: float, noise: float) -> str:
    text = f", +/- {error:.3f}"
    if within_goal(True, error, noise) is None:
        text += "; no verdict: too noisy to tell 3 % (A/A off by " + f"{abs(noise - 1):.1%})"
    return text


def session_cpu(before: dict[str, float], after: dict[str, float]) -> float:
    """The server's CPU seconds between two ``stats``, less what scrapes took.

    A scrape renders every metric on an HTTP thread; landing inside one
    session's window at random, it would count as that session's cost
    though no session waited for it (the wall-time rows include them).
    """
    scrapes = after.get("scrape_cpu_s", 0.0) - before.get("scrape_cpu_s", 0.0)
    return after["cpu_s"] - before["cpu_s"] - scrapes


def slower_rows(
    what: str,
    feature: str,
    samples: dict[str, list[float]],
    compared: tuple[str, str],
    control: tuple[str, str],
    alike: str,
    note: str,
) -> list[Row]:
    """A "with / without ``feature``" row (goal: at most 3 % more) and its A/A control row.

    ``samples`` holds each server's figures (seconds or CPU seconds) in the
    order they were measured; ``compared`` names the servers with and
    without the feature, ``control`` two identical servers (``alike`` says
    how they are set up).
    """
    ratio, spread = paired_ratio(samples[compared[0]], samples[compared[1]])
    noise, noise_spread = paired_ratio(samples[control[0]], samples[control[1]])
    return [
        Row(
            f"  {what} with / without {feature}",
            ratio,
            unit="x",
            goal="<= 1.03 x",
            met=within_goal(ratio <= 1.03, spread, noise),
            note=note + noisy(spread, noise),
        ),
        Row(
            f"  {what} A/A: two servers, {alike}",
            noise,
            unit="x",
            note=f"the noise floor, measured the same way, +/- {noise_spread:.3f}",
        ),
    ]


def speed_of(runs: list[tuple[float, float]], index: int) -> float:
    """The median speed of ``runs`` (STOR: index 0, RETR: 1)."""
    return statistics.median(run[index] for run in runs)


def counting_cost_per_command() -> float:
    """Seconds ``MetricsMixin`` adds to one command and its reply, timed in-process.

    The same two calls every command makes (``pre_process_command`` and
    ``respond``) on a handler with and without the mixin, over a base that
    does nothing: the difference is the counting alone, free of the noise
    of a loaded machine that an end-to-end comparison cannot escape.
    """
    import timeit

    from pyftpdlib.handlers import FTPHandler

    from django_ftpserver.ops.metrics import MetricsMixin, ServerMetrics

    class Base:
        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            return None

        def respond(self, resp: str) -> None:
            return None

    class Counted(MetricsMixin, Base):
        pass

    plain = Base()
    counted = Counted.__new__(Counted)
    counted._metrics = ServerMetrics(FTPHandler.proto_cmds)
    counted._metric_commands = {}

    def one(handler: object) -> None:
        handler.pre_process_command("NOOP", "NOOP", "")
        handler.respond("200 NOOP command successful.")

    number = 200_000
    without = min(timeit.repeat(lambda: one(plain), number=number, repeat=5)) / number
    with_ = min(timeit.repeat(lambda: one(counted), number=number, repeat=5)) / number
    return max(0.0, with_ - without)


def counting_cost_per_transfer() -> float:
    """Seconds ``MetricsMixin`` adds to one file transfer, timed in-process.

    A transfer's bytes are counted once, when its data connection closes,
    and its result and duration recorded once: nothing runs per chunk.
    """
    import timeit
    from types import SimpleNamespace

    from pyftpdlib.handlers import FTPHandler

    from django_ftpserver.ops.metrics import MetricsMixin, ServerMetrics

    class Base:
        data_channel = None

        def _on_dtp_close(self) -> None:
            return None

        def log_transfer(self, *args: object) -> None:
            return None

    class Counted(MetricsMixin, Base):
        pass

    channel = SimpleNamespace(tot_bytes_received=200 * MB, tot_bytes_sent=0)
    plain = Base()
    counted = Counted.__new__(Counted)
    counted._metrics = ServerMetrics(FTPHandler.proto_cmds)
    counted._metric_received = counted._metric_sent = 0

    def one(handler: Base) -> None:
        handler.data_channel = channel
        handler.log_transfer("STOR", "/f", True, True, 0.5, 200 * MB)
        handler._on_dtp_close()

    number = 50_000
    without = min(timeit.repeat(lambda: one(plain), number=number, repeat=5)) / number
    with_ = min(timeit.repeat(lambda: one(counted), number=number, repeat=5)) / number
    return max(0.0, with_ - without)


def run_220_commands(ftp: ftplib.FTP) -> None:
    """The benchmark's 220 ordinary commands of a logged-in session (20 x 11)."""
    done = 0
    sink: list[str] = []
    ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode
    for _ in range(20):
        ftp.pwd()
        ftp.cwd("sub")
        ftp.cwd("/")
        ftp.voidcmd("NOOP")
        ftp.size("small.bin")
        ftp.voidcmd("MDTM small.bin")
        ftp.retrlines("LIST", sink.append)
        ftp.nlst()
        ftp.retrbinary("RETR small.bin", lambda data: None)
        ftp.voidcmd("NOOP")
        ftp.pwd()
        done += 11
    assert done == 220


def write_file(path: Path, megabytes: int) -> None:
    """Write the file to download and flush it to disk.

    Otherwise whichever server reads it first competes with the writeback
    of its dirty pages.
    """
    with open(path, "wb") as out:
        block = bytes(MB)
        for _ in range(megabytes):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def retrieve_into(ftp: ftplib.FTP, name: str) -> int:
    """RETR ``name`` with ``recv_into`` one reused buffer; return the bytes received.

    ``retrbinary`` allocates a new bytes object per chunk: at gigabytes per
    second the client then measures its own allocator more than the server.
    """
    ftp.voidcmd("TYPE I")
    buffer = bytearray(1024 * 1024)
    received = 0
    with ftp.transfercmd(f"RETR {name}") as conn:
        while True:
            count = conn.recv_into(buffer)
            if not count:
                break
            received += count
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()  # as ftplib's retrbinary does
    ftp.voidresp()
    return received


def tls_version(context: ssl.SSLContext, server: Server) -> str:
    """The TLS version ``context`` and ``server`` agree on."""
    with contextlib.closing(ftplib.FTP_TLS(context=context)) as ftp:
        ftp.connect(HOST, server.port, timeout=30)
        ftp.auth()
        return ftp.sock.version() or "?"


def one_hash_seconds() -> tuple[float, str]:
    """Median time of one check with Django's default hasher, and its name."""
    from django.contrib.auth.hashers import check_password, get_hasher, make_password

    hasher = get_hasher("default")
    encoded = make_password(PASSWORD)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        assert check_password(PASSWORD, encoded)
        times.append(time.perf_counter() - start)
    return statistics.median(times), f"{hasher.algorithm}, {hasher.iterations} iterations"


def prepare_database(home: Path) -> None:
    """Migrate the throwaway database and create the accounts (one hash for all)."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from django_ftpserver.models import FTPUserAccount, FTPUserGroup

    call_command("migrate", verbosity=0)
    FTPUserAccount.objects.all().delete()
    User.objects.filter(username__in=[MAIN_USER, *COLD_USERS]).delete()
    encoded = make_password(PASSWORD)
    group, _ = FTPUserGroup.objects.get_or_create(
        name="bench", defaults={"permission": "elradfmwMT"}
    )
    for name in [MAIN_USER, *COLD_USERS]:
        user = User.objects.create(username=name, password=encoded)
        FTPUserAccount.objects.create(user=user, group=group, home_dir=str(home))


def create_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(
        host=os.environ.get("PGHOST", HOST), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10:
        return f"{int(value)}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(rows: list[Row]) -> str:
    header = ["measure", "ours", "bare pyftpdlib", "ours/bare", "goal", "met"]
    lines = [header]
    for row in rows:
        unit = f" {row.unit}" if row.unit else ""
        # "noisy": a goal this run could not judge (see within_goal)
        met = ("noisy" if row.goal else "") if row.met is None else "yes" if row.met else "NO"
        lines.append(
            [
                row.label,
                format_number(row.ours) + (unit if row.ours is not None else ""),
                format_number(row.bare) + (unit if row.bare is not None else ""),
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                row.goal,
                met,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        cells = zip(line, widths, strict=True)
        out.append("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    notes = [f"  {row.label.strip()}: {row.note}" for row in rows if row.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


MEASURES = {
    "isolation": Bench.measure_isolation,
    "cache": Bench.measure_cache,
    "queries": Bench.measure_queries,
    "policy": Bench.measure_policy,
    "connections": Bench.measure_connections,
    "transfers": Bench.measure_transfers,
    "ftps": Bench.measure_ftps,
    "crowd": Bench.measure_crowd,
    "metrics": Bench.measure_metrics,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--only", action="append", choices=list(MEASURES), help="run only this measure (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    params = Params.for_mode(args.quick)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    workdir = Path(tempfile.mkdtemp(prefix="ftpserver-bench-"))
    home = workdir / "home"
    (home / "sub").mkdir(parents=True)
    (home / "small.bin").write_bytes(os.urandom(4096))
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["BENCH_DB"] = args.db
    # The same string hashes in every server process: two identical servers
    # (the A/A controls) then differ only by what no setting controls.
    env["PYTHONHASHSEED"] = "0"
    env["BENCH_DB_PATH"] = str(workdir / "bench.sqlite3")
    env.setdefault("BENCH_DB_NAME", "ftpserver_bench")
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))

    import django

    if args.db == "postgres":
        create_postgres_database(env["BENCH_DB_NAME"])
    django.setup()
    prepare_database(home)
    from django.db import connections

    connections.close_all()
    hash_seconds, hasher = one_hash_seconds()

    started = time.perf_counter()
    ours = Server.start("ours", home, env, workdir)
    bare = Server.start("bare", home, env, workdir)
    bench = Bench(params, ours, bare, home, hash_seconds, env=env, workdir=workdir)
    try:
        for name, measure in MEASURES.items():
            if args.only and name not in args.only:
                continue
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            measure(bench)
    finally:
        ours.stop()
        bare.stop()
    elapsed = time.perf_counter() - started

    import django as dj
    import pyftpdlib

    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    header = (
        f"django-ftpserver vs bare pyftpdlib, {today}, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"load {os.getloadavg()[0]:.2f}\n"
        f"Python {platform.python_version()}, Django {dj.__version__}, "
        f"pyftpdlib {pyftpdlib.__ver__}, database {args.db}, hasher {hasher}, "
        f"{'quick' if args.quick else 'full'} run in {elapsed:.0f} s"
    )
    print(header)
    print()
    print(table(bench.rows))
    if args.json:
        figures = {"header": header, "rows": [row.__dict__ for row in bench.rows]}
        args.json.write_text(json.dumps(figures, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    missed = [row.label.strip() for row in bench.rows if row.met is False]
    if missed:
        print(f"\ngoals missed in this run: {'; '.join(missed)}")
        sys.exit(1)
