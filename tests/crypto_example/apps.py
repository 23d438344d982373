from django.apps import AppConfig


class CryptoExampleConfig(AppConfig):
    """Example models using every encrypted field type; installed by the test settings only."""

    name = "tests.crypto_example"
    label = "crypto_example"
    default_auto_field = "django.db.models.BigAutoField"
