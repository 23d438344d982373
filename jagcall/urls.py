from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from jagcall.kernel import health

admin.site.site_header = "JagCall back office"
admin.site.site_title = "JagCall back office"
admin.site.index_title = "Support"
# The back office signs in through the same flow as the portal (with its second factor).
admin.site.login = secure_admin_login(admin.site.login)



def _api_v1_patterns():
    """/api/v1/: the API of every app in one namespace, so names read ``api:member-list``, ``api:audit-event-list``."""
    from accounts.api import urls as accounts_api
    from compliance.api import urls as compliance_api
    from knowledge.api import urls as knowledge_api
    from telephony.api import urls as telephony_api

    from messaging.api import urls as messaging_api

    apps = (accounts_api, compliance_api, telephony_api, knowledge_api, messaging_api)
    return [pattern for app in apps for pattern in app.urlpatterns], "api"


def _twilio_hooks():
    """/hooks/twilio/: Twilio's signed callbacks of telephony (calls) and messaging (texts), one namespace."""
    from messaging import webhooks as messaging_hooks
    from telephony import hooks as telephony_hooks

    return [*telephony_hooks.urlpatterns, *messaging_hooks.urlpatterns]


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("auth/", include("allauth.urls")),
    # The API's OpenAPI schema (YAML, or JSON by Accept or ?format=json) and its docs; both public.
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # One namespace ("api:…") for every app's endpoints; accounts' own come first.
    path("api/v1/", include(_api_v1_patterns())),
    path("sso/", include("accounts.sso.urls")),
    path("o/<slug:org_slug>/audit/", include("compliance.urls")),
    path("o/<slug:org_slug>/compliance/", include("compliance.portal_urls")),
    path("o/<slug:org_slug>/settings/providers/", include("integrations.urls")),
    path("o/<slug:org_slug>/knowledge/", include("knowledge.urls")),
    path("o/<slug:org_slug>/messages/", include("messaging.urls")),
    path("o/<slug:org_slug>/billing/", include("billing.urls")),
    path("o/<slug:org_slug>/", include("telephony.urls")),
    # Signed inbound webhooks of the providers (jagcall/kernel/webhooks/): no session, a signature.
    path("hooks/twilio/", include((_twilio_hooks(), "twilio-hooks"))),
    path("hooks/stripe/", include(("billing.webhooks", "stripe-hooks"))),
    path("", include("accounts.oauth.urls")),  # /oauth/… (authorization server), /account/connected-apps/, org OAuth apps
    path("", include("accounts.urls")),
]

handler403 = "jagcall.kernel.views.permission_denied"
handler404 = "jagcall.kernel.views.page_not_found"
handler500 = "jagcall.kernel.views.server_error"
# Also what allauth answers when its own limits are reached.
handler429 = "jagcall.kernel.views.too_many_requests"
