"""StorageFS through a real server: Django storages served over FTP.

The server runs ``manage.py ftpserver``'s code path with
``FTPSERVER_FILESYSTEM`` pointing at ``StorageFS`` and ``STORAGES`` at a
``FileSystemStorage`` in a temporary directory, set before it starts.
Clients are ftplib and curl. Accounts' homes are prefixes in the storage.
"""

from __future__ import annotations

import contextlib
import errno
import ftplib
import hashlib
import io
import os
import shutil
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages

from django_ftpserver import filesystems
from django_ftpserver.filesystems import StorageFS
from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from django_ftpserver.storage.base import PseudoStat, home_root, storage_name

from .conftest import PASSWORD, RunningServer

STORAGE_FS = "django_ftpserver.filesystems.StorageFS"


class GenericStorageFS(StorageFS):
    """StorageFS without patches: the code path of storages without directories."""

    patches: dict[str, Any] = {}


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    root.mkdir()
    return root


def use_storage(settings: Any, backend: str, filesystem: Any = STORAGE_FS, **options: Any) -> None:
    """Point STORAGES["default"] and FTPSERVER_FILESYSTEM at ``backend``; call before starting."""
    settings.STORAGES = {
        "default": {"BACKEND": backend, "OPTIONS": options},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.FTPSERVER_FILESYSTEM = filesystem


@pytest.fixture
def fs_settings(settings: Any, storage_root: Path) -> Any:
    use_storage(settings, "django.core.files.storage.FileSystemStorage", location=str(storage_root))
    return settings


@pytest.fixture
def storage_account(transactional_db: None) -> Callable[..., FTPUserAccount]:
    """Make an account whose home is a storage prefix (not a directory on disk)."""

    def make(
        username: str = "alice", home: str | None = "alice", permission: str = "elradfmwMT"
    ) -> FTPUserAccount:
        user = get_user_model().objects.create_user(username, password=PASSWORD)
        group, _ = FTPUserGroup.objects.get_or_create(
            name=f"g-{permission}"[:30], defaults={"permission": permission}
        )
        return FTPUserAccount.objects.create(user=user, group=group, home_dir=home)

    return make


@pytest.fixture
def server(fs_settings: Any, server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


@pytest.fixture
def alice_home(storage_root: Path) -> Path:
    return storage_root / "alice"


@pytest.fixture
def client(
    server: RunningServer, storage_account: Callable[..., FTPUserAccount]
) -> Iterator[ftplib.FTP]:
    storage_account("alice", "alice")
    ftp = server.connect("alice")
    # pyftpdlib replies 230 before it builds the session's filesystem (which
    # creates the home): one more command waits for that.
    ftp.voidcmd("NOOP")
    yield ftp
    close(ftp)


def close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def upload(ftp: ftplib.FTP, name: str, data: bytes, command: str = "STOR") -> str:
    return ftp.storbinary(f"{command} {name}", io.BytesIO(data))


def download(ftp: ftplib.FTP, name: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    return out.getvalue()


def mlsd(ftp: ftplib.FTP, path: str = "") -> dict[str, dict[str, str]]:
    return dict(ftp.mlsd(path, facts=["type", "size"]))


def reply_code(excinfo: pytest.ExceptionInfo[Any]) -> str:
    return str(excinfo.value)[:3]


PAYLOAD = bytes(range(256)) * 40 + b"line\r\nline\n\r\x00end"


# --------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize(
    ("home", "root"),
    [
        ("alice", "/alice"),
        ("/alice/", "/alice"),
        ("a/b", "/a/b"),
        ("", "/"),
        ("/", "/"),
        (None, "/"),
        ("../../etc", "/etc"),
        ("a\\b", "/a/b"),
    ],
)
def test_home_root(home: str | None, root: str) -> None:
    assert home_root(home) == root


def test_storage_name() -> None:
    assert storage_name("/alice/a.txt") == "alice/a.txt"
    assert storage_name("/") == ""


def test_pseudostat_keeps_the_fields_of_1_0() -> None:
    old_style = PseudoStat(1, 2, 1, 0o100644, 0, 0, 0, 0)
    assert old_style.st_size == 1 and old_style.st_ctime == 0


# --------------------------------------------------------------------------
# FileSystemStorage


def test_upload_list_download(client: ftplib.FTP, alice_home: Path) -> None:
    assert upload(client, "data.bin", PAYLOAD).startswith("226")
    assert (alice_home / "data.bin").read_bytes() == PAYLOAD

    assert client.nlst() == ["data.bin"]
    lines: list[str] = []
    client.retrlines("LIST", lines.append)
    assert len(lines) == 1 and lines[0].startswith("-") and lines[0].endswith(" data.bin")
    assert f" {len(PAYLOAD)} " in lines[0]
    assert mlsd(client) == {"data.bin": {"type": "file", "size": str(len(PAYLOAD))}}

    assert download(client, "data.bin") == PAYLOAD


def test_home_is_created_and_only_it_is_listed(
    server: RunningServer, storage_account: Callable[..., FTPUserAccount], storage_root: Path
) -> None:
    (storage_root / "elsewhere.txt").write_bytes(b"not alice's")
    storage_account("alice", "alice")
    ftp = server.connect("alice")
    try:
        assert ftp.nlst() == []
        assert (storage_root / "alice").is_dir()
        assert ftp.pwd() == "/"
    finally:
        close(ftp)


def test_slash_home_serves_the_storage_root(
    server: RunningServer,
    storage_account: Callable[..., FTPUserAccount],
    storage_root: Path,
) -> None:
    # An empty home_dir means the default home in FTPUserAccount; "/" is the root.
    (storage_root / "top.txt").write_bytes(b"top")
    (storage_root / "dir").mkdir()
    storage_account("root", "/")
    ftp = server.connect("root")
    try:
        assert sorted(ftp.nlst()) == ["dir", "top.txt"]
        assert download(ftp, "/top.txt") == b"top"
        upload(ftp, "dir/new.txt", b"new")
        assert (storage_root / "dir" / "new.txt").read_bytes() == b"new"
    finally:
        close(ftp)


def test_absolute_home_inside_the_storage_location(
    server: RunningServer, storage_account: Callable[..., FTPUserAccount], storage_root: Path
) -> None:
    storage_account("carol", str(storage_root / "homes" / "carol"))
    ftp = server.connect("carol")
    try:
        upload(ftp, "c.txt", b"carol")
    finally:
        close(ftp)
    assert (storage_root / "homes" / "carol" / "c.txt").read_bytes() == b"carol"


def test_size_and_mdtm(client: ftplib.FTP, alice_home: Path) -> None:
    upload(client, "f.txt", b"12345")
    os.utime(alice_home / "f.txt", (1_600_000_000, 1_600_000_000))
    client.voidcmd("TYPE I")
    assert client.size("f.txt") == 5
    assert client.sendcmd("MDTM f.txt") == "213 20200913122640"
    with pytest.raises(ftplib.error_perm) as excinfo:
        client.size("missing.txt")
    assert reply_code(excinfo) == "550"


def test_mfmt_sets_the_time(client: ftplib.FTP, alice_home: Path) -> None:
    upload(client, "f.txt", b"x")
    assert "MFMT" in client.sendcmd("FEAT").split()
    assert client.sendcmd("MFMT 20200913122640 f.txt").startswith("213")
    assert os.path.getmtime(alice_home / "f.txt") == 1_600_000_000


def test_directories(client: ftplib.FTP, alice_home: Path, recorder: Any) -> None:
    assert client.mkd("sub") == "/sub"
    assert (alice_home / "sub").is_dir()
    created = recorder.wait("ftp_directory_created")
    assert created[0]["path"] == "/alice/sub"
    assert created[0]["ftp_path"] == "/sub"
    with pytest.raises(ftplib.error_perm):
        client.mkd("sub")

    client.cwd("sub")
    assert client.pwd() == "/sub"
    upload(client, "in.txt", b"inside")
    assert (alice_home / "sub" / "in.txt").read_bytes() == b"inside"
    assert client.sendcmd("CDUP").startswith("250")
    assert client.pwd() == "/"
    assert mlsd(client)["sub"]["type"] == "dir"

    with pytest.raises(ftplib.error_perm) as excinfo:
        client.rmd("sub")
    assert reply_code(excinfo) == "550"
    assert (alice_home / "sub" / "in.txt").exists()

    client.delete("sub/in.txt")
    client.rmd("sub")
    assert not (alice_home / "sub").exists()
    deleted = recorder.wait("ftp_directory_deleted")
    assert deleted[0]["path"] == "/alice/sub"
    assert deleted[0]["ftp_path"] == "/sub"

    for command in ("CWD missing", "CWD f.txt", "MKD no/such/parent", "RMD missing"):
        if command.endswith("f.txt"):
            upload(client, "f.txt", b"x")
        with pytest.raises(ftplib.error_perm) as excinfo:
            client.sendcmd(command)
        assert reply_code(excinfo) == "550", command


def test_rename(client: ftplib.FTP, alice_home: Path, recorder: Any) -> None:
    upload(client, "old.txt", b"content")
    client.mkd("dir")
    client.rename("old.txt", "dir/new.txt")
    assert not (alice_home / "old.txt").exists()
    assert (alice_home / "dir" / "new.txt").read_bytes() == b"content"
    renamed = recorder.wait("ftp_file_renamed")[0]
    assert renamed["path_from"] == "/alice/old.txt"
    assert renamed["path_to"] == "/alice/dir/new.txt"
    assert renamed["ftp_path_from"] == "/old.txt"
    assert renamed["ftp_path_to"] == "/dir/new.txt"

    client.rename("dir", "moved")
    assert (alice_home / "moved" / "new.txt").read_bytes() == b"content"

    with pytest.raises(ftplib.error_perm) as excinfo:
        client.rename("missing", "other")
    assert reply_code(excinfo) == "550"
    with pytest.raises(ftplib.error_perm) as excinfo:
        client.rename("moved/new.txt", "no/such/dir.txt")
    assert reply_code(excinfo) == "550"
    assert (alice_home / "moved" / "new.txt").exists()


def test_delete(client: ftplib.FTP, alice_home: Path, recorder: Any) -> None:
    upload(client, "gone.txt", b"x")
    client.mkd("keep")
    client.delete("gone.txt")
    assert not (alice_home / "gone.txt").exists()
    deleted = recorder.wait("ftp_file_deleted")
    assert deleted[0]["path"] == "/alice/gone.txt"
    assert deleted[0]["ftp_path"] == "/gone.txt"

    for name in ("gone.txt", "keep"):  # missing file; a directory is not a file
        with pytest.raises(ftplib.error_perm) as excinfo:
            client.delete(name)
        assert reply_code(excinfo) == "550"
    assert (alice_home / "keep").is_dir()
    recorder.settle()
    assert len(recorder.of("ftp_file_deleted")) == 1


def test_transfer_signals_carry_fs_and_client_paths(
    client: ftplib.FTP, alice_home: Path, recorder: Any
) -> None:
    client.mkd("d")
    upload(client, "d/up.txt", b"signal")
    received = recorder.wait("ftp_file_received")[0]
    assert received["path"] == "/alice/d/up.txt"
    assert received["ftp_path"] == "/d/up.txt"
    assert received["username"] == "alice"

    client.cwd("d")
    assert download(client, "up.txt") == b"signal"
    sent = recorder.wait("ftp_file_sent")[0]
    assert sent["path"] == "/alice/d/up.txt"
    assert sent["ftp_path"] == "/d/up.txt"


def test_append_and_resume(client: ftplib.FTP, alice_home: Path) -> None:
    upload(client, "log.txt", b"one\n")
    upload(client, "log.txt", b"two\n", command="APPE")
    assert (alice_home / "log.txt").read_bytes() == b"one\ntwo\n"

    client.voidcmd("TYPE I")
    client.storbinary("STOR log.txt", io.BytesIO(b"TWO\n"), rest=4)
    assert (alice_home / "log.txt").read_bytes() == b"one\nTWO\n"

    out = io.BytesIO()
    client.retrbinary("RETR log.txt", out.write, rest=4)
    assert out.getvalue() == b"TWO\n"


def test_ascii_mode(client: ftplib.FTP, alice_home: Path) -> None:
    client.storlines("STOR text.txt", io.BytesIO(b"one\r\ntwo\r\n"))
    assert (alice_home / "text.txt").read_bytes() == b"one\ntwo\n"
    lines: list[str] = []
    client.retrlines("RETR text.txt", lines.append)
    assert lines == ["one", "two"]


def test_stor_overwrites_and_fails_cleanly(client: ftplib.FTP, alice_home: Path) -> None:
    upload(client, "f.txt", b"first version")
    upload(client, "f.txt", b"second")
    assert (alice_home / "f.txt").read_bytes() == b"second"
    assert sorted(p.name for p in alice_home.iterdir()) == ["f.txt"]

    client.mkd("adir")
    for target in ("no/such/dir.txt", "adir"):
        with pytest.raises(ftplib.error_perm) as excinfo:
            upload(client, target, b"x")
        assert reply_code(excinfo) == "550", target
    assert client.voidcmd("NOOP").startswith("200")


def test_stou(client: ftplib.FTP, alice_home: Path) -> None:
    reply = client.storbinary("STOU", io.BytesIO(b"unique"))
    assert reply.startswith("226")
    files = list(alice_home.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == b"unique"


def test_special_files_are_not_served(client: ftplib.FTP, alice_home: Path) -> None:
    os.mkfifo(alice_home / "fifo")
    assert client.nlst() == []
    for command in ("RETR fifo", "STOR fifo"):
        with pytest.raises(ftplib.error_perm) as excinfo:
            if command.startswith("RETR"):
                download(client, "fifo")
            else:
                upload(client, "fifo", b"x")
        assert reply_code(excinfo) == "550", command


def test_sendfile_is_used_for_files_on_disk(
    client: ftplib.FTP, alice_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_sendfile = os.sendfile

    def counting_sendfile(*args: Any) -> int:
        calls.append(args)
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    data = os.urandom(300_000)
    (alice_home / "big.bin").write_bytes(data)
    assert download(client, "big.bin") == data
    assert calls, "sendfile was not used for a file on disk"


class ShoutingFile(File):
    """A file whose content is transformed on read, like a decrypting storage's."""

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size).upper()


class ShoutingStorage(FileSystemStorage):
    def _open(self, name: str, mode: str = "rb") -> File:
        return ShoutingFile(open(self.path(name), mode))  # noqa: SIM115


def test_sendfile_is_not_used_when_the_storage_transforms_reads(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
) -> None:
    use_storage(settings, f"{__name__}.ShoutingStorage", location=str(storage_root))
    server = server_factory()
    storage_account("alice", "alice")
    (storage_root / "alice").mkdir()
    (storage_root / "alice" / "quiet.txt").write_bytes(b"quiet words" * 1000)
    ftp = server.connect("alice")
    try:
        assert download(ftp, "quiet.txt") == b"QUIET WORDS" * 1000
    finally:
        close(ftp)


# --------------------------------------------------------------------------
# Traversal: nothing outside the home is reachable


@pytest.fixture
def outside(storage_root: Path, tmp_path: Path) -> dict[str, Path]:
    """Files beside alice's home, in the storage and outside it."""
    paths = {
        "storage_secret": storage_root / "secret.txt",
        "bob_file": storage_root / "bob" / "x",
        "disk_secret": tmp_path / "outside.txt",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"secret")
    return paths


TRAVERSAL_PATHS = [
    "../secret.txt",
    "../../outside.txt",
    "../bob/x",
    "/../secret.txt",
    "/secret.txt",
    "../../storage/secret.txt",
    "//../secret.txt",
    "sub/../../secret.txt",
]


def snapshot_outside(tmp_path: Path, home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``tmp_path`` except the home's, with content and mtime."""
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_relative_to(home)
    }


@pytest.mark.parametrize("path", TRAVERSAL_PATHS)
def test_traversal_is_refused(
    client: ftplib.FTP, outside: dict[str, Path], alice_home: Path, tmp_path: Path, path: str
) -> None:
    before = snapshot_outside(tmp_path, alice_home)
    assert len(before) == len(outside)
    for action in ("RETR", "DELE", "SIZE", "MDTM", "RNFR", "RMD", "CWD"):
        with pytest.raises(ftplib.error_perm) as excinfo:
            if action == "RETR":
                download(client, path)
            else:
                client.sendcmd(f"{action} {path}")
        assert reply_code(excinfo) == "550", (action, path)
    # A write lands inside the home under the normalised name, or fails.
    with contextlib.suppress(ftplib.error_perm):
        upload(client, path, b"overwritten?")
    with contextlib.suppress(ftplib.error_perm):
        client.mkd(path + ".d")
    assert snapshot_outside(tmp_path, alice_home) == before
    assert client.pwd() == "/"


def test_cwd_cannot_climb_out_of_the_home(
    client: ftplib.FTP, outside: dict[str, Path], alice_home: Path
) -> None:
    upload(client, "mine.txt", b"mine")
    # Climbing above the home is refused outright (see tests/test_hostile_input.py).
    for path in ("../..", "..", "/..", "../../.."):
        with pytest.raises(ftplib.error_perm) as excinfo:
            client.cwd(path)
        assert reply_code(excinfo) == "550"
        assert client.pwd() == "/"
        assert client.nlst() == ["mine.txt"]
    for path in ("../bob", "/bob", "../../storage"):
        with pytest.raises(ftplib.error_perm) as excinfo:
            client.cwd(path)
        assert reply_code(excinfo) == "550"
        assert client.pwd() == "/"
    with pytest.raises(ftplib.error_perm):
        client.nlst("../bob")


def test_symlinks_out_of_the_home_are_refused(
    client: ftplib.FTP, outside: dict[str, Path], alice_home: Path, storage_root: Path
) -> None:
    (alice_home / "to_bob").symlink_to(storage_root / "bob")
    (alice_home / "to_disk").symlink_to(outside["disk_secret"])
    (alice_home / "mine.txt").write_bytes(b"mine")
    (alice_home / "inner").symlink_to(alice_home / "mine.txt")
    assert sorted(client.nlst()) == ["inner", "mine.txt"]
    assert download(client, "inner") == b"mine"
    for command in ("RETR to_disk", "RETR to_bob/x", "CWD to_bob", "DELE to_disk"):
        with pytest.raises(ftplib.error_perm) as excinfo:
            if command.startswith("RETR"):
                download(client, command.split()[1])
            else:
                client.sendcmd(command)
        assert reply_code(excinfo) == "550", command
        assert "outside" in str(excinfo.value), command
    assert outside["disk_secret"].read_bytes() == b"secret"
    assert outside["bob_file"].read_bytes() == b"secret"


# --------------------------------------------------------------------------
# Subclasses and other storages


def test_subclass_with_storage_class(
    settings: Any,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
    tmp_path: Path,
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    use_storage(settings, "django.core.files.storage.InMemoryStorage")
    settings.FTPSERVER_FILESYSTEM = type(
        "OtherStorageFS",
        (StorageFS,),
        {"storage_class": lambda: FileSystemStorage(location=str(other))},
    )
    server = server_factory()
    storage_account("alice", "alice")
    ftp = server.connect("alice")
    try:
        upload(ftp, "o.txt", b"other")
        assert download(ftp, "o.txt") == b"other"
    finally:
        close(ftp)
    assert (other / "alice" / "o.txt").read_bytes() == b"other"
    assert not storages["default"].exists("alice/o.txt")


def test_storage_alias(
    settings: Any,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
    tmp_path: Path,
) -> None:
    use_storage(settings, "django.core.files.storage.InMemoryStorage")
    settings.STORAGES = {
        **settings.STORAGES,
        "ftp": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "ftp")},
        },
    }
    settings.FTPSERVER_FILESYSTEM = type("FtpAliasFS", (StorageFS,), {"storage_alias": "ftp"})
    server = server_factory()
    storage_account("alice", "/")
    ftp = server.connect("alice")
    try:
        upload(ftp, "a.txt", b"alias")
    finally:
        close(ftp)
    assert (tmp_path / "ftp" / "a.txt").read_bytes() == b"alias"


def test_filesystem_storage_subclass_gets_the_patch(storage_root: Path) -> None:
    class MediaStorage(FileSystemStorage):
        pass

    class Channel:
        data_channel = None

    fs = type("FS", (StorageFS,), {"storage_class": lambda: MediaStorage(str(storage_root))})(
        "alice", Channel()
    )
    assert fs._patch is filesystems.FileSystemStoragePatch
    assert fs.root == "/alice"


@pytest.fixture
def memory_server(
    settings: Any,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
) -> RunningServer:
    use_storage(settings, "django.core.files.storage.InMemoryStorage", location="/srv/ftp")
    server = server_factory()
    storage_account("alice", "alice")
    return server


def test_in_memory_storage(
    memory_server: RunningServer, recorder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_sendfile = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a) or real_sendfile(*a))
    storage = storages["default"]
    ftp = memory_server.connect("alice")
    try:
        upload(ftp, "a.bin", PAYLOAD)
        assert storage.open("alice/a.bin").read() == PAYLOAD
        received = recorder.wait("ftp_file_received")[0]
        assert (received["path"], received["ftp_path"]) == ("/alice/a.bin", "/a.bin")
        assert download(ftp, "a.bin") == PAYLOAD
        assert not calls, "sendfile used on a file that is not on disk"
        ftp.voidcmd("TYPE I")
        assert ftp.size("a.bin") == len(PAYLOAD)
        assert ftp.sendcmd("MDTM a.bin").startswith("213 ")

        ftp.mkd("d")
        ftp.cwd("d")
        upload(ftp, "b.txt", b"bee")
        ftp.cwd("/")
        assert mlsd(ftp) == {
            "a.bin": {"type": "file", "size": str(len(PAYLOAD))},
            "d": {"type": "dir", "size": "0"},
        }
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert [line[0] for line in lines] == ["-", "d"]

        upload(ftp, "a.bin", b"+more", command="APPE")
        assert storage.open("alice/a.bin").read() == PAYLOAD + b"+more"

        ftp.rename("d/b.txt", "c.txt")
        assert storage.open("alice/c.txt").read() == b"bee"
        assert not storage.exists("alice/d/b.txt")

        upload(ftp, "empty.txt", b"")
        assert download(ftp, "empty.txt") == b""
        ftp.delete("empty.txt")

        ftp.rmd("d")
        assert ftp.nlst() == ["a.bin", "c.txt"]
        ftp.delete("c.txt")
        assert not storage.exists("alice/c.txt")
        with pytest.raises(ftplib.error_perm) as excinfo:
            ftp.sendcmd("SITE CHMOD 644 a.bin")
        assert reply_code(excinfo) == "550"
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        close(ftp)


