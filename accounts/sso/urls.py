from django.urls import path

from accounts.sso import views as sso_views

app_name = "sso"

urlpatterns = [
    path("<slug:sso_slug>/metadata/", sso_views.SsoMetadataView.as_view(), name="metadata"),
    path("<slug:sso_slug>/login/", sso_views.SsoLoginView.as_view(), name="login"),
    path("<slug:sso_slug>/acs/", sso_views.SsoAssertionConsumerView.as_view(), name="acs"),
]
