"""The quota fields are declared once (``models.QuotaFields``) and worded per model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib import admin
from django.core.management import call_command

from django_ftpserver.models import FTPUserAccount, FTPUserGroup, QuotaFields


@pytest.mark.parametrize("model", [FTPUserGroup, FTPUserAccount])
def test_quota_fields_come_from_the_base(model) -> None:
    assert issubclass(model, QuotaFields)
    for name in ("quota_bytes", "quota_files"):
        field = model._meta.get_field(name)
        assert field.null and field.blank
        assert field.help_text  # worded by the model


def test_each_model_words_its_own_help() -> None:
    group = FTPUserGroup._meta.get_field("quota_bytes").help_text
    account = FTPUserAccount._meta.get_field("quota_bytes").help_text
    assert "each account of the group" in str(group)
    assert "the group's" in str(account)
    assert FTPUserGroup._meta.get_field("quota_bytes") is not FTPUserAccount._meta.get_field(
        "quota_bytes"
    )


@pytest.mark.django_db
def test_the_base_needs_no_migration() -> None:
    out = StringIO()
    call_command("makemigrations", "django_ftpserver", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_group_form_keeps_its_order() -> None:
    form = admin.site.get_model_admin(FTPUserGroup).get_form(None)
    assert list(form.base_fields) == [
        "name",
        "permission",
        "home_dir",
        "quota_bytes",
        "quota_files",
    ]