def test_session_directories_on_a_storage_without_directories(
    memory_server: RunningServer,
) -> None:
    ftp = memory_server.connect("alice")
    try:
        ftp.mkd("empty")
        ftp.mkd("empty/deeper")
        assert ftp.nlst() == ["empty"]
        ftp.cwd("empty/deeper")
        upload(ftp, "f.txt", b"f")
        ftp.cwd("/")
        ftp.mkd("later")
        ftp.rename("later", "renamed")
        assert sorted(ftp.nlst()) == ["empty", "renamed"]
        ftp.rmd("renamed")
        with pytest.raises(ftplib.error_perm) as excinfo:
            ftp.rename("empty", "moved")  # has a stored file: would mean copying a tree
        assert reply_code(excinfo) == "550"
    finally:
        close(ftp)
    assert storages["default"].open("alice/empty/deeper/f.txt").read() == b"f"


@pytest.fixture
def generic_server(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
) -> RunningServer:
    """FileSystemStorage served by the generic code: spooled uploads, copy renames."""
    use_storage(
        settings,
        "django.core.files.storage.FileSystemStorage",
        filesystem=GenericStorageFS,
        location=str(storage_root),
    )
    server = server_factory()
    storage_account("alice", "alice")
    (storage_root / "alice").mkdir()
    return server


