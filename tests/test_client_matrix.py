"""The client matrix: real clients against a real server, plain and FTPS.

curl, lftp, rclone and Python's ftplib each copy a tree up and back, resume
in both directions where they can, and delete what they made. Every test
checks the bytes and the signals: one ``ftp_file_received`` per uploaded
file, no ``*_incomplete`` signal, one ``ftp_file_deleted`` or
``ftp_directory_deleted`` per item removed. ``docs/clients.rst`` documents
what this matrix covers.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, RunningServer, SignalRecorder
from .test_tls_policy import Certificate, make_certificate
from .test_tls_session_reuse import ReusingFTP_TLS

#: plain FTP; FTPS as the client negotiates it (TLS 1.3 here); FTPS with the
#: client held to TLS 1.2; FTPS with FTPSERVER_TLS_REQUIRE_SESSION_REUSE, which
#: refuses a data connection that does not resume the control's TLS session.
MODES = ["plain", "ftps", "ftps-tls1.2", "ftps-reuse"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: A nested tree: empty files, a 3 MB file, spaces and non-ASCII names.
TREE_FILES = {
    "empty.txt": 0,
    "top level.txt": 100,
    "big.bin": 3 * 1024 * 1024,
    "with space/file one.txt": 2_000,
    "with space/empty file.txt": 0,
    "ümlaut/ö/grüße.txt": 5_000,
    "ümlaut/ö/leer.txt": 0,
    "a/b/c/deep.txt": 700,
    "a/b/c/d/e/deeper.bin": 300_000,
    "a/sibling.bin": 65_536,
    **{f"many/file {n:02}.txt": n * 37 for n in range(16)},
}


def _payload(size: int, seed: str = "") -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def make_tree(root: Path) -> dict[str, bytes]:
    """Write ``TREE_FILES`` below ``root``; return relative path -> content."""
    tree = {}
    for name, size in TREE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tree[name] = _payload(size, name)
        path.write_bytes(tree[name])
    return tree


def tree_dirs(tree: dict[str, bytes]) -> set[str]:
    """The directories of ``tree`` (relative), not counting its root."""
    dirs = set()
    for name in tree:
        parent = os.path.dirname(name)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return dirs


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def _run(args: list[str], timeout: float = 240, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def _needs(program: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(program) is None, reason=f"{program} is not installed (make system-deps)"
    )


@dataclass
class Served:
    """A server for the matrix, plain or FTPS, and what a client needs for it."""

    server: RunningServer
    home: Path
    tls: Certificate | None
    recorder: SignalRecorder
    #: Highest TLS version the client may use ("1.2"), None for its default.
    tls_max: str | None = None
    #: Whether data connections must resume the control's TLS session.
    server_reuses_sessions: bool = False

    @property
    def port(self) -> int:
        return self.server.port

    def paths(self, names: Any, base: str = "") -> list[str]:
        return sorted(
            str(self.home / base / name) if name else str(self.home / base) for name in names
        )

    def wait_count(self, signal: str, count: int) -> list[str]:
        """The ``path`` of ``count`` ``signal``s, after checking no more arrive."""
        if count:
            self.recorder.wait(signal, count, timeout=60)
        self.recorder.settle()
        return sorted(event["path"] for event in self.recorder.of(signal))

    def assert_nothing_incomplete(self) -> None:
        self.recorder.settle()
        assert self.recorder.of("ftp_file_received_incomplete") == []
        assert self.recorder.of("ftp_file_sent_incomplete") == []


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("matrix-tls"))


@pytest.fixture(params=MODES)
def served(
    request: pytest.FixtureRequest,
    settings: Any,
    server_factory: Callable[..., RunningServer],
    home: Path,
    recorder: SignalRecorder,
    certificate: Certificate,
) -> Served:
    """A running server, plain or FTPS (TLS required), and alice's home."""
    if request.param == "ftps-reuse":
        settings.FTPSERVER_TLS_REQUIRE_SESSION_REUSE = True
    if request.param.startswith("ftps"):
        server = server_factory(
            certfile=str(certificate.certfile), keyfile=str(certificate.keyfile)
        )
        tls_max = "1.2" if request.param == "ftps-tls1.2" else None
        reuse = request.param == "ftps-reuse"
        return Served(server, home, certificate, recorder, tls_max, reuse)
    return Served(server_factory(), home, None, recorder)


