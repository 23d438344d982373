from django.urls import path

from accounts.api import views

app_name = "api"

urlpatterns: list = [
    # Token endpoints: the body is the credential; the token they mint is bound to one organization.
    path("auth/token", views.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh", views.TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/token/revoke", views.TokenRevokeApi.as_view(), name="token-revoke"),
    # Organization-bound (OrganizationAPIView): the organization comes from the token.
    path("me", views.MeApi.as_view(), name="me"),
    path("api-keys", views.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<uuid:api_key_id>", views.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("organization", views.OrganizationDetailApi.as_view(), name="organization-detail"),
    path("members", views.MembershipListApi.as_view(), name="member-list"),
    path("members/<uuid:membership_id>", views.MembershipDetailApi.as_view(), name="member-detail"),
]
