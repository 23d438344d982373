"""How an authentication class without an extension of its own is described.

An app describes its own authentication classes with drf-spectacular
``OpenApiAuthenticationExtension`` classes next to them (accounts does, in
accounts/api/schema.py), imported by its ``AppConfig.ready()``. Whatever is
left is described here from what the class answers, so adding a class to a
view never breaks schema generation.
"""

from __future__ import annotations

import inspect

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import force_instance, get_class
from rest_framework.authentication import SessionAuthentication

class FallbackScheme(OpenApiAuthenticationExtension):
    """Any authentication class without an extension of its own, described from what it answers.

    The lowest priority: a class's own extension (here, in drf-spectacular or
    next to the class) always wins over this one.
    """

    target_class = "rest_framework.authentication.BaseAuthentication"
    match_subclasses = True
    priority = -1

    def __init__(self, target):
        super().__init__(target)
        self.name = get_class(target).__name__

    def get_security_definition(self, auto_schema):
        doc = inspect.getdoc(get_class(self.target)) or ""
        description = doc.split("\n\n")[0].replace("\n", " ").strip()
        if isinstance(self.target, SessionAuthentication) or (
            inspect.isclass(self.target) and issubclass(self.target, SessionAuthentication)
        ):
            definition = {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
        else:
            try:
                challenge = force_instance(self.target).authenticate_header(auto_schema.view.request) or ""
            except Exception:  # the class is only asked, never trusted to answer
                challenge = ""
            word = challenge.split(" ", 1)[0].lower()
            if word in {"bearer", "basic", "digest"}:
                definition = {"type": "http", "scheme": word}
            else:
                definition = {"type": "apiKey", "in": "header", "name": "Authorization"}
        if description:
            definition["description"] = description
        return definition
