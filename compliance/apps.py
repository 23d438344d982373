from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance: audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core import checks
        from django.db.models.signals import post_migrate

        from compliance import diff, receivers, roles

        diff.silence_auditlog()  # [!!] our table is the record: django-auditlog never writes LogEntry rows
        receivers.connect()
        # [!!] After every migrate (as the owner): the application's role gets its rights and no more.
        post_migrate.connect(roles.on_post_migrate, sender=self, dispatch_uid="compliance.roles.grant_app_role")
        checks.register(roles.check_app_role, checks.Tags.database)
