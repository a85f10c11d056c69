"""The same logins and transfers against the real PostgreSQL and MariaDB servers."""

import io

import pytest

from django_ftpserver.models import FTPUserAccount

from .conftest import wait_until

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
