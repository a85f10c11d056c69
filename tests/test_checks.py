"""System checks of the FTPSERVER_* settings: one test per id, and ``manage.py check``."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core import checks as django_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_ftpserver import checks

from .test_tls_policy import Certificate, make_certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("checks-tls"))


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def ftpserver_messages() -> list[django_checks.CheckMessage]:
    return [
        m
        for m in django_checks.run_checks(tags=[checks.TAG])
        if m.id.startswith("django_ftpserver")
    ]


def ftpserver_deploy_messages() -> list[django_checks.CheckMessage]:
    return [
        m
        for m in django_checks.run_checks(tags=[checks.TAG], include_deployment_checks=True)
        if m.id.startswith("django_ftpserver")
    ]


def test_defaults_are_clean(settings, tmp_path):
    # A new project (Django's default, process-local cache) hears nothing...
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ftpserver_messages() == []
    # ...until it checks for deployment: the one warning of a default setup.
    assert ids(ftpserver_deploy_messages()) == ["django_ftpserver.W003"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path),
        }
    }
    assert ftpserver_deploy_messages() == []


def test_w003_only_with_deploy(settings):
    """``manage.py check`` of a default project is silent; ``check --deploy`` names W003."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.SILENCED_SYSTEM_CHECKS = []
    err = StringIO()
    call_command("check", stdout=StringIO(), stderr=err)
    assert "W003" not in err.getvalue()
    err = StringIO()
    call_command("check", "--deploy", stdout=StringIO(), stderr=err)
    assert "django_ftpserver.W003" in err.getvalue()


def test_every_message_has_a_hint(settings, tmp_path):
    settings.FTPSERVER_HANDLER = "nope.Handler"
    settings.FTPSERVER_PASSIVE_PORTS = "x"
    settings.FTPSERVER_HOST = "0.0.0.0"
    settings.FTPSERVER_TIMEOUT = -1
    messages = ftpserver_messages()
    assert len(messages) >= 4
    assert all(message.hint for message in messages)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FTPSERVER_HANDLER", "django_ftpserver.handlers.NoSuchHandler"),
        ("FTPSERVER_AUTHORIZER", "no_such_module.Authorizer"),
        ("FTPSERVER_SERVER_CLASS", "NotDotted"),
        ("FTPSERVER_FILESYSTEM", 42),
    ],
)
def test_e001_unimportable_class(settings, name, value):
    setattr(settings, name, value)
    messages = checks.check_class_settings()
    assert ids(messages) == ["django_ftpserver.E001"]
    assert name in messages[0].msg


def test_e001_accepts_classes_and_paths(settings):
    from django_ftpserver.handlers import DjangoFTPHandler

    settings.FTPSERVER_HANDLER = DjangoFTPHandler
    settings.FTPSERVER_FILESYSTEM = "pyftpdlib.filesystems.AbstractedFS"
    assert checks.check_class_settings() == []


@pytest.mark.parametrize("value", ["70000-70010", "abc", "100-50", "", 21, [0, 1]])
def test_e002_bad_passive_ports(settings, value):
    settings.FTPSERVER_PASSIVE_PORTS = value
    messages = checks.check_passive_ports()
    assert ids(messages) == ["django_ftpserver.E002"]
    assert "FTPSERVER_PASSIVE_PORTS" in messages[0].msg


@pytest.mark.parametrize("value", ["60000-60100", "50000,60000-60010", [60000, 60001], None])
def test_e002_good_passive_ports(settings, value):
    settings.FTPSERVER_PASSIVE_PORTS = value
    assert checks.check_passive_ports() == []


def test_e003_keyfile_without_certfile(settings, certificate):
    settings.FTPSERVER_KEYFILE = str(certificate.keyfile)
    assert ids(checks.check_tls_files()) == ["django_ftpserver.E003"]


def test_e004_certificate_problems(settings, certificate, tmp_path: Path):
    settings.FTPSERVER_CERTFILE = str(tmp_path / "missing.pem")
    messages = checks.check_tls_files()
    assert ids(messages) == ["django_ftpserver.E004"]
    assert "file not found" in messages[0].msg

    settings.FTPSERVER_CERTFILE = str(certificate.certfile)
    settings.FTPSERVER_KEYFILE = str(tmp_path / "missing.key")
    assert "FTPSERVER_KEYFILE file not found" in checks.check_tls_files()[0].msg

    other = make_certificate(tmp_path / "other")
    settings.FTPSERVER_KEYFILE = str(other.keyfile)  # a key of another certificate
    messages = checks.check_tls_files()
    assert ids(messages) == ["django_ftpserver.E004"]
    assert "cannot be used" in messages[0].msg

    settings.FTPSERVER_KEYFILE = str(certificate.keyfile)
    assert checks.check_tls_files() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("FTPSERVER_PORT", "2121"), ("FTPSERVER_PORT", 70000), ("FTPSERVER_HOST", 127)],
)
def test_e005_bad_address(settings, name, value):
    setattr(settings, name, value)
    messages = checks.check_address()
    assert ids(messages) == ["django_ftpserver.E005"]
    assert name in messages[0].msg


