"""The admin pages of FTP groups and accounts, rendered by Django's test client."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from django_ftpserver.models import FTPUserAccount, FTPUserGroup

pytestmark = pytest.mark.django_db


@pytest.fixture
def group() -> FTPUserGroup:
    return FTPUserGroup.objects.create(name="staff", permission="elr", home_dir="/srv/{username}")


@pytest.fixture
def ftp_account(group: FTPUserGroup) -> FTPUserAccount:
    user = get_user_model().objects.create_user("alice", password="x")
    return FTPUserAccount.objects.create(user=user, group=group)


def test_both_models_registered():
    assert admin.site.is_registered(FTPUserGroup)
    assert admin.site.is_registered(FTPUserAccount)


def test_user_is_a_raw_id_field():
    assert "user" in admin.site.get_model_admin(FTPUserAccount).raw_id_fields


@pytest.mark.parametrize("model", ["ftpusergroup", "ftpuseraccount"])
def test_changelist_empty(admin_client, model):
    response = admin_client.get(reverse(f"admin:django_ftpserver_{model}_changelist"))
    assert response.status_code == 200


def test_group_changelist(admin_client, ftp_account):
    response = admin_client.get(reverse("admin:django_ftpserver_ftpusergroup_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "staff" in content
    assert "/srv/{username}" in content


def test_account_changelist_search_and_filter(admin_client, ftp_account, group):
    url = reverse("admin:django_ftpserver_ftpuseraccount_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "alice" in response.content.decode()
    assert "alice" in admin_client.get(url, {"q": "alice"}).content.decode()
    assert response.context["cl"].result_count == 1
    found = admin_client.get(url, {"q": "nobody-like-this"})
    assert found.context["cl"].result_count == 0
    filtered = admin_client.get(url, {"group__id__exact": group.pk})
    assert filtered.context["cl"].result_count == 1


def test_account_add_page_uses_a_raw_id_widget(admin_client, group):
    response = admin_client.get(reverse("admin:django_ftpserver_ftpuseraccount_add"))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'class="vForeignKeyRawIdAdminField"' in content
    assert 'name="user"' in content
    assert "last_login" not in response.context["adminform"].form.fields


def test_group_add_page(admin_client):
    response = admin_client.get(reverse("admin:django_ftpserver_ftpusergroup_add"))
    assert response.status_code == 200
    assert 'name="permission"' in response.content.decode()


def _with_empty_inlines(client, url, data):
    """``data`` plus the management forms of the page's inlines (path rules)."""
    page = client.get(url)
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return data


def test_add_group_and_account_through_the_admin(admin_client, admin_user):
    url = reverse("admin:django_ftpserver_ftpusergroup_add")
    response = admin_client.post(
        url,
        _with_empty_inlines(
            admin_client, url, {"name": "editors", "permission": "elradfmwMT", "home_dir": ""}
        ),
    )
    assert response.status_code == 302
    group = FTPUserGroup.objects.get(name="editors")
    assert group.permission == "elradfmwMT"
    url = reverse("admin:django_ftpserver_ftpuseraccount_add")
    response = admin_client.post(
        url,
        _with_empty_inlines(
            admin_client, url, {"user": admin_user.pk, "group": group.pk, "home_dir": "/srv/admin"}
        ),
    )
    assert response.status_code == 302
    assert FTPUserAccount.objects.get(user=admin_user).home_dir == "/srv/admin"


def test_change_pages(admin_client, ftp_account):
    for url in (
        reverse("admin:django_ftpserver_ftpuseraccount_change", args=[ftp_account.pk]),
        reverse("admin:django_ftpserver_ftpusergroup_change", args=[ftp_account.group_id]),
    ):
        assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize(
    ("permission", "error"),
    [("elrX", "unknown letters 'X'"), ("eelr", "give each letter once")],
)
def test_admin_refuses_bad_permission_letters(admin_client, permission, error):
    response = admin_client.post(
        reverse("admin:django_ftpserver_ftpusergroup_add"),
        {"name": "bad", "permission": permission, "home_dir": ""},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["permission"] == [
        error + (", use letters of 'elradfmwMT'" if "unknown" in error else "")
    ]
    assert not FTPUserGroup.objects.exists()


def test_quotas_set_and_shown_in_the_admin(admin_client, ftp_account, group):
    from django.utils import timezone

    url = reverse("admin:django_ftpserver_ftpusergroup_change", args=[group.pk])
    data = {"name": "staff", "permission": "elr", "home_dir": "/srv/{username}"}
    data.update({"quota_bytes": "2097152", "quota_files": "50"})
    assert admin_client.post(url, _with_empty_inlines(admin_client, url, data)).status_code == 302
    group.refresh_from_db()
    assert (group.quota_bytes, group.quota_files) == (2097152, 50)

    # The account's own value wins over its group's; the usage is read-only.
    url = reverse("admin:django_ftpserver_ftpuseraccount_change", args=[ftp_account.pk])
    form = admin_client.get(url).context["adminform"].form
    assert {"quota_bytes", "quota_files"} <= set(form.fields)
    assert not {"used_bytes", "used_files", "usage_counted_at"} & set(form.fields)
    data = {"user": ftp_account.user_id, "group": group.pk, "home_dir": ""}
    data.update({"quota_bytes": "", "quota_files": "10", "used_bytes": "1", "used_files": "1"})
    assert admin_client.post(url, _with_empty_inlines(admin_client, url, data)).status_code == 302
    ftp_account.refresh_from_db()
    assert (ftp_account.quota_bytes, ftp_account.quota_files) == (None, 10)
    assert (ftp_account.used_bytes, ftp_account.used_files) == (0, 0)

    FTPUserAccount.objects.filter(pk=ftp_account.pk).update(
        used_bytes=1024 * 1024, used_files=3, usage_counted_at=timezone.now()
    )
    changelist = admin_client.get(reverse("admin:django_ftpserver_ftpuseraccount_changelist"))
    content = changelist.content.decode()
    assert "1.0\xa0MB, 3 files" in content
    assert "2.0\xa0MB, 10 files" in content
