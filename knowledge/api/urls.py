"""Knowledge's API endpoints (mounted in the one ``api`` namespace under /api/v1/)."""

from knowledge.api import views

urlpatterns = [*views.urlpatterns]
