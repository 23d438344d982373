"""Portal routes of compliance tools, included under /o/<org_slug>/compliance/ by jagcall/urls.py."""

from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("do-not-call/", views.DoNotCallListView.as_view(), name="do-not-call-list"),
    path("do-not-call/<uuid:do_not_call_id>/remove/", views.DoNotCallRemoveView.as_view(), name="do-not-call-remove"),
]
