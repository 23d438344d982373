"""The project's URLs plus a probe that holds a database connection for a moment and names its backend."""

from django.db import connection
from django.http import JsonResponse
from django.urls import include, path


def probe(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.05)")
        pid = cursor.fetchone()[0]
    return JsonResponse({"pid": pid})


urlpatterns = [path("pool-probe/", probe), path("", include("jagcall.urls"))]
