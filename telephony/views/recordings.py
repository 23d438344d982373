"""Portal: a call's recording (streamed, decrypted on the fly) and the post-call steps' retry."""

urlpatterns: list = []
