"""StorageFS on S3 against boto3 itself, on one ``moto_server``, in one run.

``python -m bench.s3 [--objects 1000,10000] [--transfer-mb 200] [--memory-mb 0]``
(``make bench-s3``; ``--memory-mb 1024`` adds the 1 GB upload's peak memory).

* LIST and MLSD of a folder of N objects through the server: S3 requests
  (counted with a botocore hook in the server) and seconds, next to the
  time boto3 itself takes to fetch the same ``ListObjectsV2`` pages. Each
  figure is the median of ``RUNS`` runs, the session's listing cache
  expired before each: every run asks S3 again. The time is the client's,
  from sending the command to the last line of the listing.
* STOR and RETR of ``--transfer-mb`` through ``manage.py ftpserver`` (a
  process of its own) against boto3's ``upload_fileobj`` /
  ``download_fileobj`` to the same endpoint: the ratio is boto3's time over
  ours (1.0: as fast as talking to S3 directly).
* The server's resident memory growth during one upload of
  ``--memory-mb`` (sampled from ``/proc``), with the client sending from
  one fixed block; the object is then downloaded from the bucket, streamed,
  and its sha256 compared with the sha256 of what was sent.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-Pa55word"
MiB = 1024 * 1024
BLOCK = hashlib.sha256(b"bench").digest() * (MiB // 32)  # 1 MiB
#: Each LIST/MLSD figure is the median of this many runs.
RUNS = 3


class Repeated(io.RawIOBase):
    """``size`` bytes of ``BLOCK`` repeated, read without holding them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.sha256 = hashlib.sha256()  # of every byte read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.size - self.sent, len(BLOCK))
        start = self.sent % len(BLOCK)
        part = (BLOCK + BLOCK)[start : start + count]
        buffer[:count] = part
        self.sha256.update(part)
        self.sent += count
        return count


class Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.received = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.received += len(data)
        return len(data)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings_s3"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from django_ftpserver.models import FTPUserAccount, FTPUserGroup

    if not get_user_model().objects.filter(username="bench").exists():
        user = get_user_model().objects.create_user("bench", password=PASSWORD)
        group = FTPUserGroup.objects.create(name="bench", permission="elradfmwMT")
        FTPUserAccount.objects.create(user=user, group=group, home_dir="bench")


def fill(bucket: Any, prefix: str, count: int) -> None:
    client = bucket.client()

    def put(index: int) -> None:
        client.put_object(Bucket=bucket.name, Key=f"{prefix}f{index:05d}.txt", Body=b"x" * 100)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def measure_list(bucket: Any, counts: list[int]) -> list[tuple[str, str, str]]:
    """LIST through an in-process server whose S3 requests are counted."""
    from django.conf import settings

    from django_ftpserver.filesystems import LISTING_CACHE_SECONDS
    from django_ftpserver.management.commands.ftpserver import Command
    from tests import s3 as tests_s3

    settings.STORAGES["default"]["BACKEND"] = "tests.s3.CountingS3Storage"
    runner = Command().create_runner({"host_port": "127.0.0.1:0"})
    thread = threading.Thread(target=runner.run, kwargs={"sender": Command}, daemon=True)
    thread.start()
    host, port = runner.address
    rows = []
    try:
        for count in counts:
            fill(bucket, f"bench/list{count}/", count)
            ftp = ftplib.FTP()
            ftp.connect(host, port, timeout=120)
            ftp.login("bench", PASSWORD)
            ftp.voidcmd("NOOP")
            # The floor: the same pages asked by boto3 directly.
            client = bucket.client()
            client.list_objects_v2(Bucket=bucket.name, MaxKeys=1)  # a warm connection

            def boto3_pages(client: Any = client, count: int = count) -> int:
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket.name, Prefix=f"bench/list{count}/", Delimiter="/"
                )
                return sum(len(page.get("Contents", ())) for page in pages)

            times: dict[str, list[float]] = {"LIST": [], "MLSD": [], "boto3": []}
            requests: dict[str, set[int]] = {"LIST": set(), "MLSD": set()}
            # Rounds of LIST, MLSD and boto3 in turn: a change in the machine's
            # load falls on all three, not on whichever ran first.
            for _ in range(RUNS):
                for command in ("LIST", "MLSD"):
                    time.sleep(LISTING_CACHE_SECONDS + 0.1)  # the listing asked again
                    tests_s3.requests.clear()
                    lines: list[str] = []
                    started = time.perf_counter()
                    ftp.retrlines(f"{command} list{count}", lines.append)
                    times[command].append(time.perf_counter() - started)
                    assert len(lines) == count, (command, len(lines))
                    requests[command].add(len(tests_s3.requests))
                started = time.perf_counter()
                listed = boto3_pages()
                times["boto3"].append(time.perf_counter() - started)
                assert listed == count
            ftp.quit()
            for command in ("LIST", "MLSD"):
                rows.append(
                    (
                        f"{command} of {count:,} objects",
                        "/".join(map(str, sorted(requests[command]))) + " requests",
                        f"{statistics.median(times[command]):.2f} s",
                    )
                )
            rows.append(
                (
                    f"boto3 pages of {count:,}",
                    "the same pages, asked directly",
                    f"{statistics.median(times['boto3']):.2f} s",
                )
            )
    finally:
        runner.stop()
        thread.join(10)
    return rows


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    from tests.s3 import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "ftpserver", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the FTP server did not start")


