from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from . import models, permissions


class PathRuleForm(forms.ModelForm):
    """Normalizes the path so that "incoming/" and "/incoming" are one rule."""

    class Meta:
        model = models.FTPPathRule
        fields = ("path", "permission")

    def clean_path(self) -> str:
        try:
            return permissions.normalize_rule_path(self.cleaned_data["path"])
        except permissions.InvalidRule as exc:
            raise forms.ValidationError(str(exc), code="invalid_path") from None


class GroupPathRuleInline(admin.TabularInline):
    """The group's path rules, edited on the group's page."""

    model = models.FTPPathRule
    form = PathRuleForm
    fk_name = "group"
    fields = ("path", "permission")
    extra = 0
    verbose_name = "path rule"
    verbose_name_plural = "path rules (longest matching path wins)"


class AccountPathRuleInline(GroupPathRuleInline):
    """The account's own path rules; at the same path they beat the group's."""

    fk_name = "account"


@admin.register(models.FTPUserGroup)
class FTPUserGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "permission", "home_dir", "quota_bytes", "quota_files")
    search_fields = ("name",)
    inlines = [GroupPathRuleInline]


@admin.register(models.FTPUserAccount)
class FTPUserAccountAdmin(admin.ModelAdmin):
    list_display = ("user", "group", "home_dir", "last_login", "usage", "quota")
    list_filter = ("group",)
    list_select_related = ("user", "group")
    # USERNAME_FIELD, not "username": custom user models may not have one.
    search_fields = (f"user__{get_user_model().USERNAME_FIELD}", "group__name")
    raw_id_fields = ("user",)
    readonly_fields = ("last_login", "used_bytes", "used_files", "usage_counted_at")
    fieldsets = (
        (None, {"fields": ("user", "group", "home_dir", "last_login")}),
        (
            _("Quota"),
            {
                "fields": (
                    ("quota_bytes", "quota_files"),
                    ("used_bytes", "used_files"),
                    "usage_counted_at",
                ),
                "description": _(
                    "Empty: the group's quota; 0: no limit. Usage is kept for accounts "
                    "with a limit; manage.py ftpquota recalc counts it again from the storage."
                ),
            },
        ),
    )
    inlines = [AccountPathRuleInline]

    @admin.display(description=_("Used"))
    def usage(self, account: models.FTPUserAccount) -> str:
        if account.usage_counted_at is None:
            return "-"
        return f"{filesizeformat(account.used_bytes)}, {account.used_files} files"

    @admin.display(description=_("Quota"))
    def quota(self, account: models.FTPUserAccount) -> str:
        limits = account.get_limits()
        if limits is None:
            return _("no limit")
        parts = []
        if limits.max_bytes:
            parts.append(filesizeformat(limits.max_bytes))
        if limits.max_files:
            parts.append(f"{limits.max_files} files")
        return ", ".join(parts)
