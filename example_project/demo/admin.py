from django.contrib import admin

from .models import FTPAuditLog


@admin.register(FTPAuditLog)
class FTPAuditLogAdmin(admin.ModelAdmin):
    list_display = ("created", "event_type", "username", "remote_ip", "path", "reason")
    list_filter = ("event_type", "username", "created")
    search_fields = ("username", "path", "remote_ip")
    date_hierarchy = "created"
    readonly_fields = ("created", "event_type", "username", "remote_ip", "path", "reason")

    # The log is written by the FTP server only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
