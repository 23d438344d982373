"""All of OAuth's addresses, mounted at the root by jagcall/urls.py.

- ``/oauth/authorize``, ``/oauth/token``, ``/oauth/revoke_token``: the
  authorization server (a trailing slash is accepted too). The toolkit's own
  application and token management pages are not mounted: the portal pages
  below replace them.
- ``/o/<org_slug>/settings/oauth-apps/…``: an organization's applications.
- ``/o/<org_slug>/settings/connected-apps/…``: the applications acting in an
  organization (whoever registered them), which its owners and admins may
  disconnect from it.
- ``/account/connected-apps/…``: the applications a person has connected.
"""

from django.urls import path, re_path

from accounts.oauth import endpoints, views

app_name = "oauth"

urlpatterns = [
    re_path(r"^oauth/authorize/?$", endpoints.AuthorizationView.as_view(), name="authorize"),
    re_path(r"^oauth/token/?$", endpoints.TokenView.as_view(), name="token"),
    re_path(r"^oauth/revoke_token/?$", endpoints.RevokeTokenView.as_view(), name="revoke-token"),
    path("account/connected-apps/", views.ConnectionListView.as_view(), name="connection-list"),
    path(
        "account/connected-apps/<uuid:application_id>/revoke/",
        views.ConnectionRevokeView.as_view(),
        name="connection-revoke",
    ),
    path("o/<slug:org_slug>/settings/oauth-apps/", views.ApplicationListView.as_view(), name="application-list"),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/new/", views.ApplicationCreateView.as_view(), name="application-create"
    ),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/<uuid:application_id>/",
        views.ApplicationDetailView.as_view(),
        name="application-detail",
    ),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/<uuid:application_id>/edit/",
        views.ApplicationUpdateView.as_view(),
        name="application-update",
    ),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/<uuid:application_id>/rotate-secret/",
        views.ApplicationRotateSecretView.as_view(),
        name="application-rotate-secret",
    ),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/<uuid:application_id>/revoke-tokens/",
        views.ApplicationRevokeTokensView.as_view(),
        name="application-revoke-tokens",
    ),
    path(
        "o/<slug:org_slug>/settings/oauth-apps/<uuid:application_id>/delete/",
        views.ApplicationDeleteView.as_view(),
        name="application-delete",
    ),
    path(
        "o/<slug:org_slug>/settings/connected-apps/",
        views.OrganizationConnectionListView.as_view(),
        name="organization-connection-list",
    ),
    path(
        "o/<slug:org_slug>/settings/connected-apps/<uuid:application_id>/disconnect/",
        views.OrganizationConnectionRevokeView.as_view(),
        name="organization-connection-revoke",
    ),
]
