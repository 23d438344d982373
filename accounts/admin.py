"""The support back office for accounts: find anyone or any organization in one search."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.utils.html import format_html_join

from accounts.principals import Principal
from accounts import services
from accounts.models import ApiKey, Invitation, Membership, Organization, OrganizationStatus, User
from accounts.sso import services as sso_services
from accounts.sso.models import SamlConfiguration, SamlIdentity, SsoDomain
from accounts.permissions import PERMISSIONS, has_permission
from jagcall.kernel.admin import BackOfficeInline, ReadOnlyModelAdmin


class MembershipInline(BackOfficeInline):
    model = Membership
    fk_name = "organization"
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("user", "role", "created_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "plan_code", "status", "member_count", "created_at")
    list_filter = ("status", "plan_code", "created_at")
    search_fields = ("name", "slug", "memberships__user__email", "=id")
    readonly_fields = ("id", "slug", "status", "created_at", "updated_at", "terminated_at")
    fields = ("id", "name", "slug", "plan_code", "concurrent_calls_limit", "status", "created_at", "updated_at",
              "terminated_at")  # fmt: skip
    inlines = [MembershipInline]
    actions = ["terminate"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("memberships", distinct=True))

    def get_search_results(self, request, queryset, search_term):
        queryset, _dupes = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj):
        return obj._members

    @admin.action(description="Terminate selected organizations (data kept until purge)")
    def terminate(self, request, queryset):
        count = 0
        for organization in queryset.filter(status=OrganizationStatus.ACTIVE):
            services.organization_terminate(organization=organization, actor=Principal.support(request.user))
            count += 1
        self.message_user(request, f"{count} organization(s) terminated.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        return False  # organizations are terminated, then purged by the retention job


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "name", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "name", "memberships__organization__name", "memberships__organization__slug")
    readonly_fields = ("id", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_search_results(self, request, queryset, search_term):
        queryset, _dupes = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    actions = ["disable"]

    @admin.action(description="Disable selected people (ends all their sessions now)")
    def disable(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True):
            services.user_disable(user=user, actor=request.user)
            count += 1
        self.message_user(request, f"{count} person(s) disabled and signed out everywhere.", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__name", "organization__name", "organization__slug")
    list_select_related = ("user", "organization")
    readonly_fields = ("id", "organization", "user", "role", "created_at", "updated_at", "rights")
    fields = readonly_fields

    @admin.display(description="may (from the permission table)")
    def rights(self, obj):
        allowed = [label for action, (_roles, label) in PERMISSIONS.items() if has_permission(obj.role, action)]
        return format_html_join("", "<div>{}</div>", ((label,) for label in allowed))


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyModelAdmin):
    list_display = ("email", "organization", "role", "status", "created_at", "expires_at")
    list_filter = ("role", "created_at")
    search_fields = ("email", "organization__name", "organization__slug")
    list_select_related = ("organization",)
    # [!!] token_hash never shown; the token itself is never stored.
    fields = ("id", "organization", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by", "revoked_at")
    readonly_fields = fields


@admin.register(SamlConfiguration)
class SamlConfigurationAdmin(ReadOnlyModelAdmin):
    """Read-only: owners set single sign-on up in the portal (accounts.sso.sso_configure)."""

    list_display = ("organization", "idp_entity_id", "enabled", "require_sso", "updated_at")
    list_filter = ("enabled", "require_sso")
    search_fields = ("organization__name", "organization__slug", "idp_entity_id")
    list_select_related = ("organization",)
    fields = ("id", "organization", "idp_entity_id", "idp_metadata_url", "enabled", "require_sso", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(SamlIdentity)
class SamlIdentityAdmin(ReadOnlyModelAdmin):
    """Read-only: identities are made by single sign-on itself; deleting one unlinks the person."""

    list_display = ("user", "organization", "idp_entity_id", "name_id", "last_login_at")
    search_fields = ("user__email", "organization__name", "organization__slug", "name_id")
    list_select_related = ("user", "organization")
    fields = ("id", "organization", "user", "idp_entity_id", "name_id", "created_at", "last_login_at")
    readonly_fields = fields


@admin.register(SsoDomain)
class SsoDomainAdmin(ReadOnlyModelAdmin):
    """Email domains claimed for single sign-on. Read-only but for one action: support's approval.

    [!!] Approve only once the customer has shown that their organization owns
    the domain (e.g. from the domain's registrant address); every approval is
    audited with the staff member as the actor (accounts.sso.services.sso_domain_approve).
    """

    list_display = ("domain", "organization", "verified_at", "verification_method", "verified_by", "created_at")
    list_filter = ("verification_method",)
    search_fields = ("domain", "organization__name", "organization__slug")
    list_select_related = ("organization", "verified_by")
    # [!!] The token is public once published, but it is not shown here: support never needs it.
    fields = (
        "id", "organization", "domain", "created_at", "created_by", "verified_at", "verification_method",
        "verified_by", "last_checked_at",
    )
    readonly_fields = fields
    actions = ["approve"]

    @admin.action(description="Approve selected domains (the customer showed they own them)")
    def approve(self, request, queryset):
        count = 0
        for row in queryset.select_related("organization").filter(verified_at__isnull=True):
            sso_services.sso_domain_approve(domain=row, actor=request.user)
            count += 1
        self.message_user(request, f"{count} domain(s) approved for single sign-on.", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyModelAdmin):
    """[!!] Never the hash: the prefix is enough to find a key a customer mentions."""

    list_display = ("name", "prefix", "organization", "status", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    search_fields = ("prefix", "name", "organization__slug", "=id")
    fields = (
        "id", "organization", "name", "prefix", "scopes", "created_by", "created_at",
        "expires_at", "last_used_at", "last_used_ip", "revoked_at", "revoked_by",
    )
    readonly_fields = fields
    list_select_related = ("organization",)
