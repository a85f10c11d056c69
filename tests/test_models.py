"""Models, and compatibility with databases migrated by django-ftpserver 1.0."""

from __future__ import annotations

import datetime
import io
import os
from io import StringIO
from pathlib import Path

import django
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from django_ftpserver.models import ALL_PERMS, FTPUserAccount, FTPUserGroup
from tests.conftest import PASSWORD, wait_until

DATA = Path(__file__).parent / "data"


def make_account(username="alice", account_home=None, group_home=None, permission="elr"):
    user = get_user_model().objects.create_user(username, password="x")
    group = FTPUserGroup.objects.create(
        name=f"group-{username}", permission=permission, home_dir=group_home
    )
    return FTPUserAccount.objects.create(user=user, group=group, home_dir=account_home)


# --- FTPUserAccount / FTPUserGroup


@pytest.mark.django_db
class TestHomeDir:
    def test_account_home_wins(self):
        account = make_account(account_home="/srv/mine", group_home="/srv/group")
        assert account.get_home_dir() == "/srv/mine"

    def test_group_home_without_account_home(self):
        assert make_account(group_home="/srv/group").get_home_dir() == "/srv/group"

    @pytest.mark.parametrize("empty", [None, ""])
    def test_empty_account_home_falls_back(self, empty):
        account = make_account(account_home=empty, group_home="/srv/group")
        assert account.get_home_dir() == "/srv/group"

    def test_default_is_a_sibling_of_the_home_of_the_process_user(self):
        expected = os.path.join(os.path.dirname(os.path.expanduser("~")), "alice")
        assert make_account().get_home_dir() == expected

    def test_username_substitution(self):
        assert make_account(group_home="/srv/{username}/ftp").get_home_dir() == "/srv/alice/ftp"
        account = make_account("bob", account_home="/data/{username}-{username}")
        assert account.get_home_dir() == "/data/bob-bob"

    def test_other_braces_are_kept(self):
        # 1.0 used str.format: "{year}" raised KeyError at login.
        account = make_account(account_home="/srv/{year}/{username}")
        assert account.get_home_dir() == "/srv/{year}/alice"


@pytest.mark.django_db
def test_perms():
    account = make_account(permission="elr")
    assert account.get_perms() == "elr"
    assert account.has_perm("r")
    assert account.has_perm("l", "/some/path")
    assert not account.has_perm("w")
    assert not account.has_perm("w", "/some/path")
    account.group.permission = ALL_PERMS
    assert all(account.has_perm(letter) for letter in "elradfmwMT")


def test_all_perms_are_pyftpdlib_letters():
    from pyftpdlib.authorizers import DummyAuthorizer

    assert set(ALL_PERMS) == set(DummyAuthorizer.read_perms + DummyAuthorizer.write_perms)
    assert len(ALL_PERMS) == FTPUserGroup._meta.get_field("permission").max_length


@pytest.mark.django_db
def test_update_last_login():
    account = make_account()
    assert account.last_login is None
    before = timezone.now()
    account.update_last_login()
    assert before <= account.last_login <= timezone.now()
    assert FTPUserAccount.objects.get(pk=account.pk).last_login is None  # the caller saves
    when = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    account.update_last_login(when)
    account.save()
    assert FTPUserAccount.objects.get(pk=account.pk).last_login == when


@pytest.mark.django_db
def test_str_and_username():
    account = make_account("carol")
    assert str(account) == "carol"
    assert account.get_username() == "carol"
    assert str(account.group) == "group-carol"
    assert str(FTPUserGroup(name="x")) == "x"


def test_account_without_user():
    account = FTPUserAccount()
    assert account.get_username() == ""
    assert str(account) == ""


@pytest.mark.django_db
def test_deleting_the_user_deletes_the_account():
    account = make_account()
    account.user.delete()
    assert not FTPUserAccount.objects.exists()
    assert FTPUserGroup.objects.filter(pk=account.group_id).exists()


@pytest.mark.django_db
def test_ten_letter_permission_is_stored():
    group = FTPUserGroup.objects.create(name="all", permission="elradfmwMT")
    assert FTPUserGroup.objects.get(pk=group.pk).permission == "elradfmwMT"


# --- migrations


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    call_command("makemigrations", "django_ftpserver", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def their_sql_path() -> Path:
    return DATA / f"django_ftpserver-1.0-0001.{connection.vendor}.sql"


def their_statements() -> list[str]:
    text = their_sql_path().read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("--")]
    statements = (part.strip() for part in "\n".join(lines).split(";"))
    return [part for part in statements if part and part.upper() not in ("BEGIN", "COMMIT")]


def check_same_sql_as_1_0() -> None:
    if django.VERSION[:2] != (5, 2):
        pytest.skip("tests/data was generated with Django 5.2 (see tests/data/README.rst)")
    out = StringIO()
    call_command("sqlmigrate", "django_ftpserver", "0001", stdout=out)
    assert out.getvalue().strip() == their_sql_path().read_text().strip()


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor refuses atomic()
def test_initial_migration_is_the_schema_of_1_0():
    check_same_sql_as_1_0()


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_initial_migration_is_the_schema_of_1_0_on_servers():
    check_same_sql_as_1_0()


