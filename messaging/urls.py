"""Messaging's portal pages, under /o/<org_slug>/messages/ (messaging/views.py)."""

from django.urls import path

from messaging import views

app_name = "messaging"

urlpatterns = [
    path("", views.InboxView.as_view(), name="inbox"),
    path("new/", views.ComposeView.as_view(), name="compose"),
    path("simulate/", views.SimulateTextView.as_view(), name="simulate-text"),
    path("<uuid:conversation_id>/", views.ThreadView.as_view(), name="thread"),
    path("<uuid:conversation_id>/reply/", views.ThreadReplyView.as_view(), name="thread-reply"),
    path("<uuid:conversation_id>/read/", views.ThreadReadView.as_view(), name="thread-read"),
    path("<uuid:conversation_id>/take-over/", views.ThreadTakeOverView.as_view(), name="thread-take-over"),
    path("<uuid:conversation_id>/release/", views.ThreadReleaseView.as_view(), name="thread-release"),
    path("<uuid:conversation_id>/opt-out/undo/", views.OptOutUndoView.as_view(), name="thread-opt-out-undo"),
    path("<uuid:conversation_id>/opt-out/keep/", views.OptOutKeepView.as_view(), name="thread-opt-out-keep"),
]

from messaging import urls_settings  # noqa: E402

urlpatterns += urls_settings.urlpatterns

from messaging import urls_contacts  # noqa: E402

urlpatterns += urls_contacts.urlpatterns
