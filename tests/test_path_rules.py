"""Per-path permissions: the rules, the models, a real server, the commands, the admin."""

from __future__ import annotations

import ftplib
import io
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from django_ftpserver import authorizers
from django_ftpserver.auth.permissions import (
    InvalidRule,
    PathRules,
    ftp_path_in_home,
    normalize_rule_path,
    parse_rule,
    validate_permission_letters,
)
from django_ftpserver.models import FTPPathRule, FTPUserAccount, FTPUserGroup

from .conftest import PASSWORD
from .s3 import S3Path

# The same session on the local disk and on S3 (StorageFS on a moto_server).
pytestmark = pytest.mark.storages("disk", "s3")

# --- the rules, without Django


def test_rule_matches_by_path_component():
    rules = PathRules("elradfmw", group={"/in": ""})
    assert rules.perms_for("/in") == ""
    assert rules.perms_for("/in/deep/file.txt") == ""
    assert rules.perms_for("/incoming/file.txt") == "elradfmw"
    assert rules.perms_for("/i") == "elradfmw"


def test_longest_matching_path_wins():
    rules = PathRules("elradfmw", group={"/data": "elr", "/data/drop": "w"})
    assert rules.perms_for("/data/x") == "elr"
    assert rules.perms_for("/data/drop/x") == "w"
    assert rules.perms_for("/data") == "elr"
    assert rules.perms_for("/other") == "elradfmw"


def test_account_rule_beats_group_rule_on_the_same_path():
    rules = PathRules("elradfmw", account={"/reports": "elrw"}, group={"/reports": "elr"})
    assert rules.perms_for("/reports/q1.pdf") == "elrw"
    assert rules.explain("/reports/q1.pdf") == ("elrw", "account", "/reports")


def test_deeper_group_rule_beats_shorter_account_rule():
    rules = PathRules("elradfmw", account={"/reports": "elrw"}, group={"/reports/2024": "elr"})
    assert rules.perms_for("/reports/2024/q1.pdf") == "elr"
    assert rules.perms_for("/reports/2025/q1.pdf") == "elrw"


def test_rule_on_root_replaces_the_group_permission():
    rules = PathRules("elradfmw", account={"/": "elr"})
    assert rules.perms_for("/anything") == "elr"
    assert rules.explain("/x") == ("elr", "account", "/")


def test_no_rules_is_the_group_permission():
    rules = PathRules("elr")
    assert not rules
    assert rules.perms_for("/x") == "elr"
    assert rules.explain("/x") == ("elr", None, None)


def test_rename_needs_f_on_every_rule_below():
    rules = PathRules("elradfmw", group={"/data/reports": "elr", "/drop": "w"})
    assert rules.has_perm("f", "/other")
    assert not rules.has_perm("f", "/data")  # would carry /data/reports away
    assert not rules.has_perm("f", "/data/reports")
    assert rules.has_perm("f", "/dat")  # "/dat" is not a parent of "/data/reports"
    assert not rules.has_perm("f", "/drop/file")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/incoming", "/incoming"),
        ("incoming", "/incoming"),
        ("/incoming/", "/incoming"),
        ("//incoming/./sub//", "/incoming/sub"),
        ("/", "/"),
        ("/déjà vu", "/déjà vu"),
    ],
)
def test_normalize_rule_path(raw, normalized):
    assert normalize_rule_path(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["", "  ", "/a/../b", "..", "/a\x00b", "/a\nb", "\\a", "/" + "x" * 300]
)
def test_normalize_rule_path_refuses(raw):
    with pytest.raises(InvalidRule):
        normalize_rule_path(raw)


def test_permission_letters():
    assert validate_permission_letters("elradfmwMT") == "elradfmwMT"
    assert validate_permission_letters("") == ""
    with pytest.raises(InvalidRule, match="unknown letter"):
        validate_permission_letters("rwx")
    with pytest.raises(InvalidRule, match="repeated"):
        validate_permission_letters("rr")