TABLES = ["django_ftpserver_ftpusergroup", "django_ftpserver_ftpuseraccount"]


def describe_schema() -> dict[str, object]:
    """Columns and constraints (without their names) of our two tables."""
    schema = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            columns = []
            for column in connection.introspection.get_table_description(cursor, table):
                info = column._asdict()
                if connection.vendor != "postgresql":
                    # MySQL reports the widest value present; PostgreSQL's
                    # varchar length is only there (internal_size is None).
                    del info["display_size"]
                columns.append(info)
            constraints = sorted(
                (
                    (
                        tuple(info["columns"]),
                        bool(info["primary_key"]),
                        bool(info["unique"]),
                        info["foreign_key"],
                        bool(info["index"]),
                    )
                    for info in connection.introspection.get_constraints(cursor, table).values()
                ),
                key=repr,
            )
            schema[table] = {"columns": columns, "constraints": constraints}
    return schema


@pytest.fixture
def database_of_1_0(transactional_db: None):
    """Our tables replaced by the ones django-ftpserver 1.0 created.

    Yields the schema a fresh ``migrate`` of this package creates, for
    comparison; afterwards the tables are rebuilt by our migrations.
    """
    fresh = describe_schema()
    call_command("migrate", "django_ftpserver", "zero", verbosity=0)
    try:
        with connection.cursor() as cursor:
            for statement in their_statements():
                cursor.execute(statement)
        MigrationRecorder(connection).record_applied("django_ftpserver", "0001_initial")
        yield fresh
    finally:
        # Rows first: ten letters do not fit the column reversing 0002 restores.
        FTPUserAccount.objects.all().delete()
        FTPUserGroup.objects.all().delete()
        call_command("migrate", "django_ftpserver", "zero", verbosity=0)
        call_command("migrate", "django_ftpserver", verbosity=0)


def check_database_of_1_0_keeps_working(fresh, server_factory, tmp_path) -> None:
    # Rows written by 1.0: a group using all eight letters it allowed, an account.
    user = get_user_model().objects.create_user("legacy", password=PASSWORD)
    home = tmp_path / "legacy"
    home.mkdir()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_ftpserver_ftpusergroup (name, permission, home_dir) "
            "VALUES (%s, %s, %s)",
            ["old-group", "elradfmw", None],
        )
        cursor.execute(
            "SELECT id FROM django_ftpserver_ftpusergroup WHERE name = %s", ["old-group"]
        )
        group_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO django_ftpserver_ftpuseraccount "
            "(last_login, home_dir, group_id, user_id) VALUES (%s, %s, %s, %s)",
            [None, str(home), group_id, user.pk],
        )
    assert describe_schema() != fresh  # permission is still 8 characters wide

    out = StringIO()
    call_command("migrate", "django_ftpserver", stdout=out)
    assert "Applying django_ftpserver.0002_permission_letters... OK" in out.getvalue()
    assert "0001" not in out.getvalue()
    assert describe_schema() == fresh

    account = FTPUserAccount.objects.select_related("group").get(user=user)
    assert (account.group.name, account.get_perms(), account.get_home_dir()) == (
        "old-group",
        "elradfmw",
        str(home),
    )
    FTPUserGroup.objects.filter(pk=group_id).update(permission="elradfmwMT")

    server = server_factory()
    client = server.connect("legacy", PASSWORD)
    client.storbinary("STOR kept.txt", io.BytesIO(b"still works"))
    client.sendcmd("SITE CHMOD 600 kept.txt")  # M, new in the wider column
    client.quit()
    assert (home / "kept.txt").read_bytes() == b"still works"
    wait_until(
        lambda: FTPUserAccount.objects.get(pk=account.pk).last_login is not None,
        what="last_login to be stored",
    )


def test_database_of_1_0_keeps_working(database_of_1_0, server_factory, tmp_path):
    check_database_of_1_0_keeps_working(database_of_1_0, server_factory, tmp_path)


@pytest.mark.postgres
@pytest.mark.mysql
def test_database_of_1_0_keeps_working_on_servers(database_of_1_0, server_factory, tmp_path):
    check_database_of_1_0_keeps_working(database_of_1_0, server_factory, tmp_path)


@pytest.mark.parametrize(
    ("permission", "error"),
    [
        ("elr", None),
        ("elradfmwMT", None),
        ("", "give at least one letter"),
        ("elrXY", "unknown letters 'XY', use letters of 'elradfmwMT'"),
        ("ll", "give each letter once"),
    ],
)
def test_group_clean(permission, error):
    from django.core.exceptions import ValidationError

    group = FTPUserGroup(name="g", permission=permission)
    if error is None:
        group.clean()
    else:
        with pytest.raises(ValidationError) as excinfo:
            group.clean()
        assert excinfo.value.message_dict == {"permission": [error]}
