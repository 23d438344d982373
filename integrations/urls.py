"""Portal pages of integrations, under /o/<org_slug>/settings/providers/."""

from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("", views.ProviderAccountListView.as_view(), name="provider-list"),
    path("disconnect/", views.ProviderAccountDisconnectView.as_view(), name="provider-disconnect"),
]
