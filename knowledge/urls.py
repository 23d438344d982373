"""Knowledge's portal pages, under /o/<org_slug>/knowledge/."""

from knowledge import views

app_name = "knowledge"

urlpatterns = views.urlpatterns
