"""The example project, run as ``make demo`` runs it: a real process, real clients.

``manage.py demo 127.0.0.1:0`` serves on a free port, announced only by the
"Serving FTP on host:port" line, which the test reads from the process's
stdout. The database and the FTP homes are moved into a temporary directory
with the example project's environment variables, so a developer's
``example_project/db.sqlite3`` is never touched.
"""

from __future__ import annotations

import ftplib
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import doc_console

EXAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "example_project"
SERVING = re.compile(r"Serving FTP on (?P<host>\S+):(?P<port>\d+)")


@dataclass
class Demo:
    process: subprocess.Popen
    host: str
    port: int
    db: Path
    homes: Path
    output: list[str]
    stderr: Path

    def connect(self, user: str = "demo", password: str = "demo") -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(self.host, self.port, timeout=20)
        ftp.login(user, password)
        return ftp

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; return the exit status.

        Waits first for the runner's "FTP server started" log line: the
        "Serving" line is printed before the runner installs its SIGTERM
        handler, and a SIGTERM in between kills the process outright.
        """
        deadline = time.monotonic() + 30
        while "FTP server started on" not in self.stderr.read_text():
            assert time.monotonic() < deadline, "no 'FTP server started' log line"
            time.sleep(0.05)
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def audit_rows(self) -> list[tuple[str, str, str, str]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(
                "SELECT event_type, username, remote_ip, path FROM demo_ftpauditlog ORDER BY id"
            ).fetchall()

    def wait_for_rows(self, count: int, timeout: float = 20) -> list[tuple[str, str, str, str]]:
        """Audit rows, once there are ``count`` (receivers run on session threads)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.audit_rows()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the tests' own settings
    env["EXAMPLE_PROJECT_DB"] = str(tmp_path / "db.sqlite3")
    env["EXAMPLE_PROJECT_FTP_HOMES"] = str(tmp_path / "ftp-homes")
    env.pop("PYTHONUNBUFFERED", None)  # the demo itself must flush the line
    return env


@pytest.fixture
def demo_args() -> list[str]:
    """Arguments of ``manage.py demo`` after the address."""
    return []


@pytest.fixture
def demo(tmp_path: Path, demo_args: list[str]) -> Iterator[Demo]:
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "127.0.0.1:0", *demo_args],
            cwd=EXAMPLE_PROJECT,
            env=_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    output: list[str] = []
    found = threading.Event()
    address: dict[str, str] = {}

    def read_stdout() -> None:
        # Keep draining stdout for the whole run, so a full pipe never blocks it.
        for line in process.stdout:
            output.append(line)
            match = SERVING.search(line)
            if match and not found.is_set():
                address.update(match.groupdict())
                found.set()

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        if not found.wait(120):
            pytest.fail(
                "no 'Serving FTP on' line; stdout:\n"
                + "".join(output)
                + "\nstderr:\n"
                + stderr.read_text()
            )
        yield Demo(
            process,
            address["host"],
            int(address["port"]),
            tmp_path / "db.sqlite3",
            tmp_path / "ftp-homes",
            output,
            stderr,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)


def test_demo_serves_ftp_and_fills_the_audit_log(demo: Demo) -> None:
    home = demo.homes / "demo"
    ftp = demo.connect()
    assert "welcome.txt" in ftp.nlst()

    payload = os.urandom(256 * 1024)
    ftp.storbinary("STOR upload.bin", io.BytesIO(payload))
    assert (home / "upload.bin").read_bytes() == payload

    downloaded = io.BytesIO()
    ftp.retrbinary("RETR upload.bin", downloaded.write)
    assert downloaded.getvalue() == payload

    ftp.delete("upload.bin")
    assert not (home / "upload.bin").exists()
    ftp.quit()

    rows = demo.wait_for_rows(4)
    path = str(home / "upload.bin")
    assert rows == [
        ("login", "demo", "127.0.0.1", ""),
        ("upload", "demo", "127.0.0.1", path),
        ("download", "demo", "127.0.0.1", path),
        ("delete", "demo", "127.0.0.1", path),
    ]

    assert demo.stop() == 0
    log = demo.stderr.read_text()
    assert "FTP login: user=demo, ip=127.0.0.1" in log
    assert "FTP logout: user=demo, ip=127.0.0.1" in log
    assert "FTP server stopped on" in log
    # Nothing written after the server stopped.
    assert len(demo.audit_rows()) == 4


def test_readme_connection_lines_work(demo: Demo, tmp_path: Path) -> None:
    """The README's lines for a second terminal, typed against ``make demo``'s server."""
    readme = EXAMPLE_PROJECT.parent / "README.rst"
    (block,) = [
        block
        for block in doc_console.blocks(readme.read_text())
        if any("ftp://demo:demo@" in line for line in block.lines)
    ]
    scratch = tmp_path / "terminal"
    scratch.mkdir()
    shutil.copy(readme, scratch / "README.rst")  # the reader is in the clone
    reader = doc_console.Reader(
        cwd=scratch,
        env=doc_console.reader_env(str(Path(sys.executable).parent)),
        port_map={"127.0.0.1:2121": f"{demo.host}:{demo.port}", "-p 2121": f"-p {demo.port}"},
    )
    reader.run_page([block])
    assert len(reader.ran) == 4
    home = demo.homes / "demo"
    assert (home / "README.rst").read_bytes() == readme.read_bytes()  # uploaded
    # ...and downloaded over the reader's copy (curl -O), still the same.
    assert (scratch / "README.rst").read_bytes() == readme.read_bytes()
    rows = demo.wait_for_rows(5)  # three curl logins, an upload, a download
    assert ("upload", "demo", "127.0.0.1", str(home / "README.rst")) in rows
    assert ("download", "demo", "127.0.0.1", str(home / "README.rst")) in rows


