"""Onboard an organization from the command line."""

import secrets

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import User
from jagcall.kernel.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an organization and its owner (an existing user, or a new one)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Organization name, e.g. 'Acme Dental'")
        parser.add_argument("--owner-email", required=True, help="Owner's email; an existing user is reused")
        parser.add_argument("--owner-password", help="Password for a new owner (generated and printed if omitted)")
        parser.add_argument("--slug", help="Short name used in URLs (made from the name if omitted)")
        parser.add_argument("--plan", default="starter", help="Plan code (default: starter)")

    def handle(self, *args, name, owner_email, owner_password, slug, plan, **options):
        generated = None
        try:
            with transaction.atomic():
                owner = User.objects.filter(email__iexact=owner_email.strip()).first()
                if owner is None:
                    if owner_password is None:
                        generated = owner_password = secrets.token_urlsafe(16)
                    owner = services.user_create(email=owner_email, password=owner_password, email_verified=True)
                    created_user = True
                else:
                    created_user = False
                    if owner_password:
                        raise ApplicationError(
                            f"{owner.email} already has an account; leave out --owner-password to reuse it."
                        )
                organization = services.organization_create(name=name, slug=slug, owner=owner, plan_code=plan)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"Created organization {organization.name} (slug {organization.slug}, id {organization.id})"))
        self.stdout.write(f"Owner: {owner.email} ({'new account' if created_user else 'existing account'})")
        if generated:
            self.stdout.write(f"Generated password: {generated}  (shown once; ask the owner to change it)")
