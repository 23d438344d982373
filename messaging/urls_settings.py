"""The messaging settings pages, under /o/<org_slug>/messages/ (messaging/views_settings.py)."""

from django.urls import path

from messaging.views_settings import A2PCheckView, AgentRepliesView, MessagingSettingsView

urlpatterns = [
    path("settings/", MessagingSettingsView.as_view(), name="settings"),
    path("settings/numbers/<uuid:number_id>/agent-replies/", AgentRepliesView.as_view(), name="settings-agent-replies"),
    path("settings/numbers/<uuid:number_id>/a2p-check/", A2PCheckView.as_view(), name="settings-a2p-check"),
]
