"""Replies clients can act on, command by command, against a real server.

Every pyftpdlib command that takes a path answers 550 for a path that does
not exist (sync clients read only 550 as "not found"), on the local
filesystem and on ``StorageFS`` (with and without its ``FileSystemStorage``
patch); ``MLSD`` of a file answers RFC 3659's 501. Listing commands accept
``ls``-style options before or instead of the path. ``CWD`` never moves
the whole process. ``REST`` and ``APPE`` resume on every filesystem.
"""

from __future__ import annotations

import ftplib
import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyftpdlib.filesystems import AbstractedFS

from django_ftpserver.handler.replies import split_list_options

from .conftest import PASSWORD, RawClient, RunningServer, SignalRecorder
from .test_filesystems import GenericStorageFS, use_storage

FILESYSTEMS = ["local", "storage", "generic-storage"]


@pytest.fixture(params=FILESYSTEMS)
def served(
    request: pytest.FixtureRequest,
    settings: Any,
    tmp_path: Path,
    server_factory: Callable[..., RunningServer],
    make_account: Callable[..., Any],
) -> tuple[RunningServer, Path]:
    """A running server and alice's home on disk, with ``f.txt`` and ``d/inner.txt``."""
    home = tmp_path / "storage" / "alice"
    home.mkdir(parents=True)
    if request.param != "local":
        use_storage(
            settings,
            "django.core.files.storage.FileSystemStorage",
            filesystem=GenericStorageFS if request.param == "generic-storage" else None,
            location=str(tmp_path / "storage"),
        )
        if request.param == "storage":
            settings.FTPSERVER_FILESYSTEM = "django_ftpserver.filesystems.StorageFS"
        account = make_account("alice", home=home)
        account.home_dir = "alice"  # a storage prefix
        account.save()
    else:
        make_account("alice", home=home)
    (home / "f.txt").write_bytes(b"0123456789")
    (home / "d").mkdir()
    (home / "d" / "inner.txt").write_bytes(b"inner")
    return server_factory(), home


@pytest.fixture
def raw(served: tuple[RunningServer, Path]) -> Iterator[RawClient]:
    client = RawClient(served[0])
    client.login("alice")
    assert client.send(b"TYPE I")[0] == 200
    yield client
    client.close()


# One line per command of pyftpdlib's proto_cmds that takes a path; each
# names something missing in a way that command can meet it.
MISSING = [
    "CWD nope",
    "XCWD nope",
    "CWD nope/deeper",
    "CWD f.txt/deeper",
    "LIST nope",
    "LIST nope/deeper",
    "LIST -la nope",
    "NLST nope",
    "NLST -a nope",
    "MLSD nope",
    "MLSD nope/deeper",
    "MLSD f.txt/deeper",
    "MLST nope",
    "MLST d/nope",
    "STAT nope",
    "SIZE nope",
    "MDTM nope",
    "RETR nope",
    "RETR d/nope",
    "DELE nope",
    "RMD nope",
    "XRMD nope",
    "RNFR nope",
    "MFMT 20200101000000 nope",
    "SITE CHMOD 644 nope",
    "MKD nope/deeper",
    "XMKD nope/deeper",
    "STOR nope/new.txt",
    "APPE nope/new.txt",
    "STOU nope/new",
]


def test_missing_path_answers_550(raw: RawClient) -> None:
    wrong = {}
    for command in MISSING:
        code, text = raw.send(command.encode())
        if code != 550:
            wrong[command] = (code, text)
        assert raw.send(b"NOOP")[0] == 200  # the session goes on
    assert wrong == {}


def test_rest_then_retr_of_missing_file_answers_550(raw: RawClient) -> None:
    assert raw.send(b"REST 5")[0] == 350
    assert raw.send(b"RETR nope")[0] == 550


def test_rnto_into_missing_directory_answers_550(raw: RawClient, served: Any) -> None:
    assert raw.send(b"RNFR f.txt")[0] == 350
    assert raw.send(b"RNTO nope/g.txt")[0] == 550
    assert (served[1] / "f.txt").exists()


def test_mlsd_of_a_file_answers_501(raw: RawClient) -> None:
    code, text = raw.send(b"MLSD f.txt")
    assert code == 501, text
    assert raw.send(b"NOOP")[0] == 200


class _RacingFS(AbstractedFS):
    """Another session creates ``racing`` just before this one's second look at it."""

    looks = 0

    def _look(self, path: str) -> None:
        if os.path.basename(path) == "racing":
            type(self).looks += 1
            if type(self).looks == 2:
                os.mkdir(path)

    def isdir(self, path: str) -> bool:
        self._look(path)
        return super().isdir(path)

    def lexists(self, path: str) -> bool:
        self._look(path)
        return super().lexists(path)


