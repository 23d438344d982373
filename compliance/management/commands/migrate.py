"""manage.py migrate, run as the role that owns the tables.

[!!] The application's own role (DATABASE_URL) owns nothing and cannot create
or alter tables; migrations need the owner (DATABASE_OWNER_URL, the "owner"
alias; the embedded server's superuser in development). This command is
Django's migrate with one change: ``--database`` defaults to that alias
(settings.MIGRATION_DATABASE) when it is configured. After the migrations,
compliance/roles.py grants the application's role its rights.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrateCommand


class Command(DjangoMigrateCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database=getattr(settings, "MIGRATION_DATABASE", "default"))
