"""Portal pages: numbers."""

urlpatterns: list = []
