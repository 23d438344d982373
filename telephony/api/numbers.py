"""API: numbers."""

urlpatterns: list = []