@pytest.fixture
def alice_on(
    settings: Any,
    tmp_path: Path,
    server_factory: Callable[..., RunningServer],
    make_account: Callable[..., Any],
) -> Iterator[Callable[[type], RawClient]]:
    """``start(fs_class)``: alice (home ``tmp_path / "alice"``) logged in on a server using it."""
    (tmp_path / "alice").mkdir()
    make_account("alice", home=tmp_path / "alice")
    clients: list[RawClient] = []

    def start(fs_class: type) -> RawClient:
        settings.FTPSERVER_FILESYSTEM = fs_class
        clients.append(RawClient(server_factory()))
        clients[-1].login("alice")
        return clients[-1]

    yield start
    for client in clients:
        client.close()


def test_mlsd_of_a_directory_created_meanwhile_never_answers_501(
    alice_on: Callable[[type], RawClient],
) -> None:
    """rclone creates a parent from one connection while another lists it.

    Whatever the timing, the listing is "not found" (550) or the directory's
    contents, never 501, which rclone takes for a fatal error.
    """
    _RacingFS.looks = 0
    client = alice_on(_RacingFS)
    code, text, listing = client.pasv_transfer(b"MLSD racing")
    assert code in (550, 226), text  # not found, or listed (empty) after all
    assert listing == b""
    assert _RacingFS.looks >= 1
    assert client.send(b"NOOP")[0] == 200


class _VanishingFS(AbstractedFS):
    """Another session removes ``vanishing`` just after this one found it a directory."""

    removed = False

    def isdir(self, path: str) -> bool:
        found = super().isdir(path)
        if found and os.path.basename(path) == "vanishing" and not type(self).removed:
            os.rmdir(path)
            type(self).removed = True
        return found


def test_mlsd_of_a_directory_removed_meanwhile_answers_550(
    alice_on: Callable[[type], RawClient], tmp_path: Path
) -> None:
    """rclone deletes folders from some connections while others list them.

    The directory was there when the kind was checked and is gone when it is
    listed: "not found" (550), never pyftpdlib's 501 from a second look.
    """
    (tmp_path / "alice" / "vanishing").mkdir()
    _VanishingFS.removed = False
    client = alice_on(_VanishingFS)
    code, text, _ = client.pasv_transfer(b"MLSD vanishing")
    assert code == 550, text
    assert _VanishingFS.removed
    assert client.send(b"NOOP")[0] == 200


def test_existing_paths_still_work(raw: RawClient) -> None:
    """The 550s above are about the path, not the command."""
    assert raw.pasv_transfer(b"MLSD d")[0] == 226
    assert raw.send(b"SIZE f.txt") == (213, b"10")
    assert raw.send(b"MLST f.txt")[0] == 250
    assert raw.send(b"CWD d")[0] == 250
    code, _, data = raw.pasv_transfer(b"RETR inner.txt")
    assert (code, data) == (226, b"inner")


def test_stou_into_existing_directory(raw: RawClient, served: Any) -> None:
    code, text, _ = raw.pasv_transfer(b"STOU d/new", b"unique")
    assert code == 226, text
    assert [p.read_bytes() for p in (served[1] / "d").glob("new*")] == [b"unique"]


# --- ls-style options


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("", ([], "")),
        ("sub", ([], "sub")),
        ("-la", (["-la"], "")),
        ("-a -l", (["-a", "-l"], "")),
        ("-la sub", (["-la"], "sub")),
        ("-la my dir", (["-la"], "my dir")),
        ("-1", (["-1"], "")),
        ("-- -x", ([], "-x")),
        ("-la -- -x", (["-la"], "-x")),
        ("--", ([], "")),
        ("-x.txt", ([], "-x.txt")),
        ("-my file", (["-my"], "file")),
        ("./-x", ([], "./-x")),
        ("-", ([], "-")),
    ],
)
def test_split_list_options(arg: str, expected: tuple[list[str], str]) -> None:
    assert split_list_options(arg) == expected


@pytest.fixture
def listing_ftp(served: tuple[RunningServer, Path]) -> Iterator[ftplib.FTP]:
    server, home = served
    (home / ".hidden").write_bytes(b"h")
    (home / "my dir").mkdir()
    (home / "my dir" / "in space.txt").write_bytes(b"s")
    (home / "-x").write_bytes(b"dash")
    (home / "-x.txt").write_bytes(b"dash txt")
    ftp = server.connect("alice", PASSWORD)
    yield ftp
    ftp.close()


def _list(ftp: ftplib.FTP, command: str) -> list[str]:
    lines: list[str] = []
    ftp.retrlines(command, lines.append)
    return lines


def _names(lines: list[str]) -> list[str]:
    return sorted(line.split(None, 8)[-1] for line in lines)


HOME_NAMES = sorted([".hidden", "-x", "-x.txt", "d", "f.txt", "my dir"])


def test_list_with_only_options_lists_the_current_directory(listing_ftp: ftplib.FTP) -> None:
    for options in ("-a", "-l", "-la", "-al", "-lA", "-a -l", "-1", "-R", "--"):
        assert _names(_list(listing_ftp, f"LIST {options}")) == HOME_NAMES, options
        assert sorted(listing_ftp.nlst(options)) == HOME_NAMES, options


