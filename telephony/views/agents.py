"""Portal pages: agents."""

urlpatterns: list = []
