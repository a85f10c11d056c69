"""The same logins and transfers against the real PostgreSQL and MariaDB servers."""

import io

import pytest

from django_ftpserver.models import FTPUserAccount

from .conftest import wait_until
from .test_sessions import (  # noqa: F401  (collected again here)
    test_fetch_many_leaves_names_spelled_otherwise_to_fetch,
    test_fetch_many_reads_what_fetch_reads,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]


def test_login_transfer_and_last_login(ftp, home, account):
    ftp.storbinary("STOR db.txt", io.BytesIO(b"payload"))
    assert (home / "db.txt").read_bytes() == b"payload"
    wait_until(
        lambda: FTPUserAccount.objects.get(pk=account.pk).last_login is not None,
        what="last_login to be stored",
    )


def test_wrong_password_is_refused(ftp_server, account):
    import ftplib

    client = ftp_server.connect()
    with pytest.raises(ftplib.error_perm, match="530"):
        client.login(account.user.username, "wrong")
    client.close()