def test_parse_rule():
    assert parse_rule("/incoming=w") == ("/incoming", "w")
    assert parse_rule("private=") == ("/private", "")
    with pytest.raises(InvalidRule, match="PATH=PERMISSION"):
        parse_rule("/incoming")
    with pytest.raises(InvalidRule, match="unknown letter"):
        parse_rule("/incoming=x")


def test_ftp_path_in_home():
    assert ftp_path_in_home("/srv/ftp/alice", "/srv/ftp/alice") == "/"
    assert ftp_path_in_home("/srv/ftp/alice/in/a.txt", "/srv/ftp/alice/") == "/in/a.txt"
    assert ftp_path_in_home("/srv/ftp/alicex/a.txt", "/srv/ftp/alice") is None
    assert ftp_path_in_home("/etc/passwd", "/srv/ftp/alice") is None
    assert ftp_path_in_home("/etc/passwd", "/") == "/etc/passwd"


# --- models


@pytest.fixture
def staff(db) -> FTPUserGroup:
    group = FTPUserGroup.objects.create(name="staff", permission="elradfmw")
    FTPPathRule.objects.create(group=group, path="/incoming", permission="w")
    FTPPathRule.objects.create(group=group, path="/reports", permission="elr")
    return group


@pytest.fixture
def carol_home(tmp_path: Path, storage_backend: str, request: pytest.FixtureRequest) -> Any:
    """carol's home: a directory, or the prefix ``carol`` in the bucket."""
    if storage_backend == "s3":
        home: Any = S3Path(request.getfixturevalue("s3_bucket"), "carol")
    else:
        home = tmp_path / "homes" / "carol"
    (home / "incoming").mkdir(parents=True)
    (home / "reports").mkdir()
    (home / "reports" / "q1.txt").write_bytes(b"quarter one")
    (home / "notes.txt").write_bytes(b"my notes")
    return home


@pytest.fixture
def staff_account(staff: FTPUserGroup, carol_home: Any) -> FTPUserAccount:
    user = get_user_model().objects.create_user("carol", password=PASSWORD)
    home_dir = carol_home.key if isinstance(carol_home, S3Path) else str(carol_home)
    return FTPUserAccount.objects.create(user=user, group=staff, home_dir=home_dir)


def test_model_has_perm_with_ftp_and_filesystem_paths(staff_account):
    home = staff_account.get_home_dir()
    assert staff_account.has_perm("w", "/incoming/new.txt")
    assert not staff_account.has_perm("r", "/incoming/new.txt")
    assert staff_account.has_perm("r", f"{home}/reports/q1.txt")
    assert not staff_account.has_perm("w", f"{home}/reports/q1.txt")
    assert staff_account.has_perm("d", f"{home}/notes.txt")
    assert staff_account.has_perm("w")  # no path: the group's permission


def test_rule_path_is_normalized_on_save(staff):
    rule = FTPPathRule.objects.create(group=staff, path="drop/", permission="w")
    rule.refresh_from_db()
    assert rule.path == "/drop"


def test_rule_needs_exactly_one_owner(staff_account, staff):
    with pytest.raises(IntegrityError), transaction.atomic():
        FTPPathRule.objects.create(path="/x", permission="r")
    with pytest.raises(IntegrityError), transaction.atomic():
        FTPPathRule.objects.create(group=staff, account=staff_account, path="/x", permission="r")


def test_rule_full_clean(staff):
    with pytest.raises(ValidationError) as info:
        FTPPathRule(group=staff, path="/a/../b", permission="rx").full_clean()
    assert set(info.value.message_dict) == {"path", "permission"}
    with pytest.raises(ValidationError, match="already exists"):
        FTPPathRule(group=staff, path="reports/", permission="r").full_clean()
    with pytest.raises(ValidationError, match="group or to an account"):
        FTPPathRule(path="/new", permission="r").full_clean()