def test_generic_code_on_disk(generic_server: RunningServer, alice_home: Path) -> None:
    ftp = generic_server.connect("alice")
    try:
        upload(ftp, "f.txt", b"one")
        upload(ftp, "f.txt", b"two!")  # Storage.save() would pick another name
        assert sorted(p.name for p in alice_home.iterdir()) == ["f.txt"]
        assert (alice_home / "f.txt").read_bytes() == b"two!"
        ftp.voidcmd("TYPE I")
        ftp.storbinary("STOR f.txt", io.BytesIO(b"O"), rest=2)
        assert (alice_home / "f.txt").read_bytes() == b"twO!"
        upload(ftp, "f.txt", b"?", command="APPE")
        assert (alice_home / "f.txt").read_bytes() == b"twO!?"
        ftp.rename("f.txt", "g.txt")
        assert sorted(p.name for p in alice_home.iterdir()) == ["g.txt"]
        upload(ftp, "empty.txt", b"")
        assert (alice_home / "empty.txt").read_bytes() == b""
        for command in (
            "DELE missing",
            "RETR missing",
            "RNFR missing",
            "MFMT 20200101000000 g.txt",
        ):
            with pytest.raises(ftplib.error_perm) as excinfo:
                ftp.sendcmd(command)
            assert reply_code(excinfo) == "550", command
    finally:
        close(ftp)


