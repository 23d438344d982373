"""The kernel: what every app builds on, and which imports no app.

Encryption (``crypto``), the API's conventions (``api``), the embedded
development servers, logging, errors, health checks and back-office helpers.
Apps that the kernel needs to know about register themselves with it (for
example the API schema's organization base view, or the owner of
encryption keysets); the kernel never imports them. The import-linter
contracts in ``.importlinter`` keep it that way.
"""
