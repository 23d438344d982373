"""Telephony's websocket routes (composed in jagcall/routing.py)."""

websocket_urlpatterns: list = []
