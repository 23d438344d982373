"""Back-office helpers shared by every app's admin.

[!!] The back office reads across organizations on purpose: it is for
support staff only, behind the platform's own second factor (accounts'
back-office guard). Querysets that fail closed outside an organization
(they offer ``unscoped(reason)``) are opened here, and only here, with that
reason.
"""

from django.contrib import admin
from django.forms.models import BaseInlineFormSet

BACK_OFFICE = "the back office: support staff, across organizations"


def back_office_queryset(queryset):
    return queryset.unscoped(BACK_OFFICE) if hasattr(queryset, "unscoped") else queryset


class BackOfficeInlineFormSet(BaseInlineFormSet):
    """Django builds each inline form's id field from the model's default manager: open it for staff."""

    def get_queryset(self):
        return back_office_queryset(super().get_queryset())

    def add_fields(self, form, index):
        super().add_fields(form, index)
        for field in form.fields.values():
            if hasattr(field, "queryset"):
                field.queryset = back_office_queryset(field.queryset)


class BackOfficeInline(admin.TabularInline):
    formset = BackOfficeInlineFormSet

    def get_queryset(self, request):
        return back_office_queryset(super().get_queryset(request))


class BackOfficeModelAdmin(admin.ModelAdmin):
    def get_queryset(self, request):
        return back_office_queryset(super().get_queryset(request))


class ReadOnlyModelAdmin(BackOfficeModelAdmin):
    """For records that change only through services (keys, checkpoints, identities): view, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
