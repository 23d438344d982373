"""Signed inbound webhooks: one base for every provider's ``/hooks/<provider>/...`` routes.

    from jagcall.kernel.webhooks import SignedWebhookView, TwilioWebhookView, webhook_refused

See views.py for the contract and docs/security/webhooks.md for the design.
The names are loaded on first use: this package is also a Django app, whose
models cannot be imported while apps load.
"""

_EXPORTS = {
    "SignedWebhookView": "jagcall.kernel.webhooks.views",
    "TwilioWebhookView": "jagcall.kernel.webhooks.views",
    "Outcome": "jagcall.kernel.webhooks.views",
    "SigningKeyUnavailable": "jagcall.kernel.webhooks.views",
    "webhook_refused": "jagcall.kernel.webhooks.signals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
