"""Request ids for structured logs.

Every request gets an id: the X-Request-ID set by our nginx (validated), or
a fresh one. It is echoed in the response header and attached to every log
record emitted while the request is handled. The request itself is kept in
a context variable for the same span (``current_request()``).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_request: contextvars.ContextVar = contextvars.ContextVar("request", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

logger = logging.getLogger("jagcall.request")


def current_request_id() -> str:
    return _request_id.get()


def current_request():
    """The Django request being handled in this context, or None (tasks, commands, shells).

    Lets a service record who did something (the audit log) without every
    caller passing the request down; the caller's DRF credential is on it as
    ``request.auth`` once authentication has run.
    """
    return _request.get()


class ConsoleHandler(logging.StreamHandler):
    """The log lines to standard error as it was when logging was configured, until that stream is closed.

    A plain StreamHandler keeps writing to the stream it was configured with. Where that stream was a
    temporary replacement of standard error, since closed (a test runner's capture), a thread that logged
    afterwards lost its line ("I/O operation on closed file"). This one moves to the present standard error
    then. A replacement that is still open is not followed: Celery's worker replaces standard error with a
    proxy that logs what is written to it, and following it would loop.
    """

    def __init__(self):
        super().__init__(stream=sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False):
            present = sys.stderr if not getattr(sys.stderr, "closed", False) else sys.__stderr__
            with self.lock:  # not setStream: it would flush the closed stream first
                self.stream = present
        super().emit(record)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class RequestIdMiddleware:
    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get(self.header, "")
        request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        request_token = _request.set(request)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={"method": request.method, "path": request.path, "status": response.status_code},
            )
            return response
        finally:
            _request.reset(request_token)
            _request_id.reset(token)