def test_demo_logs_a_failed_login_and_keeps_serving(demo: Demo) -> None:
    with pytest.raises(ftplib.error_perm, match="530"):
        demo.connect(password="wrong")
    ftp = demo.connect()
    ftp.quit()
    rows = demo.wait_for_rows(1)
    assert [row[0] for row in rows] == ["login"]
    assert demo.stop() == 0
    log = demo.stderr.read_text()
    assert "FTP login failed: user=demo, ip=127.0.0.1" in log
    assert "wrong" not in log


def test_demo_can_run_again_and_resets_the_password(demo: Demo, tmp_path: Path) -> None:
    """A second ``make demo`` on the same database works and restores demo/demo."""
    assert demo.stop() == 0
    env = _env(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            "u = User.objects.get(username='demo'); u.set_password('changed'); u.save()",
        ],
        cwd=EXAMPLE_PROJECT,
        env=env,
        check=True,
        capture_output=True,
    )
    again = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "127.0.0.1:0"],
        cwd=EXAMPLE_PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = None
        lines = []
        for line in again.stdout:
            lines.append(line)
            match = SERVING.search(line)
            if match:
                port = int(match["port"])
                break
        assert port, "".join(lines)
        assert any(line.startswith("Reset the user 'demo'") for line in lines)
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=20)
        ftp.login("demo", "demo")
        ftp.quit()
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    assert again.returncode == 0


def test_demo_rejects_a_bad_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "127.0.0.1:99999"],
        cwd=EXAMPLE_PROJECT,
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "invalid port 99999" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()


def test_demo_partner_uploads_csv_only_and_refusals_are_audited(demo: Demo) -> None:
    ftp = demo.connect("partner", "partner")
    with pytest.raises(ftplib.error_perm) as info:
        ftp.storbinary("STOR report.pdf", io.BytesIO(b"%PDF"))
    assert str(info.value) == "550 Partners upload .csv and .txt files only."
    ftp.storbinary("STOR report.csv", io.BytesIO(b"a,b\n"))
    ftp.quit()
    home = demo.homes / "partner"
    assert sorted(p.name for p in home.iterdir()) == ["report.csv"]
    rows = demo.wait_for_rows(4)  # login, refusal, upload
    assert ("refused", "partner", "127.0.0.1", str(home / "report.pdf")) in rows
    assert ("upload", "partner", "127.0.0.1", str(home / "report.csv")) in rows
    with sqlite3.connect(demo.db) as conn:
        (reason,) = conn.execute(
            "SELECT reason FROM demo_ftpauditlog WHERE event_type = 'refused'"
        ).fetchone()
        assert reason == "Partners upload .csv and .txt files only."
        # The demo account has a quota, and its usage is kept once it uploads.
        quota = conn.execute(
            "SELECT a.quota_bytes, a.quota_files FROM django_ftpserver_ftpuseraccount a "
            "JOIN auth_user u ON u.id = a.user_id WHERE u.username = 'demo'"
        ).fetchone()
    assert quota == (100 * 1024 * 1024, 1000)
    ftp = demo.connect()
    ftp.storbinary("STOR up.bin", io.BytesIO(b"u" * 1000))
    ftp.quit()
    with sqlite3.connect(demo.db) as conn:
        used = conn.execute(
            "SELECT a.used_bytes, a.used_files FROM django_ftpserver_ftpuseraccount a "
            "JOIN auth_user u ON u.id = a.user_id WHERE u.username = 'demo'"
        ).fetchone()
    welcome = (demo.homes / "demo" / "welcome.txt").stat().st_size
    assert used == (welcome + 1000, 2)


METRICS_LINE = re.compile(r"Serving /metrics, /healthz and /readyz on http://(?P<address>\S+)")


@pytest.mark.parametrize("demo_args", [["--metrics", "127.0.0.1:0"]])
def test_demo_with_metrics_counts_and_disconnects(demo: Demo, tmp_path: Path) -> None:
    """The operator's first walk: counters move as a client works; the command disconnects it."""
    pytest.importorskip("prometheus_client")
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def metrics_address() -> str | None:
        found = (METRICS_LINE.search(line) for line in demo.output)
        return next((match["address"] for match in found if match), None)

    deadline = time.monotonic() + 30
    while (address := metrics_address()) is None:
        assert time.monotonic() < deadline, "no /metrics line:\n" + "".join(demo.output)
        time.sleep(0.05)

    def logins_ok() -> float:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=15) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "ftpserver_logins_total" and sample.labels["result"] == "ok":
                    return sample.value
        raise AssertionError("no ftpserver_logins_total in /metrics")

    assert logins_ok() == 0
    ftp = demo.connect()
    ftp.pwd()
    assert logins_ok() == 1

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE_PROJECT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def listed() -> list[str]:  # published within a second; each call is a process
        return [line for line in manage("listftpsessions").splitlines() if " demo " in line]

    deadline = time.monotonic() + 30
    while not (lines := listed()):
        assert time.monotonic() < deadline, "the session was never listed"
    session_id = lines[0].split()[0]
    assert "The session is closed." in manage("disconnectftpsession", session_id)
    assert ftp.getline().startswith("421 Disconnected by the administrator")
    ftp.close()
    assert demo.stop() == 0
