"""Back-office helpers shared by every app's admin."""

from django.contrib import admin


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """For records that change only through services (keys, checkpoints, identities): view, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