# --- curl


def _curl(served: Served, *args: str) -> subprocess.CompletedProcess:
    tls = ["--ssl-reqd", "--cacert", str(served.tls.cafile)] if served.tls else []
    if served.tls_max:
        tls += ["--tls-max", served.tls_max]
    result = _run(
        ["curl", "-sS", "--user", f"alice:{PASSWORD}", *tls, *args],
        env={**os.environ, "NO_PROXY": "*"},
    )
    assert result.returncode == 0, (args, result.stderr)
    return result


@_needs("curl")
def test_curl(served: Served, tmp_path: Path) -> None:
    url = f"ftp://127.0.0.1:{served.port}"
    data = _payload(1_000_000, "curl")
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    _curl(served, "--ftp-create-dirs", "-T", str(source), f"{url}/in%20box/ü/up.bin")
    assert (served.home / "in box" / "ü" / "up.bin").read_bytes() == data
    assert served.wait_count("ftp_file_received", 1) == served.paths(["in box/ü/up.bin"])
    assert _curl(served, "--list-only", f"{url}/in%20box/ü/").stdout.split() == ["up.bin"]

    # Download, then resume a download cut at 300 000 bytes (REST + RETR).
    target = tmp_path / "down.bin"
    _curl(served, "-o", str(target), f"{url}/in%20box/ü/up.bin")
    assert target.read_bytes() == data
    target.write_bytes(data[:300_000])
    _curl(served, "-C", "-", "-o", str(target), f"{url}/in%20box/ü/up.bin")
    assert target.read_bytes() == data

    # Resume an upload whose first 400 000 bytes arrived earlier (SIZE + APPE).
    (served.home / "resumed.bin").write_bytes(data[:400_000])
    _curl(served, "-C", "-", "-T", str(source), f"{url}/resumed.bin")
    assert (served.home / "resumed.bin").read_bytes() == data
    assert served.wait_count("ftp_file_received", 2) == served.paths(
        ["in box/ü/up.bin", "resumed.bin"]
    )

    _curl(served, "-Q", "DELE resumed.bin", "-Q", "DELE in box/ü/up.bin", f"{url}/")
    _curl(served, "-Q", "RMD in box/ü", "-Q", "RMD in box", f"{url}/")
    assert list(served.home.iterdir()) == []
    assert served.wait_count("ftp_file_deleted", 2) == served.paths(
        ["in box/ü/up.bin", "resumed.bin"]
    )
    assert served.wait_count("ftp_directory_deleted", 2) == served.paths(["in box", "in box/ü"])
    assert len(served.recorder.of("ftp_file_sent")) == 2
    served.assert_nothing_incomplete()


# --- lftp


def _lftp(served: Served, *commands: str, cwd: Path) -> subprocess.CompletedProcess:
    settings = [
        "set net:max-retries 1",
        "set net:timeout 30",
        "set cmd:fail-exit yes",
        "set xfer:clobber yes",
    ]
    if served.tls:
        settings += [
            "set ftp:ssl-force yes",
            "set ftp:ssl-protect-data yes",
            "set ftp:ssl-protect-list yes",
            f"set ssl:ca-file {served.tls.cafile}",
            "set ssl:verify-certificate yes",
        ]
        if served.tls_max:
            settings.append("set ssl:priority NORMAL:-VERS-TLS1.3")
    else:
        settings.append("set ftp:ssl-allow no")
    script = "; ".join(
        [*settings, f"open -u alice,{PASSWORD} -p {served.port} 127.0.0.1", *commands, "bye"]
    )
    result = _run(["lftp", "-c", script], cwd=cwd)
    assert result.returncode == 0, (commands, result.stderr)
    return result


