"""The kernel: what every app builds on, and which imports no app.

Encryption (``crypto``), the API's conventions and OpenAPI schema (``api``),
the embedded development servers, logging, errors, health checks and
back-office helpers. ``jagcall/`` around it is the wiring (settings, root URLs
and routing, ASGI/WSGI, the Celery app, the dev server), which composes the
apps and may import them; the kernel may not, not even inside a function.

An app that the kernel needs to know about registers itself from its
``AppConfig.ready()``: accounts registers its organization-bound API base
view with ``jagcall.kernel.api.registry`` and describes its own credentials
to the schema (accounts/api/schema.py); the owner of encryption keysets
registers with the crypto kernel. The import-linter contracts in
``.importlinter`` (run by ``make test``, jagcall/tests/test_architecture.py)
fail on any import of an app from here, and on any import cycle.
"""
