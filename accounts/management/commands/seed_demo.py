"""Demo data for development: Acme Dental with an owner, an admin and a member.

Other apps add their own demo data to Acme Dental (accounts imports no other app): they connect a
receiver to ``demo_organization_ready``, which is sent inside the command's transaction with
``organization`` and ``owner``. A receiver must be idempotent (the command runs at every `make run`)
and may return one line for the command to print.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.dispatch import Signal

from accounts import services
from accounts.models import Membership, Organization, User
from accounts.permissions import Role

DEMO_PASSWORD = "jagcall-demo-2026"
demo_organization_ready = Signal()
DEMO_USERS = [
    ("owner@acme-dental.test", "Olivia Owner", Role.OWNER),
    ("admin@acme-dental.test", "Adam Admin", Role.ADMIN),
    ("member@acme-dental.test", "Mia Member", Role.MEMBER),
]


class Command(BaseCommand):
    help = "Load the demo organization Acme Dental (idempotent). Refuses to run with DEBUG off."

    def handle(self, *args, **options):
        if not (settings.DEBUG or settings.TESTING):
            raise CommandError("Demo data is for development only (DEBUG is off).")
        with transaction.atomic():
            users = {}
            for email, name, _role in DEMO_USERS:
                user = User.objects.filter(email=email).first() or services.user_create(
                    email=email, password=DEMO_PASSWORD, name=name, email_verified=True
                )
                users[email] = user
            owner = users[DEMO_USERS[0][0]]
            organization = Organization.objects.filter(slug="acme-dental").first() or services.organization_create(
                name="Acme Dental", slug="acme-dental", owner=owner
            )
            for email, _name, role in DEMO_USERS[1:]:
                Membership.objects.get_or_create(organization=organization, user=users[email], defaults={"role": role})
            staff = User.objects.filter(email="support@jagcall.test").first() or services.user_create(
                email="support@jagcall.test", password=DEMO_PASSWORD, name="Sam Support", is_staff=True,
                email_verified=True,
            )
            if not staff.is_superuser:
                staff.is_superuser = True
                staff.save(update_fields=["is_superuser"])
            answers = demo_organization_ready.send(sender=self.__class__, organization=organization, owner=owner)
        self.stdout.write(self.style.SUCCESS("Demo data ready: organization Acme Dental (/o/acme-dental/)"))
        for email, _name, role in DEMO_USERS:
            self.stdout.write(f"  {role:<6} {email:<28} password: {DEMO_PASSWORD}")
        self.stdout.write(f"  staff  {'support@jagcall.test':<28} password: {DEMO_PASSWORD}  (back office: /{settings.ADMIN_URL})")
        for _receiver, line in answers:
            if line:
                self.stdout.write(f"  {line}")