class RefusingStorage(FileSystemStorage):
    """Stores nothing: every save fails, like a full or read-only bucket."""

    def _save(self, name: str, content: Any) -> str:
        raise RuntimeError("bucket is read-only")


class NoListingStorage(FileSystemStorage):
    def listdir(self, path: str) -> Any:
        raise NotImplementedError("no listing")


def test_failed_save_is_a_451_and_keeps_the_old_file(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
    recorder: Any,
) -> None:
    use_storage(
        settings,
        f"{__name__}.RefusingStorage",
        filesystem=GenericStorageFS,
        location=str(storage_root),
    )
    (storage_root / "alice").mkdir()
    (storage_root / "alice" / "keep.txt").write_bytes(b"old")
    server = server_factory()
    storage_account("alice", "alice")
    ftp = server.connect("alice")
    try:
        with pytest.raises(ftplib.error_temp) as excinfo:
            upload(ftp, "new.txt", b"new")
        assert reply_code(excinfo) == "451"
        incomplete = recorder.wait("ftp_file_received_incomplete")[0]
        assert incomplete["ftp_path"] == "/new.txt"
        assert not recorder.of("ftp_file_received")
        assert ftp.voidcmd("NOOP").startswith("200")
        assert download(ftp, "keep.txt") == b"old"
    finally:
        close(ftp)
    assert sorted(p.name for p in (storage_root / "alice").iterdir()) == ["keep.txt"]


