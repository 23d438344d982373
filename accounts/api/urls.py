from django.urls import path

from accounts.api import views
from accounts.api_keys import api as api_keys_api
from accounts.jwt import api as jwt_api

app_name = "api"

urlpatterns: list = [
    # Token endpoints: the body is the credential; the token they mint is bound to one organization.
    path("auth/token", jwt_api.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh", jwt_api.TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/token/revoke", jwt_api.TokenRevokeApi.as_view(), name="token-revoke"),
    # Organization-bound (OrganizationAPIView): the organization comes from the token.
    path("me", views.MeApi.as_view(), name="me"),
    path("api-keys", api_keys_api.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<uuid:api_key_id>", api_keys_api.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("organization", views.OrganizationDetailApi.as_view(), name="organization-detail"),
    path("members", views.MembershipListApi.as_view(), name="member-list"),
    path("members/<uuid:membership_id>", views.MembershipDetailApi.as_view(), name="member-detail"),
]