def login(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=300)
    ftp.login("bench", PASSWORD)
    ftp.voidcmd("TYPE I")
    return ftp


def measure_transfers(bucket: Any, port: int, mb: int) -> list[tuple[str, str, str]]:
    from boto3.s3.transfer import TransferConfig

    size = mb * MiB
    client = bucket.client()
    config = TransferConfig()
    rows = []
    ftp = login(port)
    try:
        started = time.perf_counter()
        ftp.storbinary("STOR transfer.bin", Repeated(size), blocksize=256 * 1024)
        ours_up = time.perf_counter() - started
        started = time.perf_counter()
        client.upload_fileobj(Repeated(size), bucket.name, "direct.bin", Config=config)
        boto_up = time.perf_counter() - started

        sink = Sink()
        started = time.perf_counter()
        ftp.retrbinary("RETR transfer.bin", sink.write, blocksize=256 * 1024)
        ours_down = time.perf_counter() - started
        assert sink.received == size
        sink = Sink()
        started = time.perf_counter()
        client.download_fileobj(bucket.name, "direct.bin", sink, Config=config)
        boto_down = time.perf_counter() - started
        assert sink.received == size
    finally:
        ftp.quit()
    for name, ours, boto in (("STOR", ours_up, boto_up), ("RETR", ours_down, boto_down)):
        rows.append(
            (
                f"{name} {mb} MB",
                f"ours {mb / ours:.0f} MB/s, boto3 {mb / boto:.0f} MB/s",
                f"ratio {boto / ours:.2f}",
            )
        )
    return rows


def measure_memory(bucket: Any, process: subprocess.Popen, port: int, mb: int) -> tuple:
    ftp = login(port)
    ftp.storbinary("STOR warm-up.bin", io.BytesIO(b"x"))
    baseline = rss_kib(process.pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent = Repeated(mb * MiB)
    started = time.perf_counter()
    try:
        ftp.storbinary("STOR memory.bin", sent, blocksize=256 * 1024)
    finally:
        done.set()
        sampler.join()
        ftp.quit()
    seconds = time.perf_counter() - started
    assert sent.sent == mb * MiB
    # What landed in the bucket, byte for byte: a streamed download's sha256.
    body = bucket.client().get_object(Bucket=bucket.name, Key="bench/memory.bin")["Body"]
    stored, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(MiB):
        stored.update(chunk)
        size += len(chunk)
    if (size, stored.hexdigest()) != (sent.sent, sent.sha256.hexdigest()):
        raise AssertionError(f"bench/memory.bin differs from what was sent ({size:,} bytes)")
    return (
        f"STOR {mb} MB: server memory",
        f"+{(peak - baseline) / 1024:.1f} MiB over {baseline / 1024:.0f} MiB",
        f"{seconds:.1f} s, sha256 verified",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", default="1000,10000", help="folder sizes to LIST")
    parser.add_argument("--transfer-mb", type=int, default=200)
    parser.add_argument("--memory-mb", type=int, default=0, help="e.g. 1024; 0: skip")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.s3 import MotoServer

    moto = MotoServer.start()
    db_dir = tempfile.mkdtemp(prefix="bench-s3-")
    try:
        bucket = moto.create_bucket("bench")
        env = {**bucket.environ(), "FTPSERVER_TEST_DB_DIR": db_dir}
        setup_django(env)
        rows = []
        counts = [int(n) for n in args.objects.split(",") if n]
        if counts:
            rows += measure_list(bucket, counts)
        if args.transfer_mb or args.memory_mb:
            process, port = start_server(env)
            try:
                if args.transfer_mb:
                    rows += measure_transfers(bucket, port, args.transfer_mb)
                if args.memory_mb:
                    rows.append(measure_memory(bucket, process, port, args.memory_mb))
            finally:
                process.terminate()
                process.wait(30)
        width = max(len(row[0]) for row in rows)
        print(f"StorageFS on S3 (moto_server {moto.endpoint}), {os.cpu_count()} cores")
        print(
            f"  LIST/MLSD/boto3: median of {RUNS} runs, listing cache expired before each;"
            " STOR/RETR ratio: boto3's time over ours"
        )
        for label, first, second in rows:
            print(f"  {label:<{width}}  {first:<40}  {second}")
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
