"""Portal pages: calls."""

urlpatterns: list = []
