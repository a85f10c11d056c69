from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model

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
    list_display = ("name", "permission", "home_dir")
    search_fields = ("name",)
    inlines = [GroupPathRuleInline]


@admin.register(models.FTPUserAccount)
class FTPUserAccountAdmin(admin.ModelAdmin):
    list_display = ("user", "group", "home_dir", "last_login")
    list_filter = ("group",)
    list_select_related = ("user", "group")
    # USERNAME_FIELD, not "username": custom user models may not have one.
    search_fields = (f"user__{get_user_model().USERNAME_FIELD}", "group__name")
    raw_id_fields = ("user",)
    readonly_fields = ("last_login",)
    inlines = [AccountPathRuleInline]