class DiskFullFile(File):
    def close(self) -> None:
        super().close()
        raise OSError(errno.ENOSPC, "No space left on device")


class DiskFullStorage(FileSystemStorage):
    """Writes fail when the file is closed, as a full disk shows on the last flush."""

    def _open(self, name: str, mode: str = "rb") -> File:
        file = super()._open(name, mode)
        return file if mode == "rb" else DiskFullFile(file.file)


def test_failed_close_is_a_451(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
    recorder: Any,
) -> None:
    use_storage(settings, f"{__name__}.DiskFullStorage", location=str(storage_root))
    server = server_factory()
    storage_account("alice", "alice")
    ftp = server.connect("alice")
    try:
        with pytest.raises(ftplib.error_temp) as excinfo:
            upload(ftp, "new.txt", b"new")
        assert str(excinfo.value).startswith("451 No space left on device")
        assert recorder.wait("ftp_file_received_incomplete")[0]["ftp_path"] == "/new.txt"
        assert not recorder.of("ftp_file_received")
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        close(ftp)


class DeleteRecordingStorage(FileSystemStorage):
    deleted: list[str] = []

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        super().delete(name)


def test_generic_overwrite_where_the_storage_allows_it(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
) -> None:
    use_storage(
        settings,
        f"{__name__}.DeleteRecordingStorage",
        filesystem=GenericStorageFS,
        location=str(storage_root),
        allow_overwrite=True,
    )
    DeleteRecordingStorage.deleted = []
    server = server_factory()
    storage_account("alice", "/")
    ftp = server.connect("alice")
    try:
        upload(ftp, "f.txt", b"one")
        upload(ftp, "f.txt", b"two")
    finally:
        close(ftp)
    assert sorted(p.name for p in storage_root.iterdir()) == ["f.txt"]
    assert (storage_root / "f.txt").read_bytes() == b"two"
    # Replaced in one save(): never missing in between.
    assert DeleteRecordingStorage.deleted == []


