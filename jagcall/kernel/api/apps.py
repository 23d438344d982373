from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The API's shared conventions (jagcall/kernel/api/). No models."""

    name = "jagcall.kernel.api"
    label = "jagcall_api"
    verbose_name = "API conventions"

    def ready(self):
        from jagcall.kernel.api import schema  # noqa: F401  (registers FallbackScheme, the OpenAPI extension of last resort)