def test_snapshot_loads_rules_in_one_query(staff_account, django_assert_num_queries):
    account = authorizers.FTPAccountAuthorizer().get_account("carol")
    FTPPathRule.objects.create(account=account, path="/reports", permission="elrw")
    with django_assert_num_queries(1):
        snapshot = authorizers.AccountSnapshot.from_account(account)
    assert snapshot.rules.group == {"/incoming": "w", "/reports": "elr"}
    assert snapshot.rules.account == {"/reports": "elrw"}
    session = authorizers.SessionAuthorizer(authorizers.FTPAccountAuthorizer(), snapshot)
    home = account.get_home_dir()
    with django_assert_num_queries(0):
        assert session.has_perm("carol", "w", f"{home}/reports/x")
        assert not session.has_perm("carol", "r", f"{home}/incoming/x")
        assert not session.has_perm("carol", "r", "/etc/passwd")
        assert session.perms_for(f"{home}/incoming") == "w"


# --- a real server: home read-write, /incoming write-only, /reports read-only


@pytest.fixture
def carol(ftp_server, staff_account):
    client = ftp_server.connect("carol")
    yield client
    try:
        client.quit()
    except (OSError, EOFError, ftplib.Error):
        client.close()


def _refused(call, *args) -> str:
    with pytest.raises(ftplib.error_perm) as info:
        call(*args)
    return str(info.value)


