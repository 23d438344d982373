"""API: calls."""

urlpatterns: list = []
