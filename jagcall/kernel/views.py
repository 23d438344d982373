"""Error pages that say what happened and where to go next."""

from django.shortcuts import render


def permission_denied(request, exception=None):
    return render(request, "403.html", {"reason": str(exception or "") or None}, status=403)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception=None):
    if _is_api(request):
        from django.http import JsonResponse

        from jagcall.kernel.api.errors import error_body

        return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}. See /api/docs/ for the endpoints."), status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if _is_api(request):
        from django.http import JsonResponse

        from jagcall.kernel.api.errors import error_body

        message = f"Something went wrong on our side (request {getattr(request, 'request_id', '-')}). Try again later."
        return JsonResponse(error_body("server_error", message), status=500)
    # Rendered without the request's context processors: they read the user and
    # session from the database, which may be what just failed.
    from django.http import HttpResponseServerError
    from django.template import loader

    body = loader.get_template("500.html").render({"request_id": getattr(request, "request_id", None)})
    return HttpResponseServerError(body)


def too_many_requests(request, exception=None, *, retry_after: int | None = None):
    """429 for portal pages (and the API's JSON shape under /api/), with Retry-After when known."""
    if _is_api(request):
        from django.http import JsonResponse

        from jagcall.kernel.api.errors import error_body

        wait = f"Wait {retry_after} seconds" if retry_after else "Wait a minute"
        response = JsonResponse(error_body("throttled", f"Too many requests. {wait} and try again."), status=429)
    else:
        response = render(request, "429.html", {"retry_after": retry_after}, status=429)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def service_unavailable(request, exception=None, *, retry_after: int | None = None):
    """503 when a service the request depends on is briefly down (the API's JSON shape under /api/).

    Rendered without the request's context processors: they read the session,
    which may live on the service that is down.
    """
    message = "This is briefly unavailable on our side. Try again in a minute."
    if _is_api(request):
        from django.http import JsonResponse

        from jagcall.kernel.api.errors import error_body

        response = JsonResponse(error_body("service_unavailable", message), status=503)
    else:
        from django.http import HttpResponse
        from django.template import loader

        body = loader.get_template("503.html").render({"retry_after": retry_after})
        response = HttpResponse(body, status=503)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
