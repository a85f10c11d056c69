"""The account management commands: output, and a one-line ``CommandError`` per bad value."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from django_ftpserver.models import FTPUserAccount, FTPUserGroup
from tests import procs
from tests.procs import manage

pytestmark = pytest.mark.django_db

project_template = procs.project_template
project_env = procs.project_env


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def make_user(username: str = "alice"):
    return get_user_model().objects.create_user(username, password="x")


# --- createftpusergroup


def test_create_group_with_defaults():
    output = run("createftpusergroup", "staff")
    group = FTPUserGroup.objects.get(name="staff")
    assert group.permission == "elradfmw"
    assert group.home_dir is None
    assert f'pk={group.pk}, "staff" was created' in output


def test_create_group_with_home_and_permission():
    run("createftpusergroup", "readers", "/srv/ftp/{username}", "--permission", "elr")
    group = FTPUserGroup.objects.get(name="readers")
    assert (group.permission, group.home_dir) == ("elr", "/srv/ftp/{username}")


def test_create_group_accepts_all_ten_letters():
    run("createftpusergroup", "all", "--permission", "elradfmwMT")
    assert FTPUserGroup.objects.get(name="all").permission == "elradfmwMT"


def test_create_group_twice_names_the_group():
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match='"staff" already exists'):
        run("createftpusergroup", "staff")
    assert FTPUserGroup.objects.filter(name="staff").count() == 1


@pytest.mark.parametrize("permission", ["elrX", "e l", "elr;", "ELR"])
def test_create_group_rejects_unknown_permission_letters(permission):
    with pytest.raises(CommandError, match=f"invalid permission {permission!r}"):
        run("createftpusergroup", "bad", "--permission", permission)
    assert not FTPUserGroup.objects.exists()


def test_create_group_rejects_repeated_permission_letters():
    # Eleven letters do not fit the ten-character column (a DataError on
    # PostgreSQL and MySQL); a repeated letter is a typo anyway.
    with pytest.raises(CommandError, match="invalid permission 'elradfmwMTe'"):
        run("createftpusergroup", "bad", "--permission", "elradfmwMTe")
    assert not FTPUserGroup.objects.exists()


def test_create_group_rejects_a_too_long_name():
    name = "n" * 31
    with pytest.raises(CommandError, match=f"invalid group name '{name}'"):
        run("createftpusergroup", name)
    run("createftpusergroup", "n" * 30)  # the limit itself fits
    assert FTPUserGroup.objects.get().name == "n" * 30


def test_create_group_rejects_an_empty_name():
    with pytest.raises(CommandError, match="invalid group name ''"):
        run("createftpusergroup", "")


def test_create_group_rejects_a_too_long_home():
    home = "/" + "h" * 1024
    with pytest.raises(CommandError, match="home directory too long"):
        run("createftpusergroup", "staff", home)
    assert not FTPUserGroup.objects.exists()


# --- createftpuseraccount


def test_create_account():
    user = make_user()
    run("createftpusergroup", "staff")
    output = run("createftpuseraccount", "alice", "staff", "/srv/alice")
    account = FTPUserAccount.objects.get()
    assert (account.user, account.group.name, account.home_dir) == (user, "staff", "/srv/alice")
    assert f'pk={account.pk}, "alice" was created' in output


def test_create_account_without_home_uses_the_group_home():
    make_user()
    run("createftpusergroup", "staff", "/srv/{username}")
    run("createftpuseraccount", "alice", "staff")
    account = FTPUserAccount.objects.get()
    assert account.home_dir is None
    assert account.get_home_dir() == "/srv/alice"


def test_create_account_for_an_unknown_user():
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match='User "nobody-here" does not exist'):
        run("createftpuseraccount", "nobody-here", "staff")
    assert not FTPUserAccount.objects.exists()


def test_create_account_in_an_unknown_group():
    make_user()
    with pytest.raises(CommandError, match='FTP user group "ghosts" does not exist'):
        run("createftpuseraccount", "alice", "ghosts")
    assert not FTPUserAccount.objects.exists()


def test_create_account_twice():
    make_user()
    run("createftpusergroup", "staff")
    run("createftpusergroup", "other")
    run("createftpuseraccount", "alice", "staff")
    with pytest.raises(CommandError, match='FTP user account "alice" already exists'):
        run("createftpuseraccount", "alice", "other")
    assert FTPUserAccount.objects.get().group.name == "staff"


def test_create_account_rejects_a_too_long_home():
    make_user()
    run("createftpusergroup", "staff")
    with pytest.raises(CommandError, match="home directory too long"):
        run("createftpuseraccount", "alice", "staff", "/" + "h" * 1024)
    assert not FTPUserAccount.objects.exists()


# --- listing


def test_list_groups_empty():
    assert run("listftpusergroup").strip() == "No FTP user groups found."


def test_list_groups():
    run("createftpusergroup", "staff", "/srv/{username}")
    run("createftpusergroup", "readers", "--permission", "elr")
    lines = run("listftpusergroup").splitlines()
    assert lines[0] == "FTP User Groups:"
    rows = [line.split() for line in lines[4:]]
    staff, readers = FTPUserGroup.objects.order_by("pk")
    assert rows == [
        [str(staff.pk), "staff", "elradfmw", "/srv/{username}"],
        [str(readers.pk), "readers", "elr"],
    ]


def test_list_accounts_empty():
    assert run("listftpuseraccount").strip() == "No FTP user accounts found."


def test_list_accounts():
    make_user("alice")
    make_user("bob")
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff", "/srv/alice")
    run("createftpuseraccount", "bob", "staff")
    lines = run("listftpuseraccount").splitlines()
    assert lines[0] == "FTP User Accounts:"
    alice, bob = FTPUserAccount.objects.order_by("pk")
    assert [line.split() for line in lines[4:]] == [
        [str(alice.pk), "alice", "staff", "/srv/alice"],
        [str(bob.pk), "bob", "staff"],
    ]


# --- deleting


def test_delete_group():
    run("createftpusergroup", "staff")
    pk = FTPUserGroup.objects.get().pk
    output = run("deleteftpusergroup", "staff")
    assert not FTPUserGroup.objects.exists()
    assert f'pk={pk}, "staff" was deleted' in output


def test_delete_unknown_group():
    with pytest.raises(CommandError, match='FTP user group "ghosts" does not exist'):
        run("deleteftpusergroup", "ghosts")


def test_delete_group_in_use_is_refused_with_the_count():
    make_user("alice")
    make_user("bob")
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff")
    run("createftpuseraccount", "bob", "staff")
    with pytest.raises(CommandError, match='"staff" has 2 user account'):
        run("deleteftpusergroup", "staff")
    assert FTPUserGroup.objects.filter(name="staff").exists()
    assert FTPUserAccount.objects.count() == 2


def test_delete_account_keeps_the_django_user():
    user = make_user()
    run("createftpusergroup", "staff")
    run("createftpuseraccount", "alice", "staff")
    pk = FTPUserAccount.objects.get().pk
    output = run("deleteftpuseraccount", "alice")
    assert not FTPUserAccount.objects.exists()
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert FTPUserGroup.objects.filter(name="staff").exists()
    assert f'pk={pk}, "alice" was deleted' in output
    run("deleteftpusergroup", "staff")  # no longer in use


def test_delete_unknown_account():
    make_user()  # a Django user without an FTP account
    with pytest.raises(CommandError, match='FTP user account "alice" does not exist'):
        run("deleteftpuseraccount", "alice")


# --- a real process


def test_command_error_is_one_line_and_exit_status_1(project_env):
    result = manage(project_env, "deleteftpusergroup", "ghosts")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        'CommandError: FTP user group "ghosts" does not exist.'
    ]


def test_commands_work_in_a_real_process(project_env):
    manage(project_env, "createftpusergroup", "editors", check=True)
    assert "editors" in manage(project_env, "listftpusergroup", check=True).stdout
    result = manage(project_env, "createftpusergroup", "editors")
    assert result.returncode == 1
    assert result.stderr.strip() == 'CommandError: FTP user group "editors" already exists.'