def test_list_with_options_and_a_path(listing_ftp: ftplib.FTP) -> None:
    for command in ("LIST -la d", "LIST -a d", "LIST -l -a d", "LIST -la -- d"):
        assert _names(_list(listing_ftp, command)) == ["inner.txt"], command


def test_nlst_with_options_and_a_path(listing_ftp: ftplib.FTP) -> None:
    assert listing_ftp.nlst("-a d") == ["inner.txt"]
    assert listing_ftp.nlst("-a my dir") == ["in space.txt"]
    assert _names(_list(listing_ftp, "LIST -la my dir")) == ["in space.txt"]


def test_a_file_named_like_an_option_stays_reachable(listing_ftp: ftplib.FTP) -> None:
    for command in ("LIST ./-x", "LIST -- -x", "LIST /-x", "LIST -la ./-x"):
        lines = _list(listing_ftp, command)
        assert len(lines) == 1 and lines[0].endswith(" -x"), (command, lines)
    assert listing_ftp.nlst("-- -x") == ["-x"]
    # Not a pure option word: a path as it stands.
    assert _list(listing_ftp, "LIST -x.txt")[0].endswith(" -x.txt")
    out: list[bytes] = []
    listing_ftp.retrbinary("RETR -x", out.append)
    assert out == [b"dash"]


def test_stat_with_options(listing_ftp: ftplib.FTP) -> None:
    reply = listing_ftp.sendcmd("STAT -la")
    assert reply.startswith("213")
    assert "f.txt" in reply and ".hidden" in reply
    reply = listing_ftp.sendcmd("STAT -la d")
    assert "inner.txt" in reply and "f.txt" not in reply
    assert listing_ftp.sendcmd("STAT").startswith("211")  # still the session status


def test_options_do_not_hide_a_climb_above_home(listing_ftp: ftplib.FTP) -> None:
    for command in ("LIST -la ../..", "NLST -a ../../..", "STAT -la ../.."):
        with pytest.raises(ftplib.error_perm, match="^550"):
            listing_ftp.retrlines(command) if command[0] != "S" else listing_ftp.sendcmd(command)
    assert listing_ftp.voidcmd("NOOP").startswith("200")


# --- CWD and the process's working directory


def test_cwd_works_when_the_process_directory_is_gone(
    raw: RawClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyftpdlib's CWD starts with os.getcwd(), which fails here and drops the session."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)  # restored after the test
    gone.rmdir()
    assert raw.send(b"CWD d")[0] == 250
    assert raw.send(b"CWD nope")[0] == 550
    assert raw.send(b"CWD f.txt")[0] == 550
    assert raw.send(b"CWD /")[0] == 250


def test_concurrent_cwd_leaves_the_process_directory_alone(
    served: tuple[RunningServer, Path],
) -> None:
    """Sessions run on threads: a CWD must not move the whole process."""
    server, home = served
    for n in range(6):
        (home / f"dir{n}" / "sub").mkdir(parents=True)
    before = os.getcwd()
    errors: list[str] = []

    def session(n: int) -> None:
        client = RawClient(server, timeout=60)
        try:
            client.login("alice")
            for _ in range(40):
                for path in (f"/dir{n}", "sub", "/", f"dir{n}/sub"):
                    code, text = client.send(f"CWD {path}".encode())
                    if code != 250:
                        errors.append(f"CWD {path}: {code} {text!r}")
                    if os.getcwd() != before:
                        errors.append(f"process moved to {os.getcwd()}")
        finally:
            client.close()

    threads = [threading.Thread(target=session, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert os.getcwd() == before


# --- resume


def test_resume_both_ways(served: tuple[RunningServer, Path], recorder: SignalRecorder) -> None:
    """REST + RETR, REST + STOR and APPE give the whole file, and one signal each."""
    server, home = served
    data = bytes(range(256)) * 4000
    (home / "rest.bin").write_bytes(data[:300_000])
    (home / "appe.bin").write_bytes(data[:123_457])
    (home / "whole.bin").write_bytes(data)
    ftp = server.connect("alice")
    try:
        out = io.BytesIO()
        ftp.retrbinary("RETR whole.bin", out.write, rest=654_321)
        assert out.getvalue() == data[654_321:]
        assert ftp.size("rest.bin") == 300_000
        ftp.storbinary("STOR rest.bin", io.BytesIO(data[300_000:]), rest=300_000)
        ftp.storbinary("APPE appe.bin", io.BytesIO(data[123_457:]))
        with pytest.raises(ftplib.error_perm, match="^554"):  # past the end
            ftp.retrbinary("RETR whole.bin", out.write, rest=len(data) + 1)
    finally:
        ftp.quit()
    assert (home / "rest.bin").read_bytes() == data
    assert (home / "appe.bin").read_bytes() == data
    recorder.wait("ftp_file_received", 2)
    recorder.settle()
    assert sorted(event["ftp_path"] for event in recorder.of("ftp_file_received")) == [
        "/appe.bin",
        "/rest.bin",
    ]
    assert recorder.of("ftp_file_received_incomplete") == []
    assert [event["ftp_path"] for event in recorder.of("ftp_file_sent")] == ["/whole.bin"]
