"""Browser calling: the softphone page and its access token."""

urlpatterns: list = []
