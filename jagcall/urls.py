from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from jagcall import health

admin.site.site_header = "JagCall back office"
admin.site.site_title = "JagCall back office"
admin.site.index_title = "Support"
# The back office signs in through the same flow as the portal (with its second factor).
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("auth/", include("allauth.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("sso/", include("accounts.sso_urls")),
    path("", include("accounts.urls")),
]

handler403 = "jagcall.views.permission_denied"
handler404 = "jagcall.views.page_not_found"
handler500 = "jagcall.views.server_error"