def test_unsupported_operations_get_a_reply(
    settings: Any,
    storage_root: Path,
    server_factory: Callable[..., RunningServer],
    storage_account: Callable[..., FTPUserAccount],
) -> None:
    use_storage(
        settings,
        f"{__name__}.NoListingStorage",
        filesystem=GenericStorageFS,
        location=str(storage_root),
    )
    server = server_factory()
    storage_account("alice", "/")
    ftp = server.connect("alice")
    try:
        for command in ("LIST", "NLST", "MLSD"):
            with pytest.raises(ftplib.error_perm) as excinfo:
                ftp.retrlines(command, lambda line: None)
            assert reply_code(excinfo) in ("501", "550"), command
            assert "Traceback" not in str(excinfo.value)
        for command in ("SIZE x", "CWD x", "DELE x", "RMD x"):
            with pytest.raises(ftplib.error_perm):
                ftp.sendcmd(command)
        assert ftp.voidcmd("NOOP").startswith("200")
    finally:
        close(ftp)


# --------------------------------------------------------------------------
# Large transfers and other clients


def _file_of(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 1 << 20))
            out.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_ten_megabytes_round_trip(client: ftplib.FTP, alice_home: Path, tmp_path: Path) -> None:
    size = 10 * 1024 * 1024
    source = tmp_path / "ten.bin"
    expected = _file_of(source, size)
    started = time.perf_counter()
    with source.open("rb") as data:
        client.storbinary("STOR ten.bin", data, blocksize=65536)
    uploaded = time.perf_counter()
    digest = hashlib.sha256()
    client.retrbinary("RETR ten.bin", digest.update, blocksize=65536)
    downloaded = time.perf_counter()
    assert hashlib.sha256((alice_home / "ten.bin").read_bytes()).hexdigest() == expected
    assert digest.hexdigest() == expected
    print(
        f"10 MiB via StorageFS: STOR {size / (uploaded - started) / 1e6:.0f} MB/s, "
        f"RETR {size / (downloaded - uploaded) / 1e6:.0f} MB/s"
    )