def retr(ftp: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def test_home_is_read_write(carol, staff_account, carol_home):
    home = carol_home
    carol.storbinary("STOR mine.txt", io.BytesIO(b"mine"))
    assert retr(carol, "mine.txt") == b"mine"
    assert "notes.txt" in carol.nlst()
    carol.mkd("sub")
    carol.delete("mine.txt")
    assert not (home / "mine.txt").exists()
    assert (home / "sub").is_dir()


def test_incoming_is_write_only(carol, staff_account, carol_home):
    home = carol_home
    carol.storbinary("STOR /incoming/upload.txt", io.BytesIO(b"dropped"))
    assert (home / "incoming" / "upload.txt").read_bytes() == b"dropped"
    assert _refused(retr, carol, "/incoming/upload.txt").startswith("550")
    assert _refused(carol.nlst, "/incoming").startswith("550")
    assert _refused(carol.retrlines, "LIST /incoming").startswith("550")
    assert _refused(carol.cwd, "/incoming").startswith("550")
    assert _refused(carol.delete, "/incoming/upload.txt").startswith("550")
    assert _refused(carol.rename, "/incoming/upload.txt", "/stolen.txt").startswith("550")
    assert _refused(carol.sendcmd, "SIZE /incoming/upload.txt").startswith("550")
    assert (home / "incoming" / "upload.txt").exists()
    assert carol.voidcmd("NOOP").startswith("200")


def test_reports_is_read_only(carol, staff_account, carol_home):
    home = carol_home
    assert retr(carol, "/reports/q1.txt") == b"quarter one"
    assert carol.nlst("/reports") == ["/reports/q1.txt"] or carol.nlst("/reports") == ["q1.txt"]
    carol.cwd("/reports")
    assert _refused(carol.storbinary, "STOR new.txt", io.BytesIO(b"x")).startswith("550")
    assert _refused(carol.storbinary, "APPE q1.txt", io.BytesIO(b"x")).startswith("550")
    assert _refused(carol.delete, "q1.txt").startswith("550")
    assert _refused(carol.mkd, "sub").startswith("550")
    assert _refused(carol.rename, "q1.txt", "/moved.txt").startswith("550")
    assert _refused(carol.rename, "/notes.txt", "/reports/notes.txt").startswith("550")
    assert _refused(carol.rmd, "/reports").startswith("550")
    assert _refused(carol.sendcmd, "STOU").startswith("550")
    assert sorted(p.name for p in (home / "reports").iterdir()) == ["q1.txt"]
    assert (home / "reports" / "q1.txt").read_bytes() == b"quarter one"


def test_parent_of_a_rule_cannot_be_renamed(ftp_server, staff, staff_account, carol_home):
    home = carol_home
    (home / "data" / "reports").mkdir(parents=True)
    FTPPathRule.objects.create(group=staff, path="/data/reports", permission="elr")
    client = ftp_server.connect("carol")
    assert _refused(client.rename, "/data", "/elsewhere").startswith("550")
    assert (home / "data" / "reports").is_dir()
    client.mkd("/other")
    client.rename("/other", "/other2")  # no rule below: allowed
    client.quit()


def test_account_rule_overrides_the_group_rule(ftp_server, staff, staff_account, make_account):
    FTPPathRule.objects.create(account=staff_account, path="/reports", permission="elrw")
    client = ftp_server.connect("carol")
    client.storbinary("STOR /reports/q2.txt", io.BytesIO(b"quarter two"))
    assert _refused(client.delete, "/reports/q2.txt").startswith("550")
    client.quit()
    # Another member of the group keeps the group's read-only rule.
    other = make_account("dave", home=Path(staff_account.home_dir))  # noqa
    other.group = staff
    other.save()
    client = ftp_server.connect("dave")
    assert _refused(client.storbinary, "STOR /reports/q3.txt", io.BytesIO(b"x")).startswith("550")
    client.quit()


@pytest.mark.storages("disk")  # symlinks
def test_symlink_into_a_read_only_place_is_read_only(carol, staff_account, carol_home):
    home = carol_home
    (home / "shortcut").symlink_to(home / "reports")
    assert retr(carol, "/shortcut/q1.txt") == b"quarter one"
    assert _refused(carol.storbinary, "STOR /shortcut/x.txt", io.BytesIO(b"x")).startswith("550")
    assert _refused(carol.delete, "/shortcut/q1.txt").startswith("550")
    assert not (home / "reports" / "x.txt").exists()


def test_mlsd_facts_follow_the_rules(carol):
    facts = dict(carol.mlsd("/", facts=["type", "perm"]))
    assert facts["reports"]["perm"] == "el"
    assert "c" in facts["incoming"]["perm"] and "l" not in facts["incoming"]["perm"]
    assert "w" in facts["notes.txt"]["perm"] and "d" in facts["notes.txt"]["perm"]
    reports = dict(carol.mlsd("/reports", facts=["type", "perm"]))
    assert reports["q1.txt"]["perm"] == "r"
    line = carol.sendcmd("MLST /reports/q1.txt")
    assert "perm=r;" in line


def test_no_sql_while_a_session_runs_commands(carol, monkeypatch):
    from django.db.backends import utils as db_utils

    session_queries: list[str] = []
    original = db_utils.CursorWrapper._execute

    def counting(self, sql, *args, **kwargs):
        if threading.current_thread().name.startswith("ftp-session"):
            session_queries.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute", counting)
    carol.storbinary("STOR /incoming/a.txt", io.BytesIO(b"a"))
    retr(carol, "/reports/q1.txt")
    carol.nlst("/reports")
    _refused(carol.nlst, "/incoming")
    carol.mlsd("/")
    carol.voidcmd("NOOP")
    assert session_queries == []


# --- commands


def test_ftppathrule_command(staff_account, staff):
    out = StringIO()
    call_command("ftppathrule", "add", "--group", "staff", "archive/", "elr", stdout=out)
    assert "/archive=elr" in out.getvalue() and "added" in out.getvalue()
    call_command("ftppathrule", "add", "--group", "staff", "/archive", "el", stdout=out)
    assert FTPPathRule.objects.get(group=staff, path="/archive").permission == "el"
    call_command("ftppathrule", "add", "--account", "carol", "/reports", "elrw", stdout=out)
    out = StringIO()
    call_command("ftppathrule", "list", "--account", "carol", stdout=out)
    listing = out.getvalue()
    assert 'account "carol"' in listing and 'group "staff"' in listing
    assert listing.index("/archive") < listing.index("/incoming")
    out = StringIO()
    call_command("ftppathrule", "show", "--account", "carol", "/reports/q1.txt", stdout=out)
    assert out.getvalue().strip() == (
        'carol at /reports/q1.txt: "elrw" (the account\'s rule on /reports)'
    )
    out = StringIO()
    call_command("ftppathrule", "show", "--account", "carol", "/x", stdout=out)
    assert 'no rule matches: the permission of group "staff"' in out.getvalue()
    call_command("ftppathrule", "remove", "--account", "carol", "/reports", stdout=out)
    assert not FTPPathRule.objects.filter(account=staff_account).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--group", "nope", "/x", "r"], 'group "nope" does not exist'),
        (["add", "--account", "nobody", "/x", "r"], 'account "nobody" does not exist'),
        (["add", "--group", "staff", "/../etc", "r"], "'..' is not allowed"),
        (["add", "--group", "staff", "/x", "rwx"], "unknown letter(s) 'x'"),
        (["remove", "--group", "staff", "/nothing"], "has no path rule on /nothing"),
    ],
)
def test_ftppathrule_command_errors(staff, args, message):
    with pytest.raises(CommandError) as info:
        call_command("ftppathrule", *args, stdout=StringIO())
    assert message in str(info.value)


