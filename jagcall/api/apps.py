from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The API's shared conventions (jagcall/api/). No models."""

    name = "jagcall.api"
    label = "jagcall_api"
    verbose_name = "API conventions"

    def ready(self):
        from jagcall.api import schema  # noqa: F401  (registers the OpenAPI authentication extensions)
