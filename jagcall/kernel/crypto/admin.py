from django.contrib import admin

from jagcall.kernel.admin import ReadOnlyModelAdmin
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset, ReencryptionCheckpoint


@admin.register(OrganizationKeyset)
class OrganizationKeysetAdmin(ReadOnlyModelAdmin):
    """Key status for support; the (wrapped) key material itself is never shown.

    Destroying keys is crypto-shredding: a service call, never a click here.
    """

    list_display = ("organization_id", "created_at", "rotated_at", "destroyed_at", "master_key_id")
    list_filter = ("destroyed_at", "rotated_at")
    search_fields = ("=organization_id",)
    fields = ("organization_id", "created_at", "rotated_at", "destroyed_at", "master_key_id")
    readonly_fields = fields


@admin.register(ReencryptionCheckpoint)
class ReencryptionCheckpointAdmin(ReadOnlyModelAdmin):
    list_display = ("target", "done", "rewritten", "started_at", "updated_at", "finished_at")
    search_fields = ("target",)
    readonly_fields = ("target", "last_pk", "done", "rewritten", "started_at", "updated_at", "finished_at")


@admin.register(PlatformKeyset)
class PlatformKeysetAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "created_at", "rotated_at", "master_key_id")
    search_fields = ("name",)
    fields = ("name", "created_at", "rotated_at", "master_key_id")
    readonly_fields = fields
