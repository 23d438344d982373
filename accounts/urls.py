from django.urls import path

from accounts import views
from accounts.api_keys import views as api_keys_views
from accounts.sso import views as sso_views

app_name = "accounts"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("orgs/", views.OrganizationListView.as_view(), name="organization-list"),
    path("orgs/new/", views.OrganizationCreateView.as_view(), name="organization-create"),
    path("invitations/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("o/<slug:org_slug>/", views.DashboardView.as_view(), name="dashboard"),
    path("o/<slug:org_slug>/settings/", views.OrganizationSettingsView.as_view(), name="organization-settings"),
    path("o/<slug:org_slug>/settings/security/", views.OrganizationSecurityView.as_view(), name="organization-security"),
    path("o/<slug:org_slug>/settings/sso/", sso_views.OrganizationSsoView.as_view(), name="organization-sso"),
    path("o/<slug:org_slug>/leave/", views.OrganizationLeaveView.as_view(), name="organization-leave"),
    path("o/<slug:org_slug>/team/", views.TeamView.as_view(), name="team"),
    path("o/<slug:org_slug>/team/invitations/", views.InvitationCreateView.as_view(), name="invitation-create"),
    path(
        "o/<slug:org_slug>/team/invitations/<uuid:invitation_id>/revoke/",
        views.InvitationRevokeView.as_view(),
        name="invitation-revoke",
    ),
    path("o/<slug:org_slug>/team/<uuid:membership_id>/role/", views.MembershipRoleChangeView.as_view(), name="membership-role"),
    path("o/<slug:org_slug>/team/<uuid:membership_id>/remove/", views.MembershipRemoveView.as_view(), name="membership-remove"),
]

urlpatterns += [
    path("o/<slug:org_slug>/settings/api-keys/", api_keys_views.ApiKeyListView.as_view(), name="api-key-list"),
    path(
        "o/<slug:org_slug>/settings/api-keys/<uuid:api_key_id>/revoke/",
        api_keys_views.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
]
