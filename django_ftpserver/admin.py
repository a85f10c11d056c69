from django.contrib import admin

from . import models


@admin.register(models.FTPUserGroup)
class FTPUserGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "permission", "home_dir")
    search_fields = ("name",)


@admin.register(models.FTPUserAccount)
class FTPUserAccountAdmin(admin.ModelAdmin):
    list_display = ("user", "group", "home_dir", "last_login")
    list_filter = ("group",)
    list_select_related = ("user", "group")
    search_fields = ("user__username", "group__name")
    raw_id_fields = ("user",)
    readonly_fields = ("last_login",)
