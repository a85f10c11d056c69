"""The admin: FTP groups and accounts with their path rules and quotas, and the live sessions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import models
from .auth import permissions
from .ops import sessions as livesessions


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
    # In the form's order: the model lists the fields it inherits
    # (models.QuotaFields) first.
    fields = ("name", "permission", "home_dir", "quota_bytes", "quota_files")
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


@admin.register(models.FTPSession)
class FTPSessionAdmin(admin.ModelAdmin):
    """ "FTP sessions": every open session of every server, read from the cache.

    Read-only: a staff user needs ``view_ftpsession`` to see the page and
    ``disconnect_ftpsession`` to end a session. There is no table behind
    the model; the list comes from ``livesessions.list_sessions()``.
    """

    change_list_template = "admin/django_ftpserver/ftpsession/change_list.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_ftpserver.view_ftpsession")

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_ftpserver.disconnect_ftpsession")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="{}_{}_changelist".format(*info),
            ),
            path(
                "<str:session_id>/disconnect/",
                self.admin_site.admin_view(self.disconnect_view),
                name="{}_{}_disconnect".format(*info),
            ),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        error = None
        try:
            sessions = livesessions.list_sessions()
        except Exception as exc:  # the cache is down: say so on the page
            sessions = []
            error = f"{type(exc).__name__}: {exc}"
        servers = sorted({session.server for session in sessions})
        context = {
            **self.admin_site.each_context(request),
            "title": capfirst(self.opts.verbose_name_plural),
            "subtitle": None,
            "opts": self.opts,
            "sessions": sessions,
            "servers": servers,
            "cache_alias": livesessions.cache_alias(),
            "process_local": livesessions.cache_is_process_local(),
            "error": error,
            "can_disconnect": self.has_disconnect_permission(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_list_template, context)

    def disconnect_view(self, request: HttpRequest, session_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_disconnect_permission(request):
            raise PermissionDenied
        session = livesessions.request_disconnect(session_id)
        if session is None:
            self.message_user(
                request, f"FTP session {session_id} is not open (any more).", messages.WARNING
            )
        else:
            who = session.username or "a client not logged in"
            self.message_user(
                request,
                f"Disconnecting FTP session {session_id} ({who} from {session.remote} on "
                f"{session.server}): its server closes it within two seconds.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:django_ftpserver_ftpsession_changelist"))
