"""API: agents."""

urlpatterns: list = []
