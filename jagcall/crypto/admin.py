from django.contrib import admin

from jagcall.crypto.models import OrganizationKeyset, PlatformKeyset, ReencryptionCheckpoint


@admin.register(OrganizationKeyset)
class OrganizationKeysetAdmin(admin.ModelAdmin):
    """Key status for support; the (wrapped) key material itself is never shown."""

    list_display = ("organization", "created_at", "rotated_at", "destroyed_at", "master_key_id")
    list_filter = ("destroyed_at", "rotated_at")
    search_fields = ("organization__name", "organization__slug", "=organization__id")
    list_select_related = ("organization",)
    fields = ("organization", "created_at", "rotated_at", "destroyed_at", "master_key_id")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # destroying keys is crypto-shredding: a service, never a click here


@admin.register(ReencryptionCheckpoint)
class ReencryptionCheckpointAdmin(admin.ModelAdmin):
    list_display = ("target", "done", "rewritten", "started_at", "updated_at", "finished_at")
    search_fields = ("target",)
    readonly_fields = ("target", "last_pk", "done", "rewritten", "started_at", "updated_at", "finished_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PlatformKeyset)
class PlatformKeysetAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at", "rotated_at", "master_key_id")
    search_fields = ("name",)
    fields = ("name", "created_at", "rotated_at", "master_key_id")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
