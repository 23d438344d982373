"""Create a service key for an organization from the command line (operators only).

A key made here belongs to no person: it is a service key that acts within
the role chosen with ``--role`` (its scopes are cut to what that role
allows), so its rights are stated when it is made and hold everywhere.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.api_keys.services import api_key_create
from accounts.models import Organization, OrganizationStatus
from accounts.permissions import Role
from accounts.principals import Principal
from accounts.scopes import SCOPES, unknown_scopes
from jagcall.kernel.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key for an organization and print its secret (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug")
        parser.add_argument("--name", required=True, help="Key name, e.g. 'CRM sync'")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated scopes, from: {', '.join(SCOPES)}")
        parser.add_argument(
            "--role",
            required=True,
            choices=Role.values,
            help="The role whose rights the key acts within (e.g. admin for an integration that manages the team)",
        )
        parser.add_argument("--expires-days", type=int, help="Expire the key after this many days (default: never)")

    def handle(self, *args, org, name, scopes, role, expires_days, **options):
        organization = Organization.objects.filter(slug=org, status=OrganizationStatus.ACTIVE).first()
        if organization is None:
            raise CommandError(f"No active organization with the slug {org!r}.")
        requested = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = unknown_scopes(requested)
        if unknown:
            raise CommandError(f"Unknown scope(s): {', '.join(unknown)}. Known scopes: {', '.join(SCOPES)}.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            api_key, raw_key = api_key_create(
                organization=organization,
                actor=Principal.system("create_api_key"),
                service_role=role,
                name=name,
                scopes=requested,
                expires_at=expires_at,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"Created API key {api_key.name!r} (id {api_key.id}) for {organization.slug}."))
        self.stdout.write(f"Service key acting as: {role}")
        self.stdout.write(f"Scopes: {', '.join(api_key.scopes)}")
        if expires_at:
            self.stdout.write(f"Expires: {expires_at:%Y-%m-%d %H:%M} UTC")
        self.stdout.write("Key (shown once; store it now):")
        self.stdout.write(raw_key)
