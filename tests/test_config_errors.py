"""Broken configurations: ``manage.py ftpserver`` says what is wrong in one line and exits.

Each case runs the real command in a subprocess and expects: a non-zero exit
status within a few seconds (no hang), one line on stderr that starts with
``CommandError:`` and names the problem, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_tls_policy import Certificate, make_certificate

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SETPRIV = shutil.which("setpriv")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("config-tls"))


def run_ftpserver(
    *args: str,
    settings: str | None = None,
    tmp_path: Path | None = None,
    prefix: list[str] | None = None,
) -> tuple[int, str, float]:
    """Run ``python -m django ftpserver ARGS``; return (status, stderr, seconds)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    if settings is not None:
        assert tmp_path is not None
        (tmp_path / "bad_settings.py").write_text(
            "from tests.settings import *  # noqa\n" + settings
        )
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
        env["DJANGO_SETTINGS_MODULE"] = "bad_settings"
    command = [*(prefix or []), sys.executable, "-m", "django", "ftpserver", *args]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"ftpserver {' '.join(args)} hung instead of exiting")
    return result.returncode, result.stderr, time.monotonic() - started


def assert_clean_error(status: int, stderr: str, seconds: float, *fragments: str) -> None:
    assert status != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("CommandError: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr
    assert seconds < 30


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("bad:host:xx", "invalid address 'bad:host:xx'"),
        ("127.0.0.1:99999", "invalid port 99999"),
        ("127.0.0.1:-1", "invalid port -1"),
        ("127.0.0.1:", "invalid port ''"),
        ("[::1", "expected [IPV6]:PORT"),
        (":2121", "expected HOST:PORT"),
        ("nosuchhost.invalid:2121", "unknown host 'nosuchhost.invalid'"),
        ("192.0.2.1:2121", "not an address of this machine"),
    ],
)
def test_bad_address(address, fragment):
    assert_clean_error(*run_ftpserver(address), fragment)


@pytest.mark.parametrize(
    ("ports", "fragment"),
    [
        ("70000-70010", "port out of range 1-65535"),
        ("0-10", "port out of range 1-65535"),
        ("abc", "invalid port or range 'abc'"),
        ("60100-60000", "empty port range"),
        ("60000-", "invalid port or range"),
    ],
)
def test_bad_passive_ports(ports, fragment):
    status, stderr, seconds = run_ftpserver("127.0.0.1:0", "--passive-ports", ports)
    assert_clean_error(status, stderr, seconds, "invalid passive ports", fragment)


def test_bad_passive_ports_setting(tmp_path):
    result = run_ftpserver(
        "127.0.0.1:0", settings="FTPSERVER_PASSIVE_PORTS = 60000\n", tmp_path=tmp_path
    )
    assert_clean_error(*result, "invalid passive ports 60000")


def test_missing_certificate(tmp_path):
    missing = tmp_path / "missing.pem"
    result = run_ftpserver("127.0.0.1:0", "--certfile", str(missing))
    assert_clean_error(*result, f"TLS certificate file not found: {missing}")


def test_missing_key(certificate, tmp_path):
    missing = tmp_path / "missing.key"
    result = run_ftpserver(
        "127.0.0.1:0", "--certfile", str(certificate.certfile), "--keyfile", str(missing)
    )
    assert_clean_error(*result, f"TLS key file not found: {missing}")


def test_key_without_certificate(certificate):
    result = run_ftpserver("127.0.0.1:0", "--keyfile", str(certificate.keyfile))
    assert_clean_error(*result, "key file was given without a certificate")


def test_certificate_that_is_not_pem(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = run_ftpserver("127.0.0.1:0", "--certfile", str(junk))
    assert_clean_error(*result, f"cannot load the TLS certificate {junk}", "not a PEM file")


def test_certificate_without_its_key(certificate):
    result = run_ftpserver("127.0.0.1:0", "--certfile", str(certificate.certfile))
    assert_clean_error(*result, "no usable private key", "give the key file too")


def test_key_of_another_certificate(certificate, tmp_path):
    other = make_certificate(tmp_path / "other")
    result = run_ftpserver(
        "127.0.0.1:0", "--certfile", str(certificate.certfile), "--keyfile", str(other.keyfile)
    )
    assert_clean_error(*result, f"cannot load the TLS key {other.keyfile}")


def test_encrypted_key_does_not_prompt(certificate, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certificate.keyfile.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    result = run_ftpserver(
        "127.0.0.1:0", "--certfile", str(certificate.certfile), "--keyfile", str(encrypted)
    )
    assert_clean_error(*result, "is encrypted")


def _without_capabilities(*caps: str) -> list[str] | None:
    """A command prefix that runs without ``caps`` (as root), or None if impossible."""
    if not IS_ROOT:
        return []
    if SETPRIV is None:
        return None
    dropped = ",".join(f"-{cap}" for cap in caps)
    return [SETPRIV, f"--inh-caps={dropped}", f"--bounding-set={dropped}"]


def test_unreadable_certificate(certificate, tmp_path):
    prefix = _without_capabilities("dac_override", "dac_read_search")
    if prefix is None:
        pytest.skip("running as root without setpriv: every file is readable")
    unreadable = tmp_path / "unreadable.pem"
    shutil.copy(certificate.certfile, unreadable)
    unreadable.chmod(0)
    result = run_ftpserver(
        "127.0.0.1:0",
        "--certfile",
        str(unreadable),
        "--keyfile",
        str(certificate.keyfile),
        prefix=prefix,
    )
    assert_clean_error(*result, f"TLS certificate file not readable: {unreadable}")


def test_port_already_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_ftpserver(f"127.0.0.1:{port}")
    assert_clean_error(*result, f"cannot listen on 127.0.0.1:{port}", "Address already in use")


def test_privileged_port_without_the_right():
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").exists():
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
        if start <= 21:
            pytest.skip("this system lets anyone bind port 21")
    prefix = _without_capabilities("net_bind_service")
    if prefix is None:
        pytest.skip("running as root without setpriv")
    result = run_ftpserver("127.0.0.1:21", prefix=prefix)
    assert_clean_error(
        *result,
        "cannot listen on 127.0.0.1:21: Permission denied",
        "ports below 1024 need root or CAP_NET_BIND_SERVICE",
    )


def test_negative_timeout():
    result = run_ftpserver("127.0.0.1:0", "--timeout", "-5")
    assert_clean_error(*result, "timeout must be 0 or more seconds, not -5")


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("FTPSERVER_TIMEOUT = -1\n", "timeout must be 0 or more seconds, not -1"),
        ("FTPSERVER_PORT = 'ftp'\n", "port must be a number from 0 to 65535, not 'ftp'"),
        ("FTPSERVER_HOST = 127001\n", "host must be a string"),
        ("FTPSERVER_PASSIVE_PORTS = '70000'\n", "port out of range"),
        ("FTPSERVER_CERTFILE = '/nonexistent/cert.pem'\n", "TLS certificate file not found"),
        ("FTPSERVER_HANDLER = 'nope.Handler'\n", "cannot import a configured class"),
        ("FTPSERVER_MASQUERADE_ADDRESS = 'ftp.example.com'\n", "must be an IPv4 address"),
    ],
)
def test_bad_settings(tmp_path, setting, fragment):
    result = run_ftpserver(settings=setting, tmp_path=tmp_path)
    assert_clean_error(*result, fragment)


def test_good_configuration_starts(tmp_path):
    """The counterpart: the same harness sees a server that runs and stops on SIGTERM."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="tests.settings")
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "ftpserver", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert "Serving FTP on 127.0.0.1:" in lines[2]
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