@pytest.mark.parametrize("value", [-1, "300", True])
def test_e006_bad_timeout(settings, value):
    settings.FTPSERVER_TIMEOUT = value
    assert ids(checks.check_timeouts()) == ["django_ftpserver.E006"]


@pytest.mark.parametrize("value", [-5, "soon"])
def test_e007_bad_auth_cache_timeout(settings, value):
    settings.FTPSERVER_AUTH_CACHE_TIMEOUT = value
    assert ids(checks.check_timeouts()) == ["django_ftpserver.E007"]


@pytest.mark.parametrize(
    ("part_size", "threads"), [(1024 * 1024, 4), (8 * 1024 * 1024, 0), ("big", 4)]
)
def test_e020_s3_upload_settings(settings, part_size, threads):
    settings.FTPSERVER_S3_PART_SIZE = part_size
    settings.FTPSERVER_S3_UPLOAD_THREADS = threads
    assert ids(checks.check_s3_uploads()) == ["django_ftpserver.E020"]
    settings.FTPSERVER_S3_PART_SIZE = 5 * 1024 * 1024
    settings.FTPSERVER_S3_UPLOAD_THREADS = 1
    assert checks.check_s3_uploads() == []


def test_e008_masquerade_address_is_ipv4(settings):
    settings.FTPSERVER_MASQUERADE_ADDRESS = "ftp.example.com"
    assert ids(checks.check_masquerade_address()) == ["django_ftpserver.E008"]
    settings.FTPSERVER_MASQUERADE_ADDRESS = "203.0.113.7"
    assert checks.check_masquerade_address() == []


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("FTPSERVER_MAX_CONNECTIONS_PER_IP", -1, "0 or more, not -1"),
        ("FTPSERVER_MAX_CONNECTIONS_PER_IP", "20", "0 or more, not '20'"),
        ("FTPSERVER_LOGIN_TIMEOUT", 30.5, "0 or more, not 30.5"),
        ("FTPSERVER_LOGIN_TIMEOUT", True, "0 or more, not True"),
        ("FTPSERVER_MAX_PRE_LOGIN_PERCENT", 0, "from 1 to 100, not 0"),
        ("FTPSERVER_MAX_PRE_LOGIN_PERCENT", 0.8, "from 1 to 100, not 0.8"),
        ("FTPSERVER_MAX_CONNECTIONS", -5, "0 or more, not -5"),
        ("FTPSERVER_MAX_LOGIN_ATTEMPTS", 0, "1 or more, not 0"),
        ("FTPSERVER_WRITE_LIMIT", "1MB", "0 or more, not '1MB'"),
    ],
)
def test_e013_bad_limit(settings, name, value, problem):
    setattr(settings, name, value)
    messages = checks.check_limits()
    assert ids(messages) == ["django_ftpserver.E013"]
    assert messages[0].msg == f"{name} must be a whole number, {problem}."


def test_e013_good_limits(settings):
    settings.FTPSERVER_MAX_CONNECTIONS_PER_IP = 0
    settings.FTPSERVER_LOGIN_TIMEOUT = 0
    settings.FTPSERVER_MAX_PRE_LOGIN_PERCENT = 100
    settings.FTPSERVER_MAX_CONNECTIONS = None  # pyftpdlib's own
    assert checks.check_limits() == []


@pytest.mark.parametrize("value", ["Atomic", "fast", 1])
def test_e009_upload_mode(settings, value):
    settings.FTPSERVER_UPLOAD_MODE = value
    assert ids(checks.check_upload_mode()) == ["django_ftpserver.E009"]
    for good in ("standard", "atomic", None):
        settings.FTPSERVER_UPLOAD_MODE = good
        assert checks.check_upload_mode() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.10", "ftp.example.com"])
def test_w001_exposed_without_tls(settings, host):
    settings.FTPSERVER_HOST = host
    messages = checks.check_exposure()
    assert ids(messages) == ["django_ftpserver.W001"]
    assert django_checks.Tags.security in checks.check_exposure.tags


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_w001_not_for_loopback(settings, host):
    settings.FTPSERVER_HOST = host
    assert checks.check_exposure() == []