@pytest.mark.slow
def test_spooled_upload_is_not_held_in_memory(
    generic_server: RunningServer, alice_home: Path, tmp_path: Path
) -> None:
    size = 10 * 1024 * 1024
    source = tmp_path / "ten.bin"
    expected = _file_of(source, size)
    ftp = generic_server.connect("alice")
    tracemalloc.start()
    try:
        with source.open("rb") as data:
            ftp.storbinary("STOR ten.bin", data, blocksize=65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        close(ftp)
    assert hashlib.sha256((alice_home / "ten.bin").read_bytes()).hexdigest() == expected
    assert peak < size / 3, f"peak {peak} bytes traced for a {size}-byte upload"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_upload_and_download(
    client: ftplib.FTP, server: RunningServer, alice_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "curl.bin"
    source.write_bytes(PAYLOAD)
    url = f"ftp://alice:{PASSWORD}@{server.host}:{server.port}/"
    subprocess.run(["curl", "-s", "-S", "-T", str(source), url], check=True, timeout=30)
    assert (alice_home / "curl.bin").read_bytes() == PAYLOAD
    fetched = subprocess.run(
        ["curl", "-s", "-S", url + "curl.bin"], check=True, capture_output=True, timeout=30
    )
    assert fetched.stdout == PAYLOAD
    listing = subprocess.run(["curl", "-s", "-S", url], check=True, capture_output=True, timeout=30)
    assert listing.stdout.decode().rstrip().endswith("curl.bin")


def test_backslashes_are_refused_where_the_storage_treats_them_as_separators(
    settings: Any, storage_root: Path
) -> None:
    """django-storages' names turn "\\" into "/" after normalising: "a/..\\..\\b" is "b"."""
    use_storage(settings, "django.core.files.storage.InMemoryStorage")
    generic = GenericStorageFS("alice", None)
    assert generic.validpath("/alice/plain.txt")
    assert not generic.validpath("/alice/..\\..\\top.txt")
    use_storage(settings, "django.core.files.storage.FileSystemStorage", location=str(storage_root))
    on_disk = StorageFS("alice", None)
    assert on_disk.validpath("/alice/back\\slash.txt") is (os.sep == "/")