@_needs("lftp")
def test_lftp(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "source"
    tree = make_tree(source)
    dirs = tree_dirs(tree)

    _lftp(served, "mirror -R --parallel=4 source mirror", cwd=tmp_path)
    assert read_tree(served.home / "mirror") == tree
    assert served.wait_count("ftp_file_received", len(tree)) == served.paths(tree, "mirror")

    # lftp's own listings: "ls -la <dir>" sends LIST -la <dir>, "nlist -a" NLST -a.
    listing = _lftp(served, "ls -la mirror/a/b/c", cwd=tmp_path).stdout.splitlines()
    assert sorted(line.split(None, 8)[-1] for line in listing) == ["d", "deep.txt"]
    names = _lftp(served, "nlist -a mirror/ümlaut/ö", cwd=tmp_path).stdout.splitlines()
    assert sorted(names) == ["grüße.txt", "leer.txt"]

    _lftp(served, "mirror --parallel=4 mirror back", cwd=tmp_path)
    assert read_tree(tmp_path / "back") == tree

    # get -c: REST + RETR from where the local copy stops.
    big = tree["big.bin"]
    (tmp_path / "partial.bin").write_bytes(big[:1_000_000])
    _lftp(served, "get -c mirror/big.bin -o partial.bin", cwd=tmp_path)
    assert (tmp_path / "partial.bin").read_bytes() == big

    # put -c: SIZE, then REST + STOR from the size the server has.
    (served.home / "mirror" / "resumed.bin").write_bytes(big[:1_234_567])
    _lftp(served, "put -c source/big.bin -o mirror/resumed.bin", cwd=tmp_path)
    assert (served.home / "mirror" / "resumed.bin").read_bytes() == big
    tree["resumed.bin"] = big
    assert served.wait_count("ftp_file_received", len(tree)) == served.paths(tree, "mirror")

    _lftp(served, "rm -r mirror", cwd=tmp_path)
    assert list(served.home.iterdir()) == []
    assert served.wait_count("ftp_file_deleted", len(tree)) == served.paths(tree, "mirror")
    assert served.wait_count("ftp_directory_deleted", len(dirs) + 1) == served.paths(
        [*dirs, ""], "mirror"
    )
    served.assert_nothing_incomplete()


# --- rclone


def _rclone(served: Served, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run rclone with an on-the-fly remote; no configuration file is read or written."""
    env = {
        **os.environ,
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),  # not created
        "XDG_CACHE_HOME": str(tmp_path / "rclone-cache"),
        "NO_PROXY": "*",
    }
    obscured = _run(["rclone", "obscure", PASSWORD], env=env).stdout.strip()
    remote = f":ftp,host=127.0.0.1,port={served.port},user=alice,pass={obscured}"
    if served.server_reuses_sessions:
        # rclone keeps one TLS session per host for all its connections: with
        # several, a data connection resumes another control's session and
        # is refused (522). One connection resumes its own.
        remote += ",concurrency=1"
    options = ["--retries", "1", "--low-level-retries", "1", "--contimeout", "30s"]
    if served.tls:
        remote += ",explicit_tls=true"
        if served.tls_max:
            remote += ",disable_tls13=true"
        # rclone's FTP backend ignores --ca-cert; Go reads the trusted CAs
        # from SSL_CERT_FILE, so the certificate is verified all the same.
        env["SSL_CERT_FILE"] = str(served.tls.cafile)
    args = tuple(arg.replace("REMOTE:", f"{remote}:") for arg in args)
    return _run(["rclone", *args, *options], env=env, cwd=tmp_path)


@_needs("rclone")
def test_rclone_sync_check_purge(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "source"
    tree = make_tree(source)
    dirs = tree_dirs(tree)

    started = time.monotonic()
    sync = _rclone(
        served,
        tmp_path,
        "sync",
        str(source),
        "REMOTE:mirror",
        "--transfers",
        "8",
        "--checkers",
        "8",
    )
    took = time.monotonic() - started
    assert sync.returncode == 0, sync.stderr
    print(f"rclone sync: {len(tree)} files, {sum(map(len, tree.values()))} bytes in {took:.1f} s")
    assert read_tree(served.home / "mirror") == tree
    assert served.wait_count("ftp_file_received", len(tree)) == served.paths(tree, "mirror")
    served.assert_nothing_incomplete()

    check = _rclone(served, tmp_path, "check", "--download", str(source), "REMOTE:mirror")
    assert check.returncode == 0, check.stderr
    assert "0 differences found" in check.stderr
    assert f"{len(tree)} matching files" in check.stderr

    purge = _rclone(served, tmp_path, "purge", "REMOTE:mirror")
    assert purge.returncode == 0, purge.stderr
    assert list(served.home.iterdir()) == []
    assert served.wait_count("ftp_file_deleted", len(tree)) == served.paths(tree, "mirror")
    assert served.wait_count("ftp_directory_deleted", len(dirs) + 1) == served.paths(
        [*dirs, ""], "mirror"
    )
    served.assert_nothing_incomplete()
    assert not (tmp_path / "no-rclone.conf").exists()


# --- ftplib


@pytest.fixture
def ftplib_client(served: Served) -> Iterator[ftplib.FTP]:
    if served.tls:
        context = served.tls.client_context()
        if served.tls_max:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        # Python's FTP_TLS does not resume the control's session on its data
        # connections; the subclass of test_tls_session_reuse does.
        reuse = served.server_reuses_sessions
        ftp: ftplib.FTP = (ReusingFTP_TLS if reuse else ftplib.FTP_TLS)(context=context, timeout=30)
        ftp.connect(served.server.host, served.port)
        ftp.login("alice", PASSWORD)
        ftp.prot_p()
    else:
        ftp = served.server.connect("alice", timeout=30)
    yield ftp
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def test_ftplib(served: Served, ftplib_client: ftplib.FTP, tmp_path: Path) -> None:
    ftp = ftplib_client
    tree = make_tree(tmp_path / "source")
    dirs = tree_dirs(tree)

    for directory in sorted(dirs):
        ftp.mkd(directory)
    for name, data in tree.items():
        ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    assert read_tree(served.home) == tree
    assert served.wait_count("ftp_file_received", len(tree)) == served.paths(tree)
    assert {name for name, facts in ftp.mlsd("ümlaut/ö")} == {"grüße.txt", "leer.txt"}

    back = {}
    for name in tree:
        out = io.BytesIO()
        ftp.retrbinary(f"RETR {name}", out.write)
        back[name] = out.getvalue()
    assert back == tree

    # REST + RETR.
    big = tree["big.bin"]
    out = io.BytesIO()
    ftp.retrbinary("RETR big.bin", out.write, rest=2_000_000)
    assert out.getvalue() == big[2_000_000:]

    # REST + STOR over a partial upload, and APPE.
    (served.home / "rest.bin").write_bytes(big[:1_500_000])
    assert ftp.size("rest.bin") == 1_500_000
    ftp.storbinary("STOR rest.bin", io.BytesIO(big[1_500_000:]), rest=1_500_000)
    (served.home / "appe.bin").write_bytes(big[:700_000])
    ftp.storbinary("APPE appe.bin", io.BytesIO(big[700_000:]))
    assert (served.home / "rest.bin").read_bytes() == big
    assert (served.home / "appe.bin").read_bytes() == big
    tree.update({"rest.bin": big, "appe.bin": big})
    assert served.wait_count("ftp_file_received", len(tree)) == served.paths(tree)

    for name in tree:
        ftp.delete(name)
    for directory in sorted(dirs, reverse=True):
        ftp.rmd(directory)
    assert list(served.home.iterdir()) == []
    assert served.wait_count("ftp_file_deleted", len(tree)) == served.paths(tree)
    assert served.wait_count("ftp_directory_deleted", len(dirs)) == served.paths(dirs)
    served.assert_nothing_incomplete()