def test_create_commands_take_path_rules(db, tmp_path):
    get_user_model().objects.create_user("erin", password=PASSWORD)
    call_command(
        "createftpusergroup",
        "drop",
        "--path-rule",
        "/incoming=w",
        "--path-rule",
        "reports=elr",
        stdout=StringIO(),
    )
    group = FTPUserGroup.objects.get(name="drop")
    assert dict(group.path_rules.values_list("path", "permission")) == {
        "/incoming": "w",
        "/reports": "elr",
    }
    call_command(
        "createftpuseraccount", "erin", "drop", "--path-rule", "/private=", stdout=StringIO()
    )
    account = FTPUserAccount.objects.get(user__username="erin")
    assert account.get_path_rules().perms_for("/private/x") == ""
    with pytest.raises(CommandError, match="PATH=PERMISSION"):
        call_command("createftpusergroup", "bad", "--path-rule", "/x", stdout=StringIO())
    assert not FTPUserGroup.objects.filter(name="bad").exists()


# --- admin


def test_admin_inlines_edit_rules(admin_client, staff, staff_account):
    url = f"/admin/django_ftpserver/ftpusergroup/{staff.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"path rules (longest matching path wins)" in page.content.lower()
    rules = list(staff.path_rules.order_by("pk"))
    data = {
        "name": "staff",
        "permission": "elradfmw",
        "home_dir": "",
        "path_rules-TOTAL_FORMS": "3",
        "path_rules-INITIAL_FORMS": "2",
        "path_rules-MIN_NUM_FORMS": "0",
        "path_rules-MAX_NUM_FORMS": "1000",
    }
    for i, rule in enumerate(rules):
        data |= {
            f"path_rules-{i}-id": str(rule.pk),
            f"path_rules-{i}-group": str(staff.pk),
            f"path_rules-{i}-path": rule.path,
            f"path_rules-{i}-permission": rule.permission,
        }
    data |= {
        "path_rules-2-group": str(staff.pk),
        "path_rules-2-path": "archive/",
        "path_rules-2-permission": "el",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert staff.path_rules.filter(path="/archive", permission="el").exists()

    data["path_rules-2-path"] = "/a/../b"
    data["path_rules-2-permission"] = "rx"
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert b"is not allowed" in response.content and b"unknown letter" in response.content

    account_url = f"/admin/django_ftpserver/ftpuseraccount/{staff_account.pk}/change/"
    page = admin_client.get(account_url)
    assert page.status_code == 200 and b"path_rules-TOTAL_FORMS" in page.content
