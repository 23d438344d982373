"""The error a service raises when a rule says no.

Views turn it into a form error or a flash message, the API into a 4xx
with the error shape; the message is written for the person who has to fix
it, so it is shown as is.
"""

from __future__ import annotations


class ApplicationError(Exception):
    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status


class PermissionDenied(ApplicationError):
    def __init__(self, message: str = "Your role does not allow this.", *, code: str = "permission_denied"):
        super().__init__(message, code=code, status=403)
