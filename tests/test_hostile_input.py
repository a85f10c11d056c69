"""Hostile input against a real server: every attempt gets a 5xx, nothing outside
the home is read or written, and the server keeps serving.

A raw socket client sends what ftplib refuses to (NUL bytes, invalid UTF-8,
over-long lines); a hypothesis test throws random path strings at a few
path commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import RawClient, RunningServer

# The same session on the local disk and on S3 (StorageFS on a moto_server).
pytestmark = pytest.mark.storages("disk", "s3")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the home with a secret that must stay unread and untouched."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_bytes(b"top secret")
    return directory


@pytest.fixture
def raw(ftp_server, account, home, outside):
    (home / "inside.txt").write_bytes(b"inside")
    client = RawClient(ftp_server)
    client.login(account.user.username)
    yield client
    client.close()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(directory.rglob("*"))
    }


def assert_alive(server: RunningServer, account) -> None:
    """The server still serves a fresh client."""
    client = server.connect(account.user.username)
    assert client.voidcmd("NOOP").startswith("200")
    client.quit()


# --- parent and absolute paths


@pytest.mark.parametrize(
    "command",
    [
        b"RETR ../outside/secret.txt",
        b"RETR ../../outside/secret.txt",
        b"RETR /../outside/secret.txt",
        b"RETR ../../../../../../etc/passwd",
        b"RETR /etc/passwd",
        b"RETR //etc/passwd",
        b"RETR ..\\outside\\secret.txt",
        b"SIZE ../outside/secret.txt",
        b"MDTM ../outside/secret.txt",
        b"DELE ../outside/secret.txt",
        b"RNFR ../outside/secret.txt",
        b"MKD ../outside/new",
        b"RMD ../outside",
        b"SITE CHMOD 777 ../outside/secret.txt",
        b"MLST ../outside/secret.txt",
        b"STAT ../outside",
    ],
)
def test_parent_and_absolute_paths_stay_inside(raw, outside, command):
    before = snapshot(outside)
    code, text = raw.send(command)
    assert 500 <= code < 600, (command, code, text)
    assert b"top secret" not in text
    assert snapshot(outside) == before
    assert raw.send(b"NOOP")[0] == 200


def test_cwd_above_the_home_is_refused(raw, home):
    for command in (b"CWD /..", b"CWD ../..", b"CDUP", b"CWD /../../etc", b"XCUP"):
        code, _ = raw.send(command)
        assert code == 550, command
        assert raw.send(b"PWD") == (257, b'"/" is the current directory.')
    assert raw.send(b"MKD sub")[0] == 257
    assert raw.send(b"CWD sub")[0] == 250
    assert raw.send(b"CDUP")[0] == 250  # going up inside the home is fine
    assert raw.send(b"CWD sub/..")[0] == 250
    code, _, listing = raw.pasv_transfer(b"NLST")
    assert code == 226
    assert sorted(listing.split()) == [b"inside.txt", b"sub"]


@pytest.mark.parametrize(
    "target", [b"../escape.txt", b"/../escape.txt", b"../outside/x.txt", b"sub/../../escape.txt"]
)
def test_upload_cannot_escape(raw, home, outside, target):
    before = snapshot(outside)
    code, text, _ = raw.pasv_transfer(b"STOR " + target, b"escaped?")
    assert code == 550, text
    assert snapshot(outside) == before
    assert not (home.parent / "escape.txt").exists()
    assert not (home / "escape.txt").exists()


def test_list_outside_is_refused(raw, outside):
    for command in (b"LIST ../outside", b"NLST /../outside", b"MLSD ../outside"):
        code, text, data = raw.pasv_transfer(command)
        assert 500 <= code < 600 or b"secret" not in data, (command, code, text)
        assert b"secret.txt" not in data


# --- a symlink inside the home that points out


@pytest.fixture
def escape_link(home: Path, outside: Path) -> Path:
    link = home / "escape"
    link.symlink_to(outside, target_is_directory=True)
    (home / "secret-link.txt").symlink_to(outside / "secret.txt")
    return link


@pytest.mark.storages("disk")  # symlinks
def test_symlink_out_of_the_home_is_refused(raw, escape_link, outside):
    before = snapshot(outside)
    for command in (
        b"RETR escape/secret.txt",
        b"RETR secret-link.txt",
        b"SIZE secret-link.txt",
        b"CWD escape",
        b"DELE escape/secret.txt",
        b"DELE secret-link.txt",
        b"MKD escape/newdir",
        b"RNFR escape/secret.txt",
        b"MLST escape/secret.txt",
    ):
        code, text = raw.send(command)
        assert 500 <= code < 600, (command, code, text)
        assert b"top secret" not in text
    for command in (b"STOR escape/planted.txt", b"APPE secret-link.txt", b"LIST escape"):
        code, text, data = raw.pasv_transfer(command)
        assert 500 <= code < 600, (command, code, text)
        assert b"secret.txt" not in data
    code, text, data = raw.pasv_transfer(b"RETR secret-link.txt")
    assert 500 <= code < 600 and data == b""
    assert snapshot(outside) == before
    assert raw.send(b"NOOP")[0] == 200


# --- bytes that are not a command


def test_nul_byte_is_refused(raw, home, outside):
    (home / "a").write_bytes(b"prefix file")
    for command in (b"RETR inside.txt\x00.jpg", b"DELE a\x00b", b"CWD \x00", b"NOOP\x00"):
        code, _ = raw.send(command)
        assert code == 501, command
    assert (home / "a").exists() and (home / "inside.txt").exists()
    assert raw.send(b"NOOP")[0] == 200


def test_invalid_utf8_is_refused(raw, home):
    before = snapshot(home)
    for command in (b"MKD \xff\xfe", b"DELE inside\xc3.txt", b"CWD \xed\xa0\x80", b"\xff\xfe"):
        code, _ = raw.send(command)
        assert code == 501, command
    code, text, _ = raw.pasv_transfer(b"STOR bad\xe9name.txt")
    assert code == 501, text
    assert snapshot(home) == before
    assert raw.send(b"NOOP")[0] == 200


def test_valid_utf8_names_still_work(raw, home):
    code, _ = raw.send("MKD déjà vu ✓".encode())
    assert code == 257
    assert (home / "déjà vu ✓").is_dir()


def test_line_break_inside_a_command_is_refused(raw, home):
    code, _ = raw.send(b"DELE inside.txt\nDELE other")
    assert code == 501
    code, _ = raw.send(b"MKD a\rb")
    assert code == 501
    assert sorted(p.name for p in home.iterdir()) == ["inside.txt"]


def test_over_long_line_is_refused_and_not_executed(raw, home):
    code, _ = raw.send(b"NOOP " + b"x" * 10_000)
    assert code == 500
    # The tail of an over-long line must not run as a command of its own.
    code, _ = raw.send(b"x" * 3000 + b"DELE inside.txt")
    assert code == 500
    assert raw.send(b"NOOP")[0] == 200
    assert (home / "inside.txt").exists()


@pytest.mark.parametrize("length", [300, 1000, 2000, 5000])
def test_over_long_names(raw, home, length):
    name = b"n" * length
    for command in (b"MKD " + name, b"RETR " + name, b"CWD " + name, b"DELE " + name):
        code, _ = raw.send(command)
        assert 500 <= code < 600, (command[:10], length, code)
    code, _, _ = raw.pasv_transfer(b"STOR " + name)
    assert 500 <= code < 600
    assert list(home.iterdir()) == [home / "inside.txt"]
    assert raw.send(b"NOOP")[0] == 200


def test_garbage_before_login(ftp_server, account):
    client = RawClient(ftp_server)
    for command in (
        b"\x00\x01\x02",
        b"\xff" * 100,
        b"RETR /etc/passwd",
        b"CWD ..",
        b"USER " + b"u" * 5000,
        b"PASS \x00",
    ):
        code, _ = client.send(command)
        assert 500 <= code < 600, command
    client.login(account.user.username)
    assert client.send(b"PWD")[0] == 257
    client.close()
    assert_alive(ftp_server, account)


def test_ftplib_refuses_to_send_what_we_sent_raw(ftp):
    with pytest.raises(ValueError):
        ftp.sendcmd("RETR a\nDELE b")


# --- random path strings (hypothesis)

PATH_COMMANDS = [b"SIZE", b"RETR", b"CWD", b"MKD", b"DELE", b"RMD", b"MDTM", b"MLST"]

path_text = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(["..", ".", "", "/", "outside", "secret.txt", "etc", "passwd", "~", "*"])
        | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
        max_size=8,
    ).map("/".join),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=st.sampled_from(PATH_COMMANDS), path=path_text)
def test_random_paths(raw, home, outside, command, path):
    before_outside = snapshot(outside)
    raw_path = path.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    code, text = raw.send(command + b" " + raw_path)
    assert 200 <= code < 600, (command, raw_path, code, text)
    assert code < 300 or code >= 500, (command, raw_path, code, text)
    assert b"top secret" not in text
    assert snapshot(outside) == before_outside
    # Nothing written next to the home.
    assert [sibling.name for sibling in home.parent.iterdir()] == [home.name]
    # Whatever happened, the session answers and can go back to the root.
    assert raw.send(b"NOOP")[0] == 200
    assert raw.send(b"CWD /")[0] == 250
    for created in home.rglob("*"):
        assert created.resolve().is_relative_to(home.resolve())