def test_w001_not_with_tls(settings, certificate):
    settings.FTPSERVER_HOST = "0.0.0.0"
    settings.FTPSERVER_CERTFILE = str(certificate.certfile)
    settings.FTPSERVER_KEYFILE = str(certificate.keyfile)
    assert checks.check_exposure() == []


def test_w002_tls_not_required(settings, certificate):
    settings.FTPSERVER_CERTFILE = str(certificate.certfile)
    settings.FTPSERVER_KEYFILE = str(certificate.keyfile)
    assert checks.check_tls_required() == []
    settings.FTPSERVER_TLS_DATA_REQUIRED = False
    messages = checks.check_tls_required()
    assert ids(messages) == ["django_ftpserver.W002"]
    assert "FTPSERVER_TLS_DATA_REQUIRED is False" in messages[0].msg
    settings.FTPSERVER_TLS_CONTROL_REQUIRED = False
    assert "are False" in checks.check_tls_required()[0].msg
    settings.FTPSERVER_CERTFILE = None  # no certificate: nothing to relax
    settings.FTPSERVER_KEYFILE = None
    assert checks.check_tls_required() == []


def test_w010_session_reuse_needs_tls_on_data(settings):
    assert checks.check_session_reuse() == []  # off
    settings.FTPSERVER_TLS_REQUIRE_SESSION_REUSE = True
    settings.FTPSERVER_CERTFILE = None
    messages = checks.check_session_reuse()
    assert ids(messages) == ["django_ftpserver.W010"]
    assert "without a certificate" in messages[0].msg
    settings.FTPSERVER_CERTFILE = "/etc/ssl/cert.pem"
    assert checks.check_session_reuse() == []
    settings.FTPSERVER_TLS_DATA_REQUIRED = False
    messages = checks.check_session_reuse()
    assert ids(messages) == ["django_ftpserver.W010"]
    assert "clear data connections" in messages[0].msg


def test_manage_py_check(settings):
    call_command("check", stdout=StringIO())  # defaults: no issue
    settings.FTPSERVER_HOST = "0.0.0.0"
    err = StringIO()
    call_command("check", stdout=StringIO(), stderr=err)
    assert "django_ftpserver.W001" in err.getvalue()
    settings.FTPSERVER_PASSIVE_PORTS = "60100-60000"
    with pytest.raises(SystemCheckError) as info:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "django_ftpserver.E002" in str(info.value)
    assert "empty port range" in str(info.value)
    call_command("check", "--tag", "security", stdout=StringIO(), stderr=StringIO())


def test_w003_process_local_lockout_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    messages = checks.check_lockout_cache()
    assert ids(messages) == ["django_ftpserver.W003"]
    assert "listftplockouts" in messages[0].msg and messages[0].hint
    settings.FTPSERVER_LOCKOUT_FAILURES = 0  # lockout off: nothing to warn about
    assert checks.check_lockout_cache() == []


def test_w003_on_every_command_behind_a_balancer(settings):
    """Trusting a PROXY protocol balancer means several servers: W003 stops waiting for --deploy."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = ["10.0.0.0/8"]
    assert ids(ftpserver_messages()) == ["django_ftpserver.W003"]
    assert ids(ftpserver_deploy_messages()) == ["django_ftpserver.W003"]  # once, not twice
    settings.FTPSERVER_PROXY_PROTOCOL_TRUSTED = []
    assert ftpserver_messages() == []


def test_w003_not_for_a_shared_cache(settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path),
        },
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    assert checks.check_lockout_cache() == []
    settings.FTPSERVER_LOCKOUT_CACHE = "local"
    assert ids(checks.check_lockout_cache()) == ["django_ftpserver.W003"]


@pytest.mark.parametrize("value", ["nope", "127.0.0.1:70000", "::1:9100", 3.5])
def test_e030_bad_metrics_address(settings, value):
    settings.FTPSERVER_METRICS_ADDRESS = value
    assert ids(checks.check_metrics_address()) == ["django_ftpserver.E030"]


@pytest.mark.parametrize("value", [None, "127.0.0.1:9100", "[::1]:9100", "9100"])
def test_e030_good_metrics_address(settings, value):
    settings.FTPSERVER_METRICS_ADDRESS = value
    assert checks.check_metrics_address() == []


def test_e031_metrics_without_prometheus_client(settings, monkeypatch):
    settings.FTPSERVER_METRICS_ADDRESS = "127.0.0.1:9100"
    monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)
    messages = checks.check_metrics_address()
    assert ids(messages) == ["django_ftpserver.E031"]
    assert "django-ftpserver[metrics]" in messages[0].hint
