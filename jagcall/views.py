"""Error pages that say what happened and where to go next."""

from django.shortcuts import render


def permission_denied(request, exception=None):
    return render(request, "403.html", {"reason": str(exception or "") or None}, status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # Rendered without the request's context processors: they read the user and
    # session from the database, which may be what just failed.
    from django.http import HttpResponseServerError
    from django.template import loader

    body = loader.get_template("500.html").render({"request_id": getattr(request, "request_id", None)})
    return HttpResponseServerError(body)
