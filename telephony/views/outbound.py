"""Portal pages: placing an outbound call."""

urlpatterns: list = []
