from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance: audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from compliance import diff, receivers

        diff.silence_auditlog()  # [!!] our table is the record: django-auditlog never writes LogEntry rows
        receivers.connect()
